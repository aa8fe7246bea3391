"""Production settings refuse to start without their secrets."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
FULL_ENV = {
    "SECRET_KEY": "x" * 50,
    "KINGUARD_ENCRYPTION_KEYS": "ZGV2LW9ubHkta2luZ3VhcmQta2V5LTAwMDAwMDAwMDA=",
    "KINGUARD_ID_HASH_KEY": "k" * 32,
    "DATABASE_URL": "postgres://kinguard@db.example/kinguard",
    "CELERY_BROKER_URL": "redis://redis.example:6379/0",
    "DJANGO_ALLOWED_HOSTS": "kinguard.example",
    "KINGUARD_AUDIT_SIGNING_KEY": "cHJvZHVjdGlvbi10ZXN0LW9ubHktZWQyNTUxOS1rZXk=",
}


def _import_production(env: dict) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in FULL_ENV}
    clean.update(env, DJANGO_SETTINGS_MODULE="config.settings.production")
    return subprocess.run(
        [
            sys.executable,
            "-c",
            "import django; from django.conf import settings; django.setup(); print(settings.DEBUG)",
        ],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_production_starts_with_all_secrets():
    result = _import_production(FULL_ENV)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "False"


@pytest.mark.parametrize("missing", sorted(FULL_ENV))
def test_production_refuses_to_start_without(missing):
    env = {k: v for k, v in FULL_ENV.items() if k != missing}
    result = _import_production(env)
    assert result.returncode != 0
    assert missing in result.stderr


def test_production_refuses_a_malformed_audit_signing_key():
    result = _import_production({**FULL_ENV, "KINGUARD_AUDIT_SIGNING_KEY": "not-a-key"})
    assert result.returncode != 0 and "KINGUARD_AUDIT_SIGNING_KEY" in result.stderr


def test_production_reads_the_audit_signing_key_from_a_file(tmp_path):
    key_file = tmp_path / "audit.key"
    key_file.write_text(FULL_ENV["KINGUARD_AUDIT_SIGNING_KEY"] + "\n")
    env = {k: v for k, v in FULL_ENV.items() if k != "KINGUARD_AUDIT_SIGNING_KEY"}
    result = _import_production({**env, "KINGUARD_AUDIT_SIGNING_KEY_FILE": str(key_file)})
    assert result.returncode == 0, result.stderr
