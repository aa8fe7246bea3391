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
