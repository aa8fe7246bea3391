"""/readyz: fast, cached, and face capacity is information, not a reason to drop the host."""

import threading
import time

import pytest

from config import health


@pytest.fixture(autouse=True)
def fresh_cache(settings):
    settings.KINGUARD_READYZ_CACHE_SECONDS = 5
    health._cache.reset()
    yield
    health._cache.reset()


@pytest.mark.django_db
def test_no_face_workers_is_reported_but_still_ready(client, monkeypatch):
    monkeypatch.setattr(health, "_broker_ok", lambda: True)
    monkeypatch.setattr(health, "_face_workers", lambda: 0)
    monkeypatch.setattr(health, "_face_queue_depth", lambda: 7)
    response = client.get("/readyz")
    assert response.status_code == 200
    body = response.json()
    assert body["checks"] == {"database": True, "broker": True}
    assert body["face"] == {"workers": 0, "queue_depth": 7, "available": False}


@pytest.mark.django_db
def test_broker_down_is_503(client, monkeypatch):
    monkeypatch.setattr(health, "_broker_ok", lambda: False)
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json()["checks"]["broker"] is False


@pytest.mark.django_db
def test_database_down_is_503(client, monkeypatch):
    monkeypatch.setattr(health, "_database_ok", lambda: False)
    monkeypatch.setattr(health, "_broker_ok", lambda: True)
    monkeypatch.setattr(health, "_face_workers", lambda: 1)
    monkeypatch.setattr(health, "_face_queue_depth", lambda: 0)
    assert client.get("/readyz").status_code == 503


@pytest.mark.django_db
def test_probes_answer_from_cache_within_50ms_while_slow_checks_refresh(client, monkeypatch, settings):
    """A 1 s worker broadcast runs in the background; probes never wait for it after the first."""
    calls = []

    def slow_workers():
        calls.append(time.monotonic())
        time.sleep(1.0)
        return 2

    monkeypatch.setattr(health, "_broker_ok", lambda: True)
    monkeypatch.setattr(health, "_face_workers", slow_workers)
    monkeypatch.setattr(health, "_face_queue_depth", lambda: 0)
    client.get("/readyz")  # first probe of the process fills the cache
    settings.KINGUARD_READYZ_CACHE_SECONDS = 0  # every later probe finds the cache stale
    durations = []
    for _ in range(20):
        started = time.monotonic()
        response = client.get("/readyz")
        durations.append(time.monotonic() - started)
        assert response.status_code == 200 and response.json()["face"]["workers"] == 2
    assert max(durations) < 0.05, durations
    # One background refresh at a time, not one per probe.
    assert len(calls) <= 2
    for thread in threading.enumerate():
        if thread.name == "readyz-refresh":
            thread.join(timeout=3)


@pytest.mark.django_db
def test_real_checks_against_memory_broker(client):
    response = client.get("/readyz")
    assert response.status_code == 200
    assert response.json()["checks"] == {"database": True, "broker": True}
