"""Celery tasks: thin wrappers that take ids and call services.

``run_face_check`` is idempotent (the service locks the check and returns if it is already
final), which is what makes ``acks_late`` + ``reject_on_worker_lost`` safe: a check whose
worker died is redelivered and finishes instead of being lost. Time limits end in a clean
``error`` verdict (soft limit: inside the task; hard limit: ``on_failure``, which Celery
calls in the worker's main process after killing the child), never in a lost check.
Only transient database errors are retried, with exponential back-off.
"""

import logging
import os
import time

from celery import shared_task
from celery.contrib.django.task import DjangoTask
from celery.exceptions import SoftTimeLimitExceeded, TimeLimitExceeded
from celery.signals import worker_process_init
from django.conf import settings
from django.db import InterfaceError, OperationalError, close_old_connections, connection

from lookups.faces.detection import warm_up

logger = logging.getLogger(__name__)

#: Errors worth another try: the database went away, a deadlock, a serialization failure.
#: Integrity or programming errors would fail the same way again and are not retried.
TRANSIENT_ERRORS = (OperationalError, InterfaceError)


@worker_process_init.connect
def _load_face_models(**_kwargs) -> None:
    """Load the dlib models once per worker process, before the first task arrives."""
    started = time.monotonic()
    warm_up()
    logger.info("face models loaded in %d ms (pid %d)", (time.monotonic() - started) * 1000, os.getpid())


class FaceCheckTask(DjangoTask):
    """Closes the check as an ``error`` when the task fails for good (e.g. hard time limit)."""

    def on_failure(self, exc, task_id, args, kwargs, einfo) -> None:
        check_id = kwargs.get("check_id") or (args[0] if args else None)
        if check_id is None:
            return
        reason = "timeout" if isinstance(exc, TimeLimitExceeded | SoftTimeLimitExceeded) else "task_failed"
        from .services import face_checks

        try:
            face_checks.face_check_abandon(check_id=check_id, reason=reason)
        except Exception:
            # The database may be what failed; the sweeper will expire the check.
            logger.exception("face check %s could not be closed after %r", check_id, exc)
        finally:
            # After a hard time limit this ran in the worker's main process, which Celery's
            # per-task connection cleanup does not cover. Never inside a caller's transaction.
            if not connection.in_atomic_block:
                close_old_connections()


@shared_task(
    bind=True,
    base=FaceCheckTask,
    acks_late=True,
    reject_on_worker_lost=True,
    # A check that failed or hit the hard limit is closed by on_failure; redelivering it
    # would only repeat the failure.
    acks_on_failure=True,
    acks_on_timeout=True,
    soft_time_limit=settings.KINGUARD_FACE_SOFT_TIME_LIMIT,
    time_limit=settings.KINGUARD_FACE_HARD_TIME_LIMIT,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=5,
)
def run_face_check(self, check_id: str) -> str:
    from .services import face_checks

    try:
        return face_checks.face_check_run(check_id=check_id)
    except SoftTimeLimitExceeded:
        # Hit outside the pipeline (the pipeline turns it into an outcome itself).
        return face_checks.face_check_abandon(check_id=check_id, reason="timeout")


@shared_task
def sweep_stale() -> dict:
    from .services import sweeps

    return sweeps.sweep_stale()


@shared_task
def sweep_results_imports() -> dict:
    """Beat: abandoned lab file imports are given up, their staged files (ID numbers) deleted."""
    from .services import sweeps

    return sweeps.sweep_results_imports()


@shared_task
def apply_retention() -> dict:
    from .retention import retention_apply

    return retention_apply().__dict__


# --- oversight: chain check, anomaly detection, elder notices -----------------------------


@shared_task
def verify_audit_chain() -> str:
    """Beat: verify the hash chain; on a break alert once (CRITICAL log, email, audit, flag)."""
    from .oversight.services import audit_chain_check

    broken = audit_chain_check()
    return "intact" if broken is None else f"broken at #{broken.sequence}"


@shared_task
def sign_audit_head() -> int:
    """Beat (every 30 min): sign the chain head; ship it to the JSON log and the append-only file."""
    from .audit_signing import head_sign

    return int(head_sign()["sequence"])


@shared_task
def detect_anomalies() -> dict:
    """Beat: run the anomaly rules over their recent windows (idempotent per window)."""
    from .oversight.anomalies import anomalies_detect

    return anomalies_detect()


@shared_task
def queue_expiry_notices() -> int:
    """Beat: tell elders about authorizations ending soon; re-publish notices never attempted."""
    from .oversight.notices import notices_queue_expiring, notices_requeue_stale

    notices_requeue_stale()
    return notices_queue_expiring()


def _notice_retry_errors() -> tuple[type[Exception], ...]:
    from .oversight.notices import NoticeDeliveryError

    return (NoticeDeliveryError, *TRANSIENT_ERRORS)


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    autoretry_for=_notice_retry_errors(),
    retry_backoff=30,
    retry_backoff_max=3600,
    retry_jitter=True,
    max_retries=10,
    soft_time_limit=60,
    time_limit=90,
)
def send_notice(self, notice_id: int) -> str:
    """Send one elder notice. Exactly once: the service locks the row and skips what was sent."""
    from .oversight.notices import notice_send

    return notice_send(notice_id=notice_id)


@shared_task(
    ignore_result=True,
    soft_time_limit=settings.KINGUARD_RESULTS_IMPORT_SOFT_TIME_LIMIT,
    time_limit=settings.KINGUARD_RESULTS_IMPORT_SOFT_TIME_LIMIT + 30,
)
def run_results_import(key: str) -> str:
    """A confirmed lab file import (all rows or none); progress goes to its status file."""
    from .services import results_import_jobs

    return results_import_jobs.results_import_run(key=key)
