"""Production: PostgreSQL, Redis, secrets from the environment with no defaults.

Importing this module without the required variables raises ImproperlyConfigured,
so a misconfigured host refuses to start instead of running with weak secrets.
"""

import base64

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from django.core.exceptions import ImproperlyConfigured

from config.env import SettingsError, env

from .base import *  # noqa: F403
from .base import env_list

required = env.required


DEBUG = False
SECRET_KEY = required("SECRET_KEY")
KINGUARD_ENCRYPTION_KEYS = [k for k in required("KINGUARD_ENCRYPTION_KEYS").split(",") if k]
KINGUARD_ID_HASH_KEY = required("KINGUARD_ID_HASH_KEY")
if not KINGUARD_AUDIT_SIGNING_KEY:  # noqa: F405
    raise ImproperlyConfigured(
        "Set KINGUARD_AUDIT_SIGNING_KEY or KINGUARD_AUDIT_SIGNING_KEY_FILE (production has no default)."
    )
try:
    Ed25519PrivateKey.from_private_bytes(base64.b64decode(KINGUARD_AUDIT_SIGNING_KEY, validate=True))  # noqa: F405
except ValueError as exc:
    raise ImproperlyConfigured("KINGUARD_AUDIT_SIGNING_KEY is not base64 of a 32-byte Ed25519 private key.") from exc
if not KINGUARD_FACE_LIVENESS:  # noqa: F405
    raise ImproperlyConfigured("KINGUARD_FACE_LIVENESS must stay on in production (issue 11).")
if KINGUARD_FACE_CHALLENGE_FIXED:  # noqa: F405
    raise ImproperlyConfigured("KINGUARD_FACE_CHALLENGE_FIXED is for tests only (production draws a challenge).")
required("DATABASE_URL")
required("CELERY_BROKER_URL")
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS")
if not ALLOWED_HOSTS:
    raise SettingsError("Set DJANGO_ALLOWED_HOSTS (comma-separated host names).")

# Persistent connections: with CONN_MAX_AGE=0 a logged-in page served 265 req/s here instead of 968.
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", 60)  # noqa: F405
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True  # noqa: F405

# Redis cache (sessions read from cache first, written through to the database).
CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env.str("CACHE_URL", "") or env.str("CELERY_BROKER_URL"),
        "KEY_PREFIX": "kinguard",
    }
}
SESSION_ENGINE = "django.contrib.sessions.backends.cached_db"

LOGGING["handlers"]["console"]["formatter"] = env.choice("KINGUARD_LOG_FORMAT", "json", ("plain", "json"))  # noqa: F405
LOGGING["loggers"]["kinguard.access"]["level"] = env.str("KINGUARD_ACCESS_LOG_LEVEL", "INFO")  # noqa: F405

STATIC_ROOT = env.str("DJANGO_STATIC_ROOT", str(STATIC_ROOT))  # noqa: F405
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.ManifestStaticFilesStorage"},
}

SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", True)
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$"]  # load balancers probe over plain HTTP
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
KINGUARD_ALLOW_STILL_UPLOAD = env.bool("KINGUARD_ALLOW_STILL_UPLOAD", False)
