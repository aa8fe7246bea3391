"""Settings for pytest. DATABASE_URL selects PostgreSQL (CI) or SQLite (default)."""

from config.env import env

from .base import *  # noqa: F403
from .base import redis_transport_options

DEBUG = False
# Test settings only (bandit B105 reviewed).
SECRET_KEY = "test-only-secret-key"  # noqa: S105  # nosec B105
KINGUARD_ENCRYPTION_KEYS = ["dGVzdC1vbmx5LWtpbmd1YXJkLWtleS0wMDAwMDAwMDA="]
KINGUARD_ID_HASH_KEY = "test-only-id-hash-key"
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
EMAIL_BACKEND = "django.core.mail.backends.locmem.EmailBackend"
# Unit tests call task functions directly; publishing goes to an in-memory broker.
# Integration tests start a real worker on Redis and override this.
CELERY_BROKER_URL = env.str("TEST_CELERY_BROKER_URL", "memory://")
CELERY_BROKER_TRANSPORT_OPTIONS = (
    redis_transport_options() if CELERY_BROKER_URL.startswith(("redis://", "rediss://")) else {}
)
# Fault injection (tests/integration): while this file exists, a face check waits inside
# its compute phase, so a test can kill the worker mid-check. Defined only here.
KINGUARD_TEST_HOLD_FILE = env.str("KINGUARD_TEST_HOLD_FILE", "") or None
CELERY_TASK_ALWAYS_EAGER = False
AUTHENTICATION_BACKENDS = [
    "config.auth_backends.AxesBackendForTests",
    "django.contrib.auth.backends.ModelBackend",
]
KINGUARD_SMS_BACKEND = "lookups.oversight.sms.LocmemSmsBackend"
# Tests read notices in English unless a test asks for the elder's language explicitly.
KINGUARD_NOTICE_LANGUAGE = "en"
# A shared cache for tests that need one across processes (face-worker heartbeats).
if TEST_CACHE_URL := env.str("TEST_CACHE_URL", ""):
    CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": TEST_CACHE_URL}}
# Most unit tests post the older 5-frame burst without a challenge; the prompted-liveness
# path (always on in production) is exercised by the tests that switch this on.
KINGUARD_FACE_LIVENESS = env.bool("KINGUARD_FACE_LIVENESS", False)
