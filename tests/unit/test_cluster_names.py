"""Redis Cluster names: everything a write or an invalidation of an entry touches atomically
hashes to the entry's own slot; entries spread over 16 slots; one node keeps the plain names."""

from redis.crc import key_slot

from aicache.cluster_coherence import probe_tag
from aicache.keys import CacheKeyGenerator
from aicache.namespace import Namespace


def test_every_name_of_an_entry_shares_its_slot():
    ns = Namespace("ai_cache", clustered=True)
    keys = CacheKeyGenerator("ai_cache", clustered=True)
    slots = set()
    for i in range(200):
        key = keys.generate(f"text {i}", "summarize")
        b = ns.bucket(key)
        slot = key_slot(key.encode())
        slots.add(slot)
        names = [
            ns.lock(key),
            ns.index("summarize", b),
            ns.drain("summarize", "tok", b),
            ns.drains("summarize", b),
            ns.operations(b),
            ns.gen_all(b),
            ns.generation("summarize", b),
            ns.tag_index("prompt:v3", b),
            ns.tag_generation("prompt:v3", b),
            ns.tag_drain("tok", b),
            ns.tag_drains("prompt:v3", b),
        ]
        assert {key_slot(name.encode()) for name in names} == {slot}, key
        # Still an entry to every parser: one operation segment, matched by the pattern SCAN.
        assert ns.is_entry(key) and ns.operation_of(key) == "summarize"
    assert len(slots) == len(ns.buckets) == 16


def test_one_node_keeps_the_plain_layout():
    ns = Namespace("ai_cache")
    key = CacheKeyGenerator("ai_cache").generate("text", "qa")
    assert "{" not in key and ns.bucket(key) == "" and ns.buckets == ("",)
    assert ns.index("qa") == "ai_cache!idx:qa" and ns.gen_all() == "ai_cache!gen"
    assert ns.tag_generation("t") == "ai_cache!gen:tag:t" and ns.operations() == "ai_cache!ops"


def test_a_probe_tag_lands_in_the_node_slots():
    for ranges in ([(0, 5460)], [(5461, 10922)], [(10923, 16383)], [(100, 100), (7000, 7001)]):
        slot = key_slot(probe_tag(ranges).encode())
        assert any(start <= slot <= end for start, end in ranges)


def test_cluster_client_passes_password_and_pool_kwargs(settings, monkeypatch):
    """Review finding: ClusterClient.connect ignored OPTIONS PASSWORD and CONNECTION_POOL_KWARGS."""
    from django.core.cache import caches

    from aicache import cluster

    made = []

    class Recorder:
        def __init__(self, **kwargs):
            made.append(kwargs)

    monkeypatch.setattr(cluster, "Cluster", Recorder)
    monkeypatch.setattr(cluster, "_clusters", {})
    settings.CACHES = {
        "default": settings.CACHES["default"],
        "ai": {
            "BACKEND": "aicache.backend.AIResponseCache",
            "LOCATION": "redis://:fromurl@127.0.0.1:7001,redis://127.0.0.1:7002",
            "OPTIONS": {
                "CLIENT_CLASS": "aicache.cluster.ClusterClient",
                "PASSWORD": "s3cret",
                "CONNECTION_POOL_KWARGS": {"max_connections": 7, "health_check_interval": 30},
            },
        },
    }
    caches["ai"].client.get_client(write=True)
    (kwargs,) = made
    assert kwargs["password"] == "s3cret"  # OPTIONS PASSWORD wins over the URL's, as in django-redis
    assert kwargs["max_connections"] == 7 and kwargs["health_check_interval"] == 30
    assert kwargs["protocol"] == 2 and kwargs["retry"]._retries == 0
    assert [(n.host, n.port) for n in kwargs["startup_nodes"]] == [("127.0.0.1", 7001), ("127.0.0.1", 7002)]
    # The same settings share one client (the identity compares values, not a Retry's repr).
    caches["ai"].client.get_client(write=True)
    assert len(made) == 1


def test_every_command_names_its_primary_to_the_watches_replicas_aside():
    """aicache.cluster.Cluster tells each coherence watch which node a command goes to (a node the
    watch does not prove clears its tier: tests/topologies/test_cluster.py); a node redis-py holds
    for a replica gets no key command from aicache and is not reported."""
    from redis.cluster import PRIMARY, REPLICA, ClusterNode

    from aicache.cluster import Cluster

    seen = []

    class Watch:
        def using(self, host, port):
            seen.append((host, port))

    client = Cluster.__new__(Cluster)  # no cluster needed: only the connection lookup is used
    client.watch_nodes(Watch())
    primary = ClusterNode("127.0.0.1", 7001, PRIMARY, redis_connection="primary connection")
    replica = ClusterNode("127.0.0.1", 7004, REPLICA, redis_connection="replica connection")
    assert client.get_redis_connection(primary) == "primary connection"
    assert client.get_redis_connection(replica) == "replica connection"
    assert seen == [("127.0.0.1", 7001)]
