"""Celery application.

Face checks run on their own queue (``face``) so face workers can be scaled out on
separate hosts; everything else goes to ``default``.

Request ids follow the work: a task published while a web request is handled carries that
request's id in its ``kinguard_request_id`` header (``before_task_publish``); the worker sets
it as the logging context for the task's run (``task_prerun``/``task_postrun``), so a
guardian's request can be followed into its face check in the logs. Tasks published outside
a request (beat) carry none and log ``-``.
"""

import os
from typing import Any

from celery import Celery
from celery.signals import before_task_publish, task_postrun, task_prerun

from config.request_context import request_id_var
from config.worker_heartbeat import FaceWorkerHeartbeat

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("kinguard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.steps["worker"].add(FaceWorkerHeartbeat)

REQUEST_ID_HEADER = "kinguard_request_id"
_CONTEXT_ATTR = "_kinguard_request_id_context"


@before_task_publish.connect
def _carry_request_id(headers: dict[str, Any] | None = None, **kwargs: Any) -> None:
    request_id = request_id_var.get()
    if headers is not None and request_id != "-" and REQUEST_ID_HEADER not in headers:
        headers[REQUEST_ID_HEADER] = request_id


def _request_id_of(task: Any) -> str:
    value = getattr(task.request, REQUEST_ID_HEADER, None)
    if value is None:
        value = (getattr(task.request, "headers", None) or {}).get(REQUEST_ID_HEADER)
    value = str(value or "")
    return value if value.isalnum() and len(value) <= 64 else "-"


@task_prerun.connect
def _enter_request_id(task: Any = None, **kwargs: Any) -> None:
    if task is not None:
        setattr(task.request, _CONTEXT_ATTR, request_id_var.set(_request_id_of(task)))


@task_postrun.connect
def _leave_request_id(task: Any = None, **kwargs: Any) -> None:
    token = getattr(getattr(task, "request", None), _CONTEXT_ATTR, None)
    if token is not None:
        try:
            request_id_var.reset(token)
        except ValueError:  # set in another context (eager run inside a request)
            request_id_var.set("-")


@app.task(name="kinguard.clear_sessions", ignore_result=True)
def clear_sessions() -> None:
    """Delete expired sessions (beat, daily): ``manage.py clearsessions``."""
    from django.core.management import call_command

    call_command("clearsessions")
