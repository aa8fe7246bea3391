"""Face-worker heartbeats in the shared cache, so ``/readyz`` counts face capacity cheaply.

Every Celery worker that consumes the ``face`` queue writes its own key
(``face-worker:<hostname>``, value: the time of the beat) every ``HEARTBEAT_SECONDS`` with a
timeout of ``HEARTBEAT_TTL`` and keeps its hostname in a small registry key. ``/readyz`` reads
the registry and the beat keys with one ``get_many``: a worker that stopped or died drops out
within ``HEARTBEAT_TTL`` seconds, with no broadcast to every worker and no waiting for replies.

Why not Celery's own heartbeats: they are events (``worker-heartbeat``), sent only when task
events are enabled (``-E``), and reading them needs an event receiver running in every web
process. A cache key per worker costs one write every ten seconds.

The registry is read-modify-written without a lock; two workers starting in the same instant
can lose one name, which that worker puts back at its next beat (each beat checks its own
entry), so a lost update heals within one interval. Names whose beat key has expired are
pruned by the next worker that beats.

Only a cache shared between processes can carry heartbeats (Redis in production). With a
per-process cache (the embedded default's local-memory cache) :func:`shared_cache` is False
and ``/readyz`` falls back to asking the workers by broadcast (see ``config.health``).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from celery import bootsteps
from django.conf import settings
from django.core.cache import cache

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 10.0
HEARTBEAT_TTL = 35  # three beats and a margin
REGISTRY_KEY = "face-worker-registry"
_PER_PROCESS_BACKENDS = (
    "django.core.cache.backends.locmem.LocMemCache",
    "django.core.cache.backends.dummy.DummyCache",
)


def beat_key(hostname: str) -> str:
    return f"face-worker:{hostname}"


def shared_cache() -> bool:
    """True when the default cache is seen by every process (so heartbeats can be read)."""
    return settings.CACHES["default"]["BACKEND"] not in _PER_PROCESS_BACKENDS


def beat(hostname: str) -> None:
    """Record that ``hostname`` is alive and consuming ``face``; prune dead registry names."""
    try:
        cache.set(beat_key(hostname), time.time(), timeout=HEARTBEAT_TTL)
        registry = set(cache.get(REGISTRY_KEY) or ())
        fresh_keys = set(cache.get_many([beat_key(name) for name in registry]))
        live_names = {name for name in registry if beat_key(name) in fresh_keys} | {hostname}
        if live_names != registry:
            cache.set(REGISTRY_KEY, sorted(live_names), timeout=None)
    except Exception:  # a cache outage must never stop the worker
        logger.warning("face worker heartbeat failed", exc_info=True)


def forget(hostname: str) -> None:
    """A worker shutting down cleanly leaves at once instead of after ``HEARTBEAT_TTL``."""
    try:
        cache.delete(beat_key(hostname))
    except Exception:
        logger.warning("face worker heartbeat removal failed", exc_info=True)


def face_workers_alive(store: Any = None) -> int:
    """Face workers with a beat younger than ``HEARTBEAT_TTL`` (a cache read, no broadcast).

    ``store`` is the cache to read (default: Django's default cache).
    """
    store = cache if store is None else store
    registry = store.get(REGISTRY_KEY) or ()
    if not registry:
        return 0
    return len(store.get_many([beat_key(name) for name in registry]))


class FaceWorkerHeartbeat(bootsteps.StartStopStep):
    """Worker bootstep: beat while consuming ``face`` (registered in ``config.celery``)."""

    requires = ("celery.worker.components:Timer",)

    def __init__(self, worker: Any, **kwargs: Any) -> None:
        super().__init__(worker, **kwargs)
        self.tref: Any = None
        self.hostname = ""

    def start(self, worker: Any) -> None:
        queues = {queue.name for queue in worker.app.amqp.queues.consume_from.values()}
        if "face" not in queues or not shared_cache():
            return
        self.hostname = worker.hostname
        beat(self.hostname)
        self.tref = worker.timer.call_repeatedly(HEARTBEAT_SECONDS, beat, (self.hostname,), priority=10)

    def stop(self, worker: Any) -> None:
        if self.tref is not None:
            self.tref.cancel()
            self.tref = None
            forget(self.hostname)
