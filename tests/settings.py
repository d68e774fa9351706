"""Test settings: the project's settings with a fakeredis-backed cache for fast unit tests.

Integration tests point CACHES at a real redis-server they start (see tests/integration/conftest.py).
"""

import os
import tempfile

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")

import dj_database_url
import fakeredis

from aicache_project.settings import *  # noqa: F403

FAKE_REDIS_SERVER = fakeredis.FakeServer()

if os.environ.get("AICACHE_TEST_DATABASE_URL"):  # the PostgreSQL run (scripts/with-postgres.sh)
    DATABASES = {"default": dj_database_url.parse(os.environ["AICACHE_TEST_DATABASE_URL"])}
else:
    # A file, not ":memory:": an in-memory database shared between threads (the embedded Celery
    # worker writes while the test reads) uses table locks that fail at once instead of waiting.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": ":memory:",
            "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": 20},
            "TEST": {"NAME": os.path.join(tempfile.gettempdir(), f"aicache-test-{os.getpid()}.sqlite3")},
        }
    }

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "ai": {
        "BACKEND": "aicache.backend.AIResponseCache",
        "LOCATION": "redis://fake:6379/0",
        "OPTIONS": {
            # fakeredis has no client tracking: one process, so "local" coherence is exact here
            "MEMORY_COHERENCE": "local",
            "CONNECTION_POOL_KWARGS": {
                "connection_class": fakeredis.FakeRedisConnection,
                "server": FAKE_REDIS_SERVER,
            },
        },
    },
}

PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
CELERY_TASK_ALWAYS_EAGER = True
# Unit tests keep monitoring in-process; the history tests turn HISTORY_ENABLED on.
AICACHE = {"HISTORY_ENABLED": False}
