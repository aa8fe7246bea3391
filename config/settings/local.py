"""Embedded default for trying Kinguard: SQLite, a file-system Celery broker, dev keys.

Never use these keys for real data: they are public in this repository.
"""

import os

from config.env import env

from .base import *  # noqa: F403
from .base import CELERY_BROKER_TRANSPORT_OPTIONS, EMAIL_URL_SET, VAR_DIR, env_bool

DEBUG = env_bool("DJANGO_DEBUG", True)
SECRET_KEY = env.str("SECRET_KEY", "dev-only-insecure-secret-key-kinguard-local")
KINGUARD_ENCRYPTION_KEYS = [k for k in env.str("KINGUARD_ENCRYPTION_KEYS", "").split(",") if k] or [
    "ZGV2LW9ubHkta2luZ3VhcmQta2V5LTAwMDAwMDAwMDA="
]
KINGUARD_ID_HASH_KEY = env.str("KINGUARD_ID_HASH_KEY", "dev-only-id-hash-key")
if not EMAIL_URL_SET:  # EMAIL_URL (e.g. in .env) wins
    EMAIL_BACKEND = "django.core.mail.backends.filebased.EmailBackend"
    EMAIL_FILE_PATH = VAR_DIR / "mail"

VAR_DIR.mkdir(parents=True, exist_ok=True)
for _folder in (
    CELERY_BROKER_TRANSPORT_OPTIONS.get("data_folder_in"),
    CELERY_BROKER_TRANSPORT_OPTIONS.get("processed_folder"),
    CELERY_BROKER_TRANSPORT_OPTIONS.get("control_folder"),
):
    if _folder:
        os.makedirs(_folder, exist_ok=True)
KINGUARD_SMS_BACKEND = env.str("KINGUARD_SMS_BACKEND", "lookups.oversight.sms.FileSmsBackend")
