"""Liveness and readiness endpoints for load balancers and orchestration.

``/healthz``: the process answers. ``/readyz``: the database answers, the broker accepts a
connection, and at least one worker consumes the ``face`` queue. No personal data, no auth.
"""

from __future__ import annotations

import logging

from django.db import connection
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


def _face_workers() -> int:
    from config.celery import app

    try:
        queues = app.control.inspect(timeout=1.0).active_queues() or {}
    except Exception:
        logger.warning("readyz: worker inspection failed", exc_info=True)
        return 0
    return sum(1 for worker_queues in queues.values() if any(q.get("name") == "face" for q in worker_queues))


@never_cache
@require_GET
def readyz(request: HttpRequest) -> JsonResponse:
    checks = {"database": _database_ok(), "broker": _broker_ok()}
    face_workers = _face_workers() if checks["broker"] else 0
    checks["face_workers"] = face_workers > 0
    ready = all(checks.values())
    return JsonResponse(
        {"status": "ready" if ready else "not ready", "checks": checks, "face_workers": face_workers},
        status=200 if ready else 503,
    )
