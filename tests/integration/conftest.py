import pytest
from django.core.cache import caches


@pytest.fixture
def real_cache_settings(redis_server):
    return {
        "BACKEND": "aicache.backend.AIResponseCache",
        "LOCATION": f"{redis_server.url}/0",
        "OPTIONS": {
            "CIRCUIT_BREAKER_RESET_SECONDS": 0.5,
            "SOCKET_TIMEOUT": 0.5,
            "SOCKET_CONNECT_TIMEOUT": 0.5,
        },
    }


@pytest.fixture
def real_cache(settings, redis_server, real_cache_settings):
    """caches["ai"] on the real redis-server, database emptied."""
    if redis_server.process is None:
        redis_server.start()
    settings.CACHES = {**settings.CACHES, "ai": real_cache_settings}
    cache = caches["ai"]
    cache.redis.flushdb()
    assert cache.start_coherence(wait=5) == "live"
    yield cache
    if redis_server.process is None:  # a test stopped it: bring it back for the next one
        redis_server.start()
