"""Settings for the reference project, read from the environment with safe defaults.

| variable       | default                                   |
|----------------|-------------------------------------------|
| DEBUG          | off ("1", "true", "yes", "on" turn it on) |
| SECRET_KEY     | required unless DEBUG is on               |
| ALLOWED_HOSTS  | "localhost,127.0.0.1"                     |
| DATABASE_URL   | sqlite:///<repo>/.run/db.sqlite3          |
| REDIS_URL      | redis://127.0.0.1:6390/0 (`make run`)     |
| CELERY_BROKER_URL | REDIS_URL with database 1              |
| CELERY_RESULT_BACKEND | REDIS_URL with database 2          |
| METRICS_TOKEN  | "" (then /metrics needs a staff session)  |
| STATIC_ROOT    | <repo>/.run/static (collectstatic)        |
| LOG_FORMAT     | "text"; "json": one JSON object per line  |
| DEFAULT_CACHE_URL | "" (then the default cache is LocMem)  |
| AICACHE_PROCESS_RATE | "60/minute" (POST process/, per user) |
| AICACHE_FLUSH_INTERVAL | AICACHE's FLUSH_INTERVAL (10 s)      |
"""

from __future__ import annotations

import os
from pathlib import Path

import dj_database_url
from django.core.exceptions import ImproperlyConfigured

from aicache.monitoring.celery import BEAT_SCHEDULE, TASK_ROUTES

BASE_DIR = Path(__file__).resolve().parent.parent
RUN_DIR = BASE_DIR / ".run"


def env_bool(name: str, default: bool = False) -> bool:
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def env_list(name: str, default: str) -> list[str]:
    return [item.strip() for item in os.environ.get(name, default).split(",") if item.strip()]


def redis_url_with_db(url: str, db: int) -> str:
    base, _, tail = url.rpartition("/")
    return f"{base}/{db}" if tail.isdigit() and base.count("/") >= 2 else f"{url.rstrip('/')}/{db}"


DEBUG = env_bool("DEBUG")
SECRET_KEY = os.environ.get("SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured("Set SECRET_KEY in the environment (or DEBUG=1 for a throwaway dev key).")
    SECRET_KEY = "insecure-dev-only-key-do-not-use-in-production"
ALLOWED_HOSTS = env_list("ALLOWED_HOSTS", "localhost,127.0.0.1")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "aicache",
    "aicache.monitoring",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",  # static files from STATIC_ROOT, DEBUG or not
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "aicache_project.urls"
WSGI_APPLICATION = "aicache_project.wsgi.application"
ASGI_APPLICATION = "aicache_project.asgi.application"

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

DATABASES = {
    # A persistent connection is checked before each request reuses it: after a database restart
    # every worker reconnects on its next request instead of failing it once (a worker that served
    # nothing during the outage still holds the dead connection).
    "default": dj_database_url.parse(
        os.environ.get("DATABASE_URL", f"sqlite:///{RUN_DIR / 'db.sqlite3'}"),
        conn_max_age=60,
        conn_health_checks=True,
    )
}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Writers take the lock when their transaction starts: read-modify-write merges of
    # monitoring rollups cannot interleave, and lock waits get 20 s before failing.
    DATABASES["default"]["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
    DATABASES["default"]["CONN_MAX_AGE"] = 0

REDIS_URL = os.environ.get("REDIS_URL", "redis://127.0.0.1:6390/0")

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "ai": {
        "BACKEND": "aicache.backend.AIResponseCache",
        "LOCATION": REDIS_URL,
        "OPTIONS": {},
    },
}
# DEFAULT_CACHE_URL (make prod-like sets it): Django's default cache, which DRF's throttles count
# in, on Redis, so that a rate holds across all web processes and not once per gunicorn worker.
if os.environ.get("DEFAULT_CACHE_URL"):
    CACHES["default"] = {
        "BACKEND": "django_redis.cache.RedisCache",  # pooled (Django's own builds a client per call)
        "LOCATION": os.environ["DEFAULT_CACHE_URL"],
        # JSON, not pickle: nothing read from Redis is unpickled (throttles store lists of floats)
        "OPTIONS": {"SERIALIZER": "django_redis.serializers.json.JSONSerializer"},
    }

# The monitoring API (aicache.monitoring.api): OpenAPI by drf-spectacular, UI assets from the
# sidecar (no CDN); throttle rates of its invalidate/reset and of the project's process endpoint.
REST_FRAMEWORK = {
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_RATES": {
        "aicache_invalidate": "10/minute",
        "aicache_process": os.environ.get("AICACHE_PROCESS_RATE", "60/minute"),
    },
}
SPECTACULAR_SETTINGS = {
    "TITLE": "aicache API",
    "DESCRIPTION": "Stats, history, health and invalidation of the AI response cache.",
    "VERSION": "1",
    "SERVE_INCLUDE_SCHEMA": False,
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
}

# Global aicache settings (per-cache OPTIONS override these); see README's configuration table.
# METRICS_TOKEN: Prometheus scrapes /metrics with `Authorization: Bearer <token>`.
AICACHE: dict = {"METRICS_TOKEN": os.environ.get("METRICS_TOKEN", "")}
if os.environ.get("AICACHE_FLUSH_INTERVAL"):  # seconds between history shipments (default 10)
    AICACHE["FLUSH_INTERVAL"] = float(os.environ["AICACHE_FLUSH_INTERVAL"])

# The reference text processor behind the demo and the benchmarks; point CLASS at your LLM client.
AICACHE_TEXT_PROCESSOR = {
    "CLASS": os.environ.get("AICACHE_PROCESSOR_CLASS", "aicache.processor.LocalTextProcessor"),
    "OPTIONS": {"latency": float(os.environ.get("AICACHE_PROCESSOR_LATENCY", "0.8"))},
}

# Celery: broker and results on Redis, in other database numbers than the cache. The monitoring
# tasks run on their own queue; start a worker with `-Q celery,aicache_monitoring`.
CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", redis_url_with_db(REDIS_URL, 1))
CELERY_RESULT_BACKEND = os.environ.get("CELERY_RESULT_BACKEND", redis_url_with_db(REDIS_URL, 2))
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_EXPIRES = 3600
CELERY_WORKER_PREFETCH_MULTIPLIER = 1  # with acks_late: a dying worker holds at most one batch
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_CANCEL_LONG_RUNNING_TASKS_ON_CONNECTION_LOSS = True  # redelivered, not half-acked
CELERY_TASK_SOFT_TIME_LIMIT = 300
CELERY_TASK_TIME_LIMIT = 360
CELERY_BROKER_CONNECTION_TIMEOUT = 2  # a publish to a dead broker fails fast (the flusher retries)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "socket_connect_timeout": 2,
    "socket_timeout": 5,
    # A task not acknowledged this long (its worker was killed) is delivered again: above the
    # longest ingestion retry countdown (300 s) plus a task's time limit, so a waiting retry is
    # never redelivered early, and a crash delays history by about 12 minutes at most (kombu scans
    # for overdue batches every 100 s).
    "visibility_timeout": 600,
}
CELERY_TASK_ROUTES = {**TASK_ROUTES}  # the same dicts a library user merges (README)
CELERY_BEAT_SCHEDULE = {**BEAT_SCHEDULE}

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = os.environ.get("STATIC_ROOT", str(RUN_DIR / "static"))  # collectstatic writes here
# WhiteNoise (middleware above) serves what collectstatic gathered, with Django's default storage:
# WhiteNoise's compressed storages would brotli-compress ~20 MB of API-docs assets at every
# collectstatic (about a minute on this machine).
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# LOG_FORMAT=json (make prod-like): every record, Django's, aicache's, Celery's and gunicorn's, as
# one JSON object per line on stdout (python-json-logger), for a log shipper to parse.
LOG_FORMAT = os.environ.get("LOG_FORMAT", "text")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
        }
    },
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"aicache": {"handlers": ["console"], "level": os.environ.get("AICACHE_LOG_LEVEL", "INFO")}},
}
if LOG_FORMAT == "json":
    LOGGING["handlers"]["console"] = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stdout",
        "formatter": "json",
    }
    LOGGING["root"] = {"handlers": ["console"], "level": "INFO"}
    LOGGING["loggers"]["aicache"]["propagate"] = False
    CELERY_WORKER_HIJACK_ROOT_LOGGER = False  # Celery logs through the root logger above

if not DEBUG:
    SESSION_COOKIE_HTTPONLY = True
    CSRF_COOKIE_HTTPONLY = True
    X_FRAME_OPTIONS = "DENY"
    SECURE_CONTENT_TYPE_NOSNIFF = True
