import pytest
from django.core.cache import caches

from tests.integration.processes import Worker


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


@pytest.fixture
def workers(redis_server, real_cache):
    """Start n worker processes on the real Redis, each with a live coherence listener."""
    started: list[Worker] = []

    def start(n: int) -> list[Worker]:
        for _ in range(n):
            worker = Worker(f"{redis_server.url}/0")
            assert worker.call("status")["status"] == "live"
            started.append(worker)
        return started[-n:]

    yield start
    for worker in started:
        worker.close()
