"""Liveness and readiness endpoints for load balancers and orchestration.

``/healthz``: the process answers. ``/readyz``: the database answers and the broker accepts a
connection; 503 only when one of those fails, because without them this web host cannot serve.
Face capacity (face workers seen by heartbeat, messages waiting on the ``face`` queue) is reported as
information and never turns the answer into 503: with no face worker the site still works and
tells the guardian clearly that the face check is unavailable (fail closed, per lookup), so a
load balancer must not take every web host out for it.

Answers in a few milliseconds from cached checks: the database is checked at most every
``KINGUARD_READYZ_CACHE_SECONDS`` (it is cheap); the broker and face capacity (a connection, a
passive queue declare and a worker broadcast, up to ~1 s) are refreshed by one background
thread per process while the probe answers from the last result. Only the very first probe of
a process waits for them. No personal data, no auth.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

from django.conf import settings
from django.db import connection, connections
from django.http import HttpRequest, JsonResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

logger = logging.getLogger(__name__)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    return JsonResponse({"status": "ok"})


def _database_ok() -> bool:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
            return cursor.fetchone() == (1,)
    except Exception:
        logger.warning("readyz: database check failed", exc_info=True)
        return False


def _broker_ok() -> bool:
    from config.celery import app

    try:
        with app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception:
        logger.warning("readyz: broker check failed", exc_info=True)
        return False


def _face_workers() -> int | None:
    """Workers consuming the ``face`` queue (None: unknown).

    Read from the workers' heartbeats in the shared cache (``config.worker_heartbeat``); only
    where the cache is per-process (the embedded default) are the workers asked by broadcast.
    """
    from config import worker_heartbeat
    from config.celery import app

    if worker_heartbeat.shared_cache():
        try:
            return worker_heartbeat.face_workers_alive()
        except Exception:
            logger.warning("readyz: face worker heartbeats unavailable", exc_info=True)
            return None
    try:
        queues = app.control.inspect(timeout=1.0).active_queues() or {}
    except Exception:
        logger.warning("readyz: worker inspection failed", exc_info=True)
        return None
    return sum(1 for worker_queues in queues.values() if any(q.get("name") == "face" for q in worker_queues))


def _face_queue_depth() -> int | None:
    """Messages waiting on the ``face`` queue (a passive declare; None: unknown)."""
    from config.celery import app

    try:
        with app.connection_for_read() as conn:
            channel: Any = conn.default_channel  # kombu's StdChannel type omits queue_declare
            return int(channel.queue_declare(queue="face", passive=True).message_count)
    except Exception:
        logger.warning("readyz: face queue depth unavailable", exc_info=True)
        return None


class _Cached:
    """Last results of the checks, per process. ``lock`` guards the fields."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.database: bool | None = None
        self.database_at = 0.0
        self.broker: dict[str, Any] | None = None
        self.broker_at = 0.0
        self.refreshing = False

    def reset(self) -> None:
        with self.lock:
            self.database, self.database_at, self.broker, self.broker_at, self.refreshing = None, 0.0, None, 0.0, False


_cache = _Cached()


def _broker_checks() -> dict[str, Any]:
    broker = _broker_ok()
    return {
        "broker": broker,
        "face_workers": _face_workers() if broker else 0,
        "face_queue_depth": _face_queue_depth() if broker else None,
    }


def _refresh_broker_in_background() -> None:
    try:
        result = _broker_checks()
        with _cache.lock:
            _cache.broker, _cache.broker_at = result, time.monotonic()
    finally:
        with _cache.lock:
            _cache.refreshing = False
        connections.close_all()


def _checks() -> tuple[bool, dict[str, Any]]:
    ttl = settings.KINGUARD_READYZ_CACHE_SECONDS
    now = time.monotonic()
    with _cache.lock:
        database_stale = _cache.database is None or now - _cache.database_at > ttl
    if database_stale:
        database = _database_ok()
        with _cache.lock:
            _cache.database, _cache.database_at = database, time.monotonic()
    with _cache.lock:
        database = bool(_cache.database)
        broker = _cache.broker
        start_refresh = broker is not None and now - _cache.broker_at > ttl and not _cache.refreshing
        if start_refresh:
            _cache.refreshing = True
    if broker is None:  # first probe of this process: wait once
        broker = _broker_checks()
        with _cache.lock:
            _cache.broker, _cache.broker_at = broker, time.monotonic()
    elif start_refresh:
        threading.Thread(target=_refresh_broker_in_background, name="readyz-refresh", daemon=True).start()
    return database, broker


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    database, broker = _checks()
    checks = {"database": database, "broker": bool(broker["broker"])}
    ready = all(checks.values())
    face_workers = broker["face_workers"]
    return JsonResponse(
        {
            "status": "ready" if ready else "not ready",
            "checks": checks,
            # Information only: never a reason for 503 (see the module docstring).
            "face": {
                "workers": face_workers,
                "queue_depth": broker["face_queue_depth"],
                "available": bool(face_workers) if face_workers is not None else None,
            },
            "face_workers": face_workers,
        },
        status=200 if ready else 503,
    )
