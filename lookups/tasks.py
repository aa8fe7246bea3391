"""Celery tasks: thin wrappers that take ids and call services.

``run_face_check`` is idempotent (the service locks the check and returns if it is already
final), which is what makes ``acks_late`` + ``reject_on_worker_lost`` safe: a check whose
worker died is redelivered and finishes instead of being lost.
"""

from celery import shared_task
from celery.signals import worker_process_init
from django.db import DatabaseError

from . import face_pipeline, services


@worker_process_init.connect
def _load_face_models(**_kwargs) -> None:
    """Load the dlib models once per worker process, before the first task arrives."""
    face_pipeline.warm_up()


@shared_task(
    bind=True,
    acks_late=True,
    reject_on_worker_lost=True,
    soft_time_limit=30,
    time_limit=45,
    autoretry_for=(DatabaseError,),
    retry_backoff=True,
    retry_backoff_max=30,
    max_retries=5,
)
def run_face_check(self, check_id: str) -> str:
    return services.face_check_run(check_id=check_id)


@shared_task
def sweep_stale() -> dict:
    return services.sweep_stale()


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

    return (NoticeDeliveryError, DatabaseError)


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
