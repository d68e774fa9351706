import pytest
from django.core.cache import caches


@pytest.fixture
def bench_cache(settings, redis_server):
    """Build a cache on the real redis-server with extra OPTIONS, coherence live, Redis empty."""
    made = []

    def build(alias: str, **options):
        settings.CACHES = {
            **settings.CACHES,
            alias: {
                "BACKEND": "aicache.backend.AIResponseCache",
                "LOCATION": f"{redis_server.url}/0",
                "OPTIONS": {"KEY_PREFIX": f"bench_{alias}", **options},
            },
        }
        cache = caches[alias]
        cache.start_coherence(wait=5)
        made.append(cache)
        return cache

    yield build
    for cache in made:
        cache.invalidate_all()
