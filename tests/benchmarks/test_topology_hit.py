"""A Redis-tier hit (``get_cached_response``, memory tier off) on one redis-server and on a
3-primary Redis Cluster (docs/performance.md, "Topologies"). ``make bench`` runs it."""

import pytest
from django.core.cache import caches

from tests.topologies.conftest import cluster_cache_settings, cluster_setup  # noqa: F401

TEXT = "A hit on one node and on the cluster: key, GET, decode, respond. " * 7  # 500 characters
RESPONSE = {"summary": "The same answer either way. " * 25}


@pytest.fixture(params=["single", "cluster"])
def hit_cache(request, settings, redis_server):
    options = {"MEMORY_TIERS": [], "KEY_PREFIX": "bench_topology"}
    if request.param == "cluster":
        config = cluster_cache_settings(request.getfixturevalue("cluster_setup"), **options)
    else:
        config = {
            "BACKEND": "aicache.backend.AIResponseCache",
            "LOCATION": f"{redis_server.url}/0",
            "OPTIONS": options,
        }
    settings.CACHES = {**settings.CACHES, "topology": config}
    cache = caches["topology"]
    cache.cache_response(TEXT, "summarize", None, RESPONSE)
    yield cache
    cache.invalidate_all()


def test_redis_tier_hit(benchmark, hit_cache):
    got = benchmark.pedantic(
        hit_cache.get_cached_response, args=(TEXT, "summarize"), rounds=2000, iterations=1, warmup_rounds=200
    )
    assert got["cache_source"] == "redis" and got["summary"] == RESPONSE["summary"]
