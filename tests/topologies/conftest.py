"""Sentinel (1 master, 1 replica, 3 sentinels) and Redis Cluster (3 primaries, 3 replicas) on
loopback, started once per session by the tests that need them and stopped at its end; and
``buckets``, the cluster layout on the session's plain redis-server (tests/topologies/buckets.py).

``real_cache`` here is ``caches["ai"]`` on each topology (parametrised, marked ``sentinel``,
``cluster`` or ``buckets``), so the integration tests imported by this package run against all
three: ``pytest -m cluster`` (or ``sentinel``, ``buckets``) runs one topology alone."""

import json

import pytest
from django.core.cache import caches

from aicache.bench.topologies import SERVICE, ClusterSetup, SentinelSetup
from tests.helpers import started
from tests.integration.processes import worker_pool

FAST = {"CIRCUIT_BREAKER_RESET_SECONDS": 0.5, "SOCKET_TIMEOUT": 0.5, "SOCKET_CONNECT_TIMEOUT": 0.5}


@pytest.fixture(scope="session")
def sentinel_setup(tmp_path_factory):
    with started(SentinelSetup(tmp_path_factory.mktemp("sentinel"))) as setup:
        yield setup


@pytest.fixture(scope="session")
def cluster_setup(tmp_path_factory):
    with started(ClusterSetup(tmp_path_factory.mktemp("cluster"))) as setup:
        yield setup


def sentinel_cache_settings(setup: SentinelSetup, **options) -> dict:
    return {
        "BACKEND": "aicache.backend.AIResponseCache",
        "LOCATION": f"redis://{SERVICE}/0",
        "OPTIONS": {
            "CLIENT_CLASS": "django_redis.client.SentinelClient",
            "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
            "SENTINELS": setup.sentinels,
            **FAST,
            **options,
        },
    }


def cluster_cache_settings(setup: ClusterSetup, **options) -> dict:
    return {
        "BACKEND": "aicache.backend.AIResponseCache",
        "LOCATION": setup.location,
        "OPTIONS": {"CLIENT_CLASS": "aicache.cluster.ClusterClient", **FAST, **options},
    }


def buckets_cache_settings(server, **options) -> dict:
    return {
        "BACKEND": "aicache.backend.AIResponseCache",
        "LOCATION": f"{server.url}/0",
        "OPTIONS": {
            "CLIENT_CLASS": "tests.topologies.buckets.OneNodeBuckets",
            "REDIS_CLIENT_CLASS": "tests.topologies.buckets.OneSlotRedis",
            **FAST,
            **options,
        },
    }


@pytest.fixture
def buckets_setup(redis_server):
    if redis_server.process is None:  # a test stopped it
        redis_server.start()
    return redis_server


SETTINGS = {
    "sentinel": sentinel_cache_settings,
    "cluster": cluster_cache_settings,
    "buckets": buckets_cache_settings,
}


@pytest.fixture(
    params=[
        pytest.param("sentinel", marks=pytest.mark.sentinel),
        pytest.param("cluster", marks=pytest.mark.cluster),
        pytest.param("buckets", marks=pytest.mark.buckets),
    ]
)
def topology(request):
    return request.param


@pytest.fixture
def topology_setup(request, topology):
    return request.getfixturevalue(f"{topology}_setup")


@pytest.fixture
def real_cache(settings, topology, topology_setup):
    """caches["ai"] on the topology, emptied, its memory tier proven live on every primary."""
    settings.CACHES = {**settings.CACHES, "ai": SETTINGS[topology](topology_setup)}
    cache = caches["ai"]
    cache.redis.flushdb()
    assert cache.start_coherence(wait=10) == "live"
    return cache


@pytest.fixture
def workers(real_cache, topology, topology_setup):
    """Start n worker processes on the topology, each with a live coherence listener."""
    config = SETTINGS[topology](topology_setup)
    options = {k: v for k, v in config["OPTIONS"].items() if k not in FAST}
    with worker_pool(config["LOCATION"], AICACHE_TEST_OPTIONS=json.dumps(options)) as start:
        yield start
