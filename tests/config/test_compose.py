"""compose.yaml, checked statically (docker cannot run on the test machines)."""

from pathlib import Path

import pytest

yaml = pytest.importorskip("yaml")
REPO = Path(__file__).resolve().parents[2]
KINGUARD_SERVICES = {"web", "face-worker", "worker", "beat", "migrate", "collectstatic"}


@pytest.fixture(scope="module")
def compose() -> dict:
    return yaml.safe_load((REPO / "compose.yaml").read_text())


def test_services_present(compose):
    assert {"db", "redis", "web", "face-worker", "worker", "beat", "caddy"} <= set(compose["services"])


def test_kinguard_services_build_from_repo_dockerfile_with_production_settings(compose):
    for name in KINGUARD_SERVICES:
        service = compose["services"][name]
        assert service["build"] == {"context": ".", "dockerfile": "Dockerfile"}, name
        env = service["environment"]
        assert env["DJANGO_SETTINGS_MODULE"] == "config.settings.production", name
        assert env["DATABASE_URL"].startswith("postgres://") and "@db:5432/" in env["DATABASE_URL"], name
        assert env["CELERY_BROKER_URL"].startswith("redis://redis:"), name
        assert service["env_file"] == ".env", name  # secrets come from .env, never from compose.yaml
        assert "kinguard-data:/var/lib/kinguard" in service["volumes"], name
    assert (REPO / "Dockerfile").is_file()


def test_no_secret_in_compose_file(compose):
    for name, service in compose["services"].items():
        for key, value in (service.get("environment") or {}).items():
            assert key not in {"SECRET_KEY", "KINGUARD_ENCRYPTION_KEYS", "KINGUARD_ID_HASH_KEY"}, name
            if "PASSWORD" in key:
                assert str(value).startswith("${"), name


def test_workers_consume_their_queues(compose):
    assert (
        compose["services"]["face-worker"]["command"][compose["services"]["face-worker"]["command"].index("-Q") + 1]
        == "face"
    )
    assert (
        compose["services"]["worker"]["command"][compose["services"]["worker"]["command"].index("-Q") + 1] == "default"
    )
    assert "beat" in compose["services"]["beat"]["command"]
    assert "gunicorn" in compose["services"]["web"]["command"]


def test_health_checks_and_ordering(compose):
    for name in ("db", "redis", "web", "face-worker", "worker", "beat", "caddy"):
        assert compose["services"][name]["healthcheck"]["test"], name
    web_deps = compose["services"]["web"]["depends_on"]
    assert web_deps["db"]["condition"] == "service_healthy"
    assert web_deps["migrate"]["condition"] == "service_completed_successfully"


def test_volumes_persist_data(compose):
    assert {"postgres-data", "redis-data", "kinguard-data", "caddy-data"} <= set(compose["volumes"])
    assert "postgres-data:/var/lib/postgresql/data" in compose["services"]["db"]["volumes"]


def test_tls_front(compose):
    caddy = compose["services"]["caddy"]
    assert "443:443" in caddy["ports"]
    assert "./deploy/Caddyfile:/etc/caddy/Caddyfile:ro" in caddy["volumes"]
    caddyfile = (REPO / "deploy" / "Caddyfile").read_text()
    assert "tls internal" in caddyfile and "reverse_proxy web:8000" in caddyfile
    assert "X-Forwarded-Proto https" in caddyfile
    assert "ports" not in compose["services"]["web"]  # only through the TLS front


def test_dockerfile_is_multistage_non_root_without_test_tooling():
    dockerfile = (REPO / "Dockerfile").read_text()
    assert dockerfile.count("FROM ") >= 2 and "USER kinguard" in dockerfile
    assert "--no-deps -r requirements-nodeps.txt" in dockerfile
    assert "playwright" in dockerfile.split("grep -vE")[1].split("\n")[0]  # excluded from the image
    assert ".env" in (REPO / ".dockerignore").read_text()
