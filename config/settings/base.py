"""Settings shared by every environment. Values come from the environment.

Environment-specific modules (local, test, production) import from here and override.
Secrets have development defaults only in ``local``/``test``; ``production`` refuses
to start without them.
"""

from datetime import timedelta
from pathlib import Path
from typing import Any

import dj_database_url
from kombu import Exchange, Queue

from config.env import SettingsError, env

BASE_DIR = Path(__file__).resolve().parent.parent.parent
VAR_DIR = env.path("KINGUARD_VAR_DIR", BASE_DIR / "var")


def env_bool(name: str, default: bool = False) -> bool:
    """true/false, 1/0, yes/no, on/off; anything else (``ture``) is a SettingsError naming it."""
    return env.bool(name, default)


def env_list(name: str, default: str = "") -> list[str]:
    return [item.strip() for item in env.str(name, default).split(",") if item.strip()]


DEBUG = env_bool("DJANGO_DEBUG", False)
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", "127.0.0.1,localhost")

INSTALLED_APPS = [
    # The admin with OTP, audited sign-ins and the staff sign-in form (config/admin_site.py).
    "config.apps.KinguardAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_otp",
    "django_otp.plugins.otp_totp",
    "django_otp.plugins.otp_static",
    "axes",
    "pgtrigger",
    "guardians",
    "lookups",
]

MIDDLEWARE = [
    "config.middleware.RequestIdMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "csp.middleware.CSPMiddleware",
    "config.middleware.PermissionsPolicyMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.locale.LocaleMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django_otp.middleware.OTPMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "config.middleware.SessionLimitsMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns lockouts into a clear "locked" page.
    "axes.middleware.AxesMiddleware",
]

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]


def database_from_env(default_url: str) -> dict[str, Any]:
    url = env.str("DATABASE_URL", "") or default_url  # unset or empty: the default
    try:
        config: dict[str, Any] = dict(dj_database_url.parse(url, conn_max_age=env.int("DB_CONN_MAX_AGE", 0)))
    except Exception:
        raise SettingsError(
            "DATABASE_URL is not valid: expected a database URL, e.g. postgres://user@host:5432/kinguard."
        ) from None
    if config["ENGINE"] == "django.db.backends.sqlite3":
        # IMMEDIATE transactions take the write lock up front, so concurrent writers queue
        # on the busy timeout instead of failing with "database is locked" on upgrade.
        config.setdefault("OPTIONS", {}).update({"transaction_mode": "IMMEDIATE", "timeout": 20})
    return config


DATABASES = {"default": database_from_env(f"sqlite:///{VAR_DIR / 'kinguard.sqlite3'}")}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
AUTH_USER_MODEL = "guardians.User"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en"
LANGUAGES = [("en", "English"), ("zh-hans", "简体中文")]
LOCALE_PATHS = [BASE_DIR / "locale"]
TIME_ZONE = env.str("KINGUARD_TIME_ZONE", "Asia/Shanghai")
USE_I18N = True
# Notices to elders (e-mail, SMS) are written in the elder's chosen language, else in this one.
KINGUARD_NOTICE_LANGUAGE = env.str("KINGUARD_NOTICE_LANGUAGE", "zh-hans")
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = VAR_DIR / "static"

# Nothing user-supplied is ever served from a public media URL: probe images and
# sampling photos live under PRIVATE_STORAGE_ROOT, outside STATIC_ROOT and without a URL.
PRIVATE_STORAGE_ROOT = env.path("KINGUARD_PRIVATE_STORAGE", VAR_DIR / "private")
PROBE_DIR = env.path("KINGUARD_PROBE_DIR", VAR_DIR / "probes")

# NIST SP 800-63B AAL2: re-authenticate after 30 minutes idle and 12 hours at most
# (config.middleware.SessionLimitsMiddleware); the cookie itself never outlives 12 hours.
KINGUARD_SESSION_IDLE_SECONDS = env.int("KINGUARD_SESSION_IDLE_SECONDS", 30 * 60)
KINGUARD_SESSION_ABSOLUTE_SECONDS = env.int("KINGUARD_SESSION_ABSOLUTE_SECONDS", 12 * 60 * 60)
# Staff actions that change authorizations or enrollments need a one-time code presented
# within this many seconds (step-up re-authentication); older sessions are asked again.
KINGUARD_STAFF_REAUTH_SECONDS = env.int("KINGUARD_STAFF_REAUTH_SECONDS", 10 * 60)
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_AGE = KINGUARD_SESSION_ABSOLUTE_SECONDS
SESSION_COOKIE_SAMESITE = "Lax"
SESSION_EXPIRE_AT_BROWSER_CLOSE = True
CSRF_COOKIE_HTTPONLY = True
X_FRAME_OPTIONS = "DENY"
CSRF_FAILURE_VIEW = "config.errors.csrf_failure"

# Reverse proxies whose X-Forwarded-For may be believed (addresses or CIDR networks).
KINGUARD_TRUSTED_PROXIES = env_list("KINGUARD_TRUSTED_PROXIES")

# django-axes: lock an (account, IP) pair after 5 failed sign-ins and an IP after 5 failures
# on any accounts, for 15 minutes. Locks never hit the account alone, so an attacker cannot
# lock a known user out of their own device; every lock expires by itself (AXES_COOLOFF_TIME).
AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", 5)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("AXES_COOLOFF_MINUTES", 15))
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"], "ip_address"]
AXES_CLIENT_IP_CALLABLE = "config.client_ip.axes_client_ip"
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_TEMPLATE = "registration/locked_out.html"
AXES_VERBOSE = False

# django-csp: scripts and styles only from our own static files; no inline scripts.
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": ["'self'"],
        "script-src": ["'self'"],
        "style-src": ["'self'"],
        "img-src": ["'self'", "data:", "blob:"],
        "media-src": ["'self'", "blob:"],
        "connect-src": ["'self'"],
        "font-src": ["'self'"],
        "object-src": ["'none'"],
        "base-uri": ["'none'"],
        "frame-ancestors": ["'none'"],
        "form-action": ["'self'"],
    }
}
KINGUARD_PERMISSIONS_POLICY = "camera=(self), microphone=(), geolocation=()"
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"

# Uploads: the face pipeline enforces its own byte limit; Django keeps large bodies on disk.
DATA_UPLOAD_MAX_MEMORY_SIZE = 12 * 1024 * 1024
FILE_UPLOAD_MAX_MEMORY_SIZE = 12 * 1024 * 1024

# --- Kinguard keys -------------------------------------------------------------------
# Fernet keys, comma-separated, newest first (MultiFernet): encrypts ID numbers and face
# templates at rest. KINGUARD_ID_HASH_KEY keys the HMAC used to find a person by ID number.
KINGUARD_ENCRYPTION_KEYS = env_list("KINGUARD_ENCRYPTION_KEYS")
KINGUARD_ID_HASH_KEY = env.str("KINGUARD_ID_HASH_KEY", "")

# --- Kinguard rules (DESIGN.md "Rules with numbers") ----------------------------------
KINGUARD_GRANT_MINUTES = env.int("KINGUARD_GRANT_MINUTES", 10)
KINGUARD_LOOKUP_TTL_MINUTES = env.int("KINGUARD_LOOKUP_TTL_MINUTES", 15)
KINGUARD_FACE_ATTEMPTS_PER_LOOKUP = env.int("KINGUARD_FACE_ATTEMPTS_PER_LOOKUP", 3)
KINGUARD_FACE_FAILURES_BEFORE_DELAY = 5
KINGUARD_FACE_DELAY_BASE_SECONDS = 30
KINGUARD_FACE_CHECK_STALE_SECONDS = env.int("KINGUARD_FACE_CHECK_STALE_SECONDS", 120)
KINGUARD_AUTHORIZATION_DEFAULT_DAYS = 365
# None means: use the calibrated default of the face pipeline (lookups.faces.matching).
KINGUARD_FACE_THRESHOLD = (
    env.float("KINGUARD_FACE_THRESHOLD") if env.str("KINGUARD_FACE_THRESHOLD", "").strip() else None
)
KINGUARD_ALLOW_STILL_UPLOAD = env_bool("KINGUARD_ALLOW_STILL_UPLOAD", True)
# Prompted liveness (issue 11): a challenge is valid this long after the face step shows it.
KINGUARD_FACE_CHALLENGE_SECONDS = env.int("KINGUARD_FACE_CHALLENGE_SECONDS", 60)
# At most this many challenges per lookup (reloading the page until a recorded video's
# actions come up is an attack; a live challenge is shown again on reload, not replaced).
KINGUARD_FACE_CHALLENGES_PER_LOOKUP = env.int("KINGUARD_FACE_CHALLENGES_PER_LOOKUP", 8)
# Tests only: a fixed challenge such as "blink" or "open_mouth,turn_left". Production refuses it.
KINGUARD_FACE_CHALLENGE_FIXED = env.str("KINGUARD_FACE_CHALLENGE_FIXED", "")
# A camera capture must answer the server's challenge (issue 11) and is decided by
# lookups.faces.check_capture. Off only in tests that exercise the older burst check.
KINGUARD_FACE_LIVENESS = env_bool("KINGUARD_FACE_LIVENESS", True)
# /readyz answers from checks at most this old (config.health).
KINGUARD_READYZ_CACHE_SECONDS = env.float("KINGUARD_READYZ_CACHE_SECONDS", 5.0)

# Retention (lookups.retention): finished lookups and their face checks are deleted after
# N days (audit events stay); face templates of people with no live authorization and no
# self-lookup right after N days idle; probe files after N minutes whatever happened.
KINGUARD_RETENTION_LOOKUP_DAYS = env.int("KINGUARD_RETENTION_LOOKUP_DAYS", 90)
KINGUARD_RETENTION_FACE_TEMPLATE_DAYS = env.int("KINGUARD_RETENTION_FACE_TEMPLATE_DAYS", 30)
KINGUARD_RETENTION_PROBE_MINUTES = env.int("KINGUARD_RETENTION_PROBE_MINUTES", 10)

# django-otp: TOTP with 30 s steps; failures double the wait (1, 2, 4 ... s), so an
# attacker gets far fewer than 100 guesses an hour.
OTP_TOTP_ISSUER = "Kinguard"
OTP_TOTP_THROTTLE_FACTOR = 1
OTP_TOTP_SYNC = False

# --- Celery ---------------------------------------------------------------------------
CELERY_BROKER_URL = env.str("CELERY_BROKER_URL", "filesystem://")
CELERY_BROKER_TRANSPORT_OPTIONS: dict = {}
if CELERY_BROKER_URL.startswith("filesystem://"):
    _broker_dir = VAR_DIR / "broker"
    CELERY_BROKER_TRANSPORT_OPTIONS = {
        "data_folder_in": str(_broker_dir / "queue"),
        "data_folder_out": str(_broker_dir / "queue"),
        "processed_folder": str(_broker_dir / "processed"),
        "control_folder": str(_broker_dir / "control"),
        "store_processed": False,
        "polling_interval": 0.2,
    }


def redis_transport_options() -> dict:
    """Redis broker options (production and the integration tests' workers).

    acks_late on Redis: a message a worker fetched but never acknowledged (the whole worker
    was killed, or lost its connection) goes back to its queue once it has been unacked for
    ``visibility_timeout`` seconds; a worker checks for such messages every
    ``unacked_restore_interval`` seconds. The timeout must exceed the longest run of a task
    (the face check's hard limit, KINGUARD_FACE_HARD_TIME_LIMIT = 45 s, with prefetch 1) or
    running checks are delivered twice (harmless, they are idempotent, but wasted), and
    timeout + interval must stay below KINGUARD_FACE_CHECK_STALE_SECONDS (120 s) or the
    sweeper expires the check before it is redelivered. Socket timeouts make a publish to a
    dead or hung Redis fail in seconds instead of hanging the guardian's request.
    """
    return {
        "visibility_timeout": env.int("CELERY_VISIBILITY_TIMEOUT", 60),
        "unacked_restore_interval": env.int("CELERY_UNACKED_RESTORE_INTERVAL", 10),
        "unacked_restore_throttle": 1,
        "socket_connect_timeout": 3,
        "socket_timeout": 3,
    }


if CELERY_BROKER_URL.startswith(("redis://", "rediss://")):
    CELERY_BROKER_TRANSPORT_OPTIONS = redis_transport_options()
CELERY_TASK_IGNORE_RESULT = True
# Nothing reads task results; bench/face_throughput.py sets one to time its tasks.
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", "") or None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TIMEZONE = "UTC"
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_QUEUES = (
    Queue("default", Exchange("default", type="direct"), routing_key="default"),
    Queue("face", Exchange("face", type="direct"), routing_key="face"),
)
CELERY_TASK_DEFAULT_EXCHANGE = "default"
CELERY_TASK_DEFAULT_ROUTING_KEY = "default"
CELERY_TASK_ROUTES = {"lookups.tasks.run_face_check": {"queue": "face", "routing_key": "face"}}
# Face checks are CPU-bound and short: one message at a time per process keeps
# long tasks from queueing behind each other on one process.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# A publish must fail fast when the broker is down so the guardian gets a clear answer.
CELERY_BROKER_CONNECTION_TIMEOUT = 3
CELERY_TASK_PUBLISH_RETRY_POLICY = {"max_retries": 2, "interval_start": 0, "interval_step": 0.5, "interval_max": 1}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# On a lost broker connection, stop the running acks_late tasks: their messages are
# redelivered anyway (unacked), so finishing them would only do the work twice.
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True
# Face check time limits (lookups.tasks.run_face_check): the soft limit ends the check
# with an "error" verdict; the hard limit kills the worker child and closes it the same way.
KINGUARD_FACE_SOFT_TIME_LIMIT = env.int("KINGUARD_FACE_SOFT_TIME_LIMIT", 30)
KINGUARD_FACE_HARD_TIME_LIMIT = env.int("KINGUARD_FACE_HARD_TIME_LIMIT", 45)
# A confirmed results import (up to 5,000 rows, one transaction) runs in a worker within this.
KINGUARD_RESULTS_IMPORT_SOFT_TIME_LIMIT = env.int("KINGUARD_RESULTS_IMPORT_SOFT_TIME_LIMIT", 300)
# A check whose worker died this many times is closed as an error (a poison probe).
KINGUARD_FACE_CHECK_MAX_DELIVERIES = env.int("KINGUARD_FACE_CHECK_MAX_DELIVERIES", 3)
CELERY_BEAT_SCHEDULE = {
    "sweep-stale-lookups": {"task": "lookups.tasks.sweep_stale", "schedule": timedelta(minutes=1)},
    "sweep-results-imports": {"task": "lookups.tasks.sweep_results_imports", "schedule": timedelta(minutes=10)},
    "apply-retention": {"task": "lookups.tasks.apply_retention", "schedule": timedelta(minutes=5)},
    "verify-audit-chain": {"task": "lookups.tasks.verify_audit_chain", "schedule": timedelta(hours=1)},
    "detect-anomalies": {"task": "lookups.tasks.detect_anomalies", "schedule": timedelta(minutes=10)},
    "queue-expiry-notices": {"task": "lookups.tasks.queue_expiry_notices", "schedule": timedelta(minutes=15)},
    "sign-audit-head": {"task": "lookups.tasks.sign_audit_head", "schedule": timedelta(minutes=30)},
    # Expired sessions pile up in the database (cached_db); prune them daily.
    "clear-sessions": {"task": "kinguard.clear_sessions", "schedule": timedelta(hours=24)},
}


def _audit_signing_key() -> str:
    """KINGUARD_AUDIT_SIGNING_KEY, or the content of the file KINGUARD_AUDIT_SIGNING_KEY_FILE names."""
    path = env.str("KINGUARD_AUDIT_SIGNING_KEY_FILE", "")
    if path:
        return Path(path).read_text().strip()
    return env.str("KINGUARD_AUDIT_SIGNING_KEY", "")


# Ed25519 private key (base64 of 32 bytes) for signed chain heads; empty = one generated per
# process (tests, dev). Production refuses to start without it (settings/production.py).
KINGUARD_AUDIT_SIGNING_KEY = _audit_signing_key()
# Where signed heads are appended (one JSON line each); WORM storage in production.
KINGUARD_AUDIT_HEAD_DIR = env.path("KINGUARD_AUDIT_HEAD_DIR", VAR_DIR / "audit-heads")

# Logs carry a request id and never personal data (no names, ID numbers, IPs or images).
# KINGUARD_LOG_FORMAT=json gives one JSON object per line (production default).
LOGGING: dict[str, Any] = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"request_id": {"()": "config.request_context.RequestIdLogFilter"}},
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"levelname": "level", "name": "logger"},
            "timestamp": "time",  # ISO 8601 in UTC
        },
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": env.choice("KINGUARD_LOG_FORMAT", "plain", ("plain", "json")),
            "filters": ["request_id"],
        }
    },
    "root": {"handlers": ["console"], "level": env.str("LOG_LEVEL", "INFO")},
    "loggers": {
        "kinguard.access": {"level": env.str("KINGUARD_ACCESS_LOG_LEVEL", "WARNING")},
        "django.server": {"level": "WARNING"},
    },
}

# Labeled test faces (never copied into the repository; see README).
KINGUARD_FACES_DIR = env.path("KINGUARD_FACES_DIR", BASE_DIR.parent / "shared" / "faces")

# --- Audit and oversight --------------------------------------------------------------
# Who hears about a broken audit chain (besides ADMINS): comma-separated emails.
ADMINS = [("Kinguard admin", email) for email in env_list("KINGUARD_ADMIN_EMAILS")]
KINGUARD_ALERT_EMAILS = env_list("KINGUARD_ALERT_EMAILS")
SERVER_EMAIL = env.str("KINGUARD_SERVER_EMAIL", "kinguard@localhost")
DEFAULT_FROM_EMAIL = env.str("KINGUARD_FROM_EMAIL", "kinguard@localhost")
EMAIL_SUBJECT_PREFIX = "[Kinguard] "
# E-mail (elder notices, "audit chain broken" alerts) from one URL, e.g.
# EMAIL_URL=submission://user:password@smtp.example.com:587 (dj-email-url; console:// and
# file:///path also work). Unset: Django's default (SMTP on localhost:25); local settings use files.
EMAIL_URL_SET = bool(env.str("EMAIL_URL", "").strip())
if EMAIL_URL_SET:
    _email = env.dj_email_url("EMAIL_URL")
    if not _email.get("EMAIL_BACKEND"):
        raise SettingsError(
            "EMAIL_URL is not valid: expected an e-mail URL, e.g. submission://user:password@smtp.example.com:587,"
            " submission://..., console:// or file:///path."
        )
    EMAIL_BACKEND = _email["EMAIL_BACKEND"]
    EMAIL_HOST = _email["EMAIL_HOST"] or "localhost"
    EMAIL_PORT = _email["EMAIL_PORT"] or 25
    EMAIL_HOST_USER = _email["EMAIL_HOST_USER"] or ""
    EMAIL_HOST_PASSWORD = _email["EMAIL_HOST_PASSWORD"] or ""
    EMAIL_USE_TLS = bool(_email["EMAIL_USE_TLS"])
    EMAIL_USE_SSL = bool(_email["EMAIL_USE_SSL"])
    EMAIL_TIMEOUT = _email.get("EMAIL_TIMEOUT") or 10
    if _email.get("EMAIL_FILE_PATH"):
        EMAIL_FILE_PATH = _email["EMAIL_FILE_PATH"]
    if _email.get("SERVER_EMAIL"):
        SERVER_EMAIL = _email["SERVER_EMAIL"]
# Elder notices: email through Django's EMAIL_BACKEND, SMS through this backend.
KINGUARD_SMS_BACKEND = env.str("KINGUARD_SMS_BACKEND", "lookups.oversight.sms.ConsoleSmsBackend")
KINGUARD_SMS_FILE_PATH = env.path("KINGUARD_SMS_FILE_PATH", VAR_DIR / "sms" / "outbox.jsonl")
# Alibaba Cloud SMS (KINGUARD_SMS_BACKEND=lookups.oversight.sms.AliyunSmsBackend). Templates map our
# template ids (the notice kinds) to approved TemplateCodes: "results_viewed=SMS_1,authorization_created=SMS_2".
KINGUARD_ALIYUN_SMS_ACCESS_KEY_ID = env.str("KINGUARD_ALIYUN_SMS_ACCESS_KEY_ID", "")
KINGUARD_ALIYUN_SMS_ACCESS_KEY_SECRET = env.str("KINGUARD_ALIYUN_SMS_ACCESS_KEY_SECRET", "")
KINGUARD_ALIYUN_SMS_SIGN_NAME = env.str("KINGUARD_ALIYUN_SMS_SIGN_NAME", "")
KINGUARD_ALIYUN_SMS_TEMPLATES = env.dict("KINGUARD_ALIYUN_SMS_TEMPLATES", {})
KINGUARD_ALIYUN_SMS_ENDPOINT = env.str("KINGUARD_ALIYUN_SMS_ENDPOINT", "dysmsapi.aliyuncs.com")
KINGUARD_ALIYUN_SMS_PROTOCOL = env.choice("KINGUARD_ALIYUN_SMS_PROTOCOL", "https", ("https", "http"))
KINGUARD_ALIYUN_SMS_TIMEOUT_MS = env.int("KINGUARD_ALIYUN_SMS_TIMEOUT_MS", 5000)
# Phone numbers typed without a country code are read in this region (ISO 3166 code).
PHONE_DEFAULT_REGION = env.str("KINGUARD_PHONE_DEFAULT_REGION", "CN").upper()
KINGUARD_NOTICE_EXPIRY_DAYS = env.int("KINGUARD_NOTICE_EXPIRY_DAYS", 7)
KINGUARD_NOTICE_MAX_ATTEMPTS = env.int("KINGUARD_NOTICE_MAX_ATTEMPTS", 8)
KINGUARD_NOTICE_REQUEUE_MINUTES = env.int("KINGUARD_NOTICE_REQUEUE_MINUTES", 15)
# Laboratory deliveries (lookups.fhir): per sender and minute; a busy LIS may need more.
KINGUARD_FHIR_RATE_PER_MINUTE = env.int("KINGUARD_FHIR_RATE_PER_MINUTE", 600)
# Anomaly rules (lookups.oversight.anomalies); windows are epoch-aligned, in UTC.
KINGUARD_ANOMALY_MANY_ELDERS = env.int("KINGUARD_ANOMALY_MANY_ELDERS", 4)
KINGUARD_ANOMALY_MANY_ELDERS_WINDOW_HOURS = env.int("KINGUARD_ANOMALY_MANY_ELDERS_WINDOW_HOURS", 24)
KINGUARD_ANOMALY_OTP_FAILURES = env.int("KINGUARD_ANOMALY_OTP_FAILURES", 5)
KINGUARD_ANOMALY_FACE_FAILURES = env.int("KINGUARD_ANOMALY_FACE_FAILURES", 5)
KINGUARD_ANOMALY_FAILURE_WINDOW_MINUTES = env.int("KINGUARD_ANOMALY_FAILURE_WINDOW_MINUTES", 60)
KINGUARD_ANOMALY_SHARED_IP_ACCOUNTS = env.int("KINGUARD_ANOMALY_SHARED_IP_ACCOUNTS", 4)
KINGUARD_ANOMALY_SHARED_IP_WINDOW_HOURS = env.int("KINGUARD_ANOMALY_SHARED_IP_WINDOW_HOURS", 24)
# Quiet hours in local time (TIME_ZONE), [first, last): lookups then count as unusual.
KINGUARD_ANOMALY_QUIET_HOURS = (
    env.int("KINGUARD_ANOMALY_QUIET_FROM", 0),
    env.int("KINGUARD_ANOMALY_QUIET_TO", 5),
)
KINGUARD_ANOMALY_UNUSUAL_HOURS_MIN = env.int("KINGUARD_ANOMALY_UNUSUAL_HOURS_MIN", 2)
KINGUARD_ANOMALY_QUICK_USE_MINUTES = env.int("KINGUARD_ANOMALY_QUICK_USE_MINUTES", 30)
KINGUARD_ANOMALY_LOOKBACK_HOURS = env.int("KINGUARD_ANOMALY_LOOKBACK_HOURS", 48)
