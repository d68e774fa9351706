"""Settings for subprocess workers in integration tests: the "ai" cache on a real redis-server."""

import json
import os

from tests.settings import *  # noqa: F403

CELERY_BROKER_URL = os.environ.get("AICACHE_TEST_BROKER_URL", "memory://")
CELERY_TASK_ALWAYS_EAGER = False
AICACHE = {
    "HISTORY_ENABLED": os.environ.get("AICACHE_TEST_HISTORY") == "1",
    "FLUSH_INTERVAL": 0.5,
    "MONITOR_MAX_MEASUREMENTS": 100_000,
}

CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    "ai": {
        "BACKEND": "aicache.backend.AIResponseCache",
        "LOCATION": os.environ["AICACHE_TEST_REDIS_URL"],
        "OPTIONS": {
            "CIRCUIT_BREAKER_RESET_SECONDS": 0.5,
            # Sentinel or Cluster workers (tests/topologies): client class, sentinels, ...
            **json.loads(os.environ.get("AICACHE_TEST_OPTIONS", "{}")),
        },
    },
}
