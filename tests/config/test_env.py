"""Settings explain themselves: a bad value names the variable and what it expects."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from config.env import KinguardEnv, SettingsError
from tests.config.test_settings import FULL_ENV

REPO = Path(__file__).resolve().parents[2]


def _manage_check(env: dict, settings_module: str = "config.settings.local") -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if k not in FULL_ENV and k != "DJANGO_SETTINGS_MODULE"}
    clean.update(env, DJANGO_SETTINGS_MODULE=settings_module)
    return subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=REPO, env=clean, capture_output=True, text=True, timeout=90
    )


@pytest.mark.parametrize(
    ("name", "value", "expects"),
    [
        ("KINGUARD_GRANT_MINUTES", "10m", "whole number"),
        ("DJANGO_DEBUG", "ture", "true or false"),
        ("KINGUARD_FACE_THRESHOLD", "zero point six", "a number"),
        ("KINGUARD_LOG_FORMAT", "xml", "plain, json"),
        ("EMAIL_URL", "bogus", "e-mail URL"),
    ],
)
def test_bad_value_names_variable_without_traceback(name, value, expects):
    result = _manage_check({name: value})
    assert result.returncode != 0
    assert name in result.stderr and expects in result.stderr
    assert "Traceback" not in result.stderr


def test_bad_value_in_production_is_named_too():
    result = _manage_check({**FULL_ENV, "KINGUARD_GRANT_MINUTES": "10m"}, "config.settings.production")
    assert "KINGUARD_GRANT_MINUTES='10m'" in result.stderr and "Traceback" not in result.stderr


def test_secret_values_are_never_echoed(monkeypatch):
    monkeypatch.setenv("KINGUARD_SECRET_THING_KEY", "hunter2-very-secret")
    with pytest.raises(SettingsError) as caught:
        KinguardEnv().int("KINGUARD_SECRET_THING_KEY")
    assert "hunter2" not in str(caught.value) and "KINGUARD_SECRET_THING_KEY" in str(caught.value)


def test_booleans_accept_the_usual_spellings(monkeypatch):
    env = KinguardEnv()
    for raw, expected in [("true", True), ("1", True), ("yes", True), ("off", False), ("False", False)]:
        monkeypatch.setenv("KG_FLAG", raw)
        assert env.bool("KG_FLAG", False) is expected


def test_dotenv_is_read_for_local_only_and_environment_wins(tmp_path, monkeypatch):
    dotenv = tmp_path / ".env"
    dotenv.write_text("KG_FROM_DOTENV=42\nKG_BOTH=from-file\n")
    monkeypatch.delenv("KG_FROM_DOTENV", raising=False)
    monkeypatch.setenv("KG_BOTH", "from-environment")
    env = KinguardEnv()
    assert env.read_dotenv(dotenv)
    assert env.int("KG_FROM_DOTENV") == 42
    assert env.str("KG_BOTH") == "from-environment"
    os.environ.pop("KG_FROM_DOTENV", None)


def test_email_url_configures_smtp():
    code = "from django.conf import settings as s; print(s.EMAIL_BACKEND, s.EMAIL_HOST, s.EMAIL_PORT, s.EMAIL_USE_TLS)"
    clean = {k: v for k, v in os.environ.items() if k not in FULL_ENV}
    clean.update(
        FULL_ENV,
        DJANGO_SETTINGS_MODULE="config.settings.production",
        EMAIL_URL="submission://kinguard:pw@smtp.clinic.example:587",
    )
    result = subprocess.run(
        [sys.executable, "-c", f"import django; django.setup(); {code}"],
        cwd=REPO,
        env=clean,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == [
        "django.core.mail.backends.smtp.EmailBackend",
        "smtp.clinic.example",
        "587",
        "True",
    ]


def test_env_example_is_committed_and_parses(monkeypatch):
    example = REPO / ".env.example"
    assert example.is_file()
    for line in example.read_text().splitlines():
        if line and not line.startswith("#"):
            assert "=" in line
