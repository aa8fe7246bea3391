"""Celery application.

Face checks run on their own queue (``face``) so face workers can be scaled out on
separate hosts; everything else goes to ``default``.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings.local")

app = Celery("kinguard")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
