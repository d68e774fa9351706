"""A Redis Cluster none of whose startup nodes answers: redis-py's RedisCluster connects when it is
built, so the client itself cannot be made. Every call still answers (fail-open, counted), and the
client is built once the cluster is back (the next call tries again)."""

import socket

import pytest
from django.core.cache import caches


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def dead_cluster_cache(settings):
    settings.CACHES = {
        **settings.CACHES,
        "dead": {
            "BACKEND": "aicache.backend.AIResponseCache",
            "LOCATION": f"redis://127.0.0.1:{_closed_port()},redis://127.0.0.1:{_closed_port()}",
            "OPTIONS": {
                "CLIENT_CLASS": "aicache.cluster.ClusterClient",
                "SOCKET_CONNECT_TIMEOUT": 0.2,
                "SOCKET_TIMEOUT": 0.2,
                "KEY_PREFIX": "dead",
            },
        },
    }
    return caches["dead"]


def test_every_call_answers_when_no_cluster_node_does(dead_cluster_cache):
    cache = dead_cluster_cache
    text = "A cluster with every node down never breaks the caller's request."
    assert cache.get_cached_response(text, "qa") is None
    assert cache.cache_response(text, "qa", None, {"a": 1}) is None
    calls = []
    out = cache.get_or_compute(text, "qa", lambda: calls.append(1) or {"a": 2})
    assert out["a"] == 2 and calls == [1]
    assert cache.invalidate_by_operation("qa") == 0
    assert cache.ping() is False
    assert cache.error_counts()["unreachable"] >= 3
    assert cache._raw_client is None  # not kept: the next call builds the client again
