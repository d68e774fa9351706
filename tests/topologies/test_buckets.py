"""The ``buckets`` topology is what tests/topologies/buckets.py says: aicache's cluster layout on
the plain redis-server, refusing keys of several slots where a cluster node would."""

import pytest
import redis
from redis.exceptions import CrossSlotTransactionError, RedisClusterException

from tests.topologies.buckets import OneSlotRedis

pytestmark = [pytest.mark.integration, pytest.mark.buckets]


@pytest.fixture
def buckets_cache(settings, buckets_setup):
    from django.core.cache import caches

    from tests.topologies.conftest import buckets_cache_settings

    settings.CACHES = {**settings.CACHES, "ai": buckets_cache_settings(buckets_setup)}
    cache = caches["ai"]
    cache.redis.flushdb()
    return cache


def test_the_cache_uses_the_cluster_layout_on_one_plain_node(buckets_cache, buckets_setup):
    assert type(buckets_cache.redis) is OneSlotRedis
    assert buckets_cache._lean_client() is None  # as on a cluster: every command through redis-py
    assert buckets_cache.ns.clustered and len(buckets_cache.ns.buckets) == 16
    keys = {buckets_cache.key_generator.generate(f"text {i}", "summarize") for i in range(64)}
    assert {buckets_cache.ns.bucket(key) for key in keys} == set("0123456789abcdef")
    for i in range(64):
        buckets_cache.cache_response(f"text {i}", "summarize", None, {"v": i})
    plain = redis.Redis.from_url(buckets_setup.url)
    try:
        assert plain.info("cluster")["cluster_enabled"] == 0
        stored = {k.decode() for k in plain.scan_iter(match="ai_cache:summarize:*")}
        assert stored == keys
        indexes = {k.decode() for k in plain.scan_iter(match="ai_cache!idx:summarize*")}
        assert indexes == {f"ai_cache!idx:summarize:{{{b}}}" for b in "0123456789abcdef"}
    finally:
        plain.close()
    assert buckets_cache.invalidate_by_operation("summarize") == 64


def test_keys_of_several_slots_are_refused_as_redis_cluster_would(buckets_setup):
    client = OneSlotRedis.from_url(buckets_setup.url)
    try:
        script = client.register_script("return #KEYS")
        assert script(keys=["a:{1}", "b:{1}"]) == 2
        with pytest.raises(RedisClusterException, match="same key slot"):
            script(keys=["a:{1}", "b:{2}"])
        client.set("a:{1}", 1)
        assert client.rename("a:{1}", "c:{1}")
        with pytest.raises(RedisClusterException, match="same key slot"):
            client.rename("c:{1}", "d:{2}")
        assert client.delete("c:{1}", "d:{2}") == 1  # RedisCluster splits it by slot
        pipe = client.pipeline()  # like RedisCluster's: no transaction unless asked
        pipe.incr("x:{1}").incr("x:{2}")
        assert pipe.execute() == [1, 1]
        with pytest.raises(RedisClusterException, match="multiple keys"):
            pipe.delete("x:{1}", "x:{2}")
        pipe.exists("x:{1}", "x:{2}")
        with pytest.raises(RedisClusterException, match="same key slot"):
            pipe.execute()
        assert pipe.command_stack == []  # refused and reset: the next use starts empty
        with pytest.raises(RedisClusterException, match="blocked"):
            script(keys=["a:{1}"], client=client.pipeline())
        with pytest.raises(RedisClusterException, match="blocked"):
            client.pipeline().mget("x:{1}")
        pipe = client.pipeline(transaction=True)
        pipe.incr("x:{1}").incr("x:{1}")
        assert pipe.execute() == [2, 3]
        pipe.incr("x:{1}").incr("x:{2}")
        with pytest.raises(CrossSlotTransactionError, match="same key slot"):
            pipe.execute()
        pipe = client.pipeline()
        pipe.multi()
        pipe.incr("x:{1}").incr("x:{2}")
        with pytest.raises(CrossSlotTransactionError, match="same key slot"):
            pipe.execute()
        assert client.mget("x:{1}", "x:{2}") == [b"3", b"1"]  # the refused MULTI changed nothing
    finally:
        client.flushdb()
        client.close()
