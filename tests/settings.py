"""Test settings: the project's settings with a fakeredis-backed cache for fast unit tests.

Integration tests point CACHES at a real redis-server they start (see tests/integration/conftest.py).
"""

import os

os.environ.setdefault("SECRET_KEY", "tests-only-secret-key")

import fakeredis

from aicache_project.settings import *  # noqa: F403

FAKE_REDIS_SERVER = fakeredis.FakeServer()

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}

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
