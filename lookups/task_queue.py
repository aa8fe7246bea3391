"""Publishing Celery tasks from services, by their registered names.

Tasks (``lookups/tasks.py``) are entry points, like views: they import their service inside
the task body. Services publish a message *naming* the task instead of importing the task
module, so there is no circle services → tasks → services (``lint-imports``), and a web
process does not load the worker's face models by queueing a check. The names are the tasks'
registered names, which the routes (``CELERY_TASK_ROUTES``) and the beat schedule also use;
``send_task`` routes by name and fires ``before_task_publish`` like ``delay`` does.
"""

from __future__ import annotations

from functools import partial

from celery import current_app
from django.db import transaction

RUN_FACE_CHECK = "lookups.tasks.run_face_check"
SEND_NOTICE = "lookups.tasks.send_notice"
RUN_RESULTS_IMPORT = "lookups.tasks.run_results_import"


def publish(name: str, *args: object) -> None:
    """Publish now. Raises what the broker raises (``kombu.exceptions.OperationalError``)."""
    current_app.send_task(name, args=args)


def publish_on_commit(name: str, *args: object) -> None:
    """Publish once the current transaction commits (``delay_on_commit``'s contract: a
    publish error is raised out of the commit, after the data is saved)."""
    transaction.on_commit(partial(publish, name, *args))
