"""Settings for subprocess workers in integration tests: the "ai" cache on a real redis-server."""

import os

from tests.settings import *  # noqa: F403

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "ai": {
        "BACKEND": "aicache.backend.AIResponseCache",
        "LOCATION": os.environ["AICACHE_TEST_REDIS_URL"],
        "OPTIONS": {"CIRCUIT_BREAKER_RESET_SECONDS": 0.5},
    },
}
