"""Face-worker heartbeats: /readyz counts face capacity from the shared cache, no broadcast."""

from types import SimpleNamespace

import pytest
from kombu import Queue

from config import health, worker_heartbeat
from config.celery import app


@pytest.fixture(autouse=True)
def clean(settings):
    from django.core.cache import cache

    settings.KINGUARD_READYZ_CACHE_SECONDS = 5
    cache.clear()
    health._cache.reset()
    yield
    cache.clear()
    health._cache.reset()


def test_beats_are_counted_and_a_clean_stop_leaves_at_once():
    worker_heartbeat.beat("face-1@host")
    worker_heartbeat.beat("face-2@host")
    worker_heartbeat.beat("face-2@host")  # a second beat of the same worker is not a second worker
    assert worker_heartbeat.face_workers_alive() == 2
    worker_heartbeat.forget("face-1@host")
    assert worker_heartbeat.face_workers_alive() == 1


def test_an_expired_beat_is_not_counted_and_is_pruned_by_the_next_beat():
    from django.core.cache import cache

    worker_heartbeat.beat("dead@host")
    worker_heartbeat.beat("alive@host")
    cache.delete(worker_heartbeat.beat_key("dead@host"))  # what the TTL does to a killed worker
    assert worker_heartbeat.face_workers_alive() == 1
    worker_heartbeat.beat("alive@host")
    assert cache.get(worker_heartbeat.REGISTRY_KEY) == ["alive@host"]


def test_a_lost_registry_update_heals_at_the_next_beat():
    from django.core.cache import cache

    worker_heartbeat.beat("a@host")
    worker_heartbeat.beat("b@host")
    cache.set(worker_heartbeat.REGISTRY_KEY, ["b@host"])  # a@host's registry write was lost
    assert worker_heartbeat.face_workers_alive() == 1
    worker_heartbeat.beat("a@host")
    assert worker_heartbeat.face_workers_alive() == 2


def test_a_cache_outage_never_stops_the_worker(monkeypatch):
    def down(*args, **kwargs):
        raise ConnectionError("cache down")

    monkeypatch.setattr(worker_heartbeat.cache, "set", down)
    worker_heartbeat.beat("face-1@host")  # logged, not raised
    worker_heartbeat.forget("face-1@host")


class _Timer:
    def __init__(self):
        self.calls = []

    def call_repeatedly(self, seconds, fun, args, priority=0):
        self.calls.append((seconds, fun, args))
        return SimpleNamespace(cancel=lambda: self.calls.append("cancelled"))


def _worker(*queues):
    consume_from = {name: Queue(name) for name in queues}
    return SimpleNamespace(
        hostname="w@host",
        timer=_Timer(),
        app=SimpleNamespace(amqp=SimpleNamespace(queues=SimpleNamespace(consume_from=consume_from))),
    )


def test_bootstep_beats_only_for_a_face_worker_with_a_shared_cache(monkeypatch):
    monkeypatch.setattr(worker_heartbeat, "shared_cache", lambda: True)
    face = _worker("face", "default")
    step = worker_heartbeat.FaceWorkerHeartbeat(face)
    step.start(face)
    assert face.timer.calls == [(worker_heartbeat.HEARTBEAT_SECONDS, worker_heartbeat.beat, ("w@host",))]
    assert worker_heartbeat.face_workers_alive() == 1
    step.stop(face)
    assert face.timer.calls[-1] == "cancelled"
    assert worker_heartbeat.face_workers_alive() == 0

    default_only = _worker("default")
    worker_heartbeat.FaceWorkerHeartbeat(default_only).start(default_only)
    assert default_only.timer.calls == []
    monkeypatch.setattr(worker_heartbeat, "shared_cache", lambda: False)
    per_process = _worker("face")
    worker_heartbeat.FaceWorkerHeartbeat(per_process).start(per_process)
    assert per_process.timer.calls == []


def test_bootstep_is_installed_in_the_worker_blueprint():
    assert worker_heartbeat.FaceWorkerHeartbeat in app.steps["worker"]


def test_the_test_settings_cache_is_per_process():
    assert worker_heartbeat.shared_cache() is False


@pytest.mark.django_db
def test_readyz_reads_heartbeats_without_a_broadcast(client, monkeypatch):
    monkeypatch.setattr(worker_heartbeat, "shared_cache", lambda: True)
    monkeypatch.setattr(health, "_broker_ok", lambda: True)
    monkeypatch.setattr(health, "_face_queue_depth", lambda: 0)

    def no_broadcast(*args, **kwargs):
        raise AssertionError("readyz must not broadcast to the workers when heartbeats are readable")

    monkeypatch.setattr(app.control, "inspect", no_broadcast)
    worker_heartbeat.beat("face-1@host")
    body = client.get("/readyz").json()
    assert body["face"]["workers"] == 1
    assert body["face"]["available"] is True
