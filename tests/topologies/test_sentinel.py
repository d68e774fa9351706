"""Redis Sentinel only: a failover during a read loop keeps every request succeeding, clears the
memory tier, moves the listener (and its tracking) to the new master, and leaves no breaker open."""

import threading
from collections import Counter

import pytest
import redis
from django.core.cache import caches

from tests.helpers import wait_for, write_and_settle
from tests.topologies.conftest import sentinel_cache_settings

pytestmark = [pytest.mark.integration, pytest.mark.sentinel]

TEXT = "Sentinel moves the master; aicache follows it. "


@pytest.fixture
def sentinel_cache(settings, sentinel_setup):
    settings.CACHES = {**settings.CACHES, "ai": sentinel_cache_settings(sentinel_setup)}
    cache = caches["ai"]
    cache.redis.flushdb()
    assert cache.start_coherence(wait=10) == "live"
    return cache


@pytest.mark.parametrize("how", ["sentinel-failover", "master-killed"])
def test_failover_during_a_read_loop(sentinel_cache, sentinel_setup, how):
    cache = sentinel_cache
    listener = cache._state.listener
    key = cache.key_generator.generate(TEXT, "summarize")
    write_and_settle(cache, key, lambda: cache.cache_response(TEXT, "summarize", None, {"v": 1}))
    sentinel_setup.wait_ready()
    _on_the_replica(sentinel_setup, key)
    assert cache.get_cached_response(TEXT, "summarize")["cache_source"] == "redis"
    assert cache.get_cached_response(TEXT, "summarize")["cache_source"] == "memory"
    epoch_before = cache.coherence.token(key)[0]

    stop = threading.Event()
    served: Counter = Counter()
    errors: list[BaseException] = []

    def read_loop():
        i = 0
        while not stop.is_set():
            try:
                got = cache.get_or_compute(f"{TEXT}loop {i % 20}", "qa", lambda: {"answer": "x"})
                assert got["answer"] == "x"
                served[got["cache_source"]] += 1
            except BaseException as exc:  # reported below: no request may fail
                errors.append(exc)
                return
            i += 1

    thread = threading.Thread(target=read_loop, daemon=True)
    thread.start()
    try:
        wait_for(lambda: sum(served.values()) > 50, 10, "the read loop")
        old = sentinel_setup.master_address()
        new = sentinel_setup.failover() if how == "sentinel-failover" else sentinel_setup.kill_master()
        assert new != old

        # The listener reconnected to the new master, cleared the tier and proved it live again.
        wait_for(lambda: listener.reconnects >= 1 and cache.coherence.status == "live", 30, "the listener")
        assert cache.coherence.token(key)[0] > epoch_before  # the tier was cleared
        assert key not in cache.memory
        assert listener.sockets is not None
        # Tracking now runs on the new master: a foreign write there reaches this process's tier.
        # The first reads after the failover may still meet the breaker, open for a moment (its
        # reset interval) after the old master refused: wait for Redis to answer again.
        wait_for(lambda: cache.get_cached_response(TEXT, "summarize"), 10, "the entry on the new master")
        assert cache.get_cached_response(TEXT, "summarize")["v"] == 1
        assert cache.get_cached_response(TEXT, "summarize")["cache_source"] == "memory"
        foreign = redis.Redis(*new)
        before = listener.messages
        foreign.set(key, cache.codec.encode(b'{"v": 2}', 60).data, ex=60)
        wait_for(lambda: listener.messages > before and key not in cache.memory, 5, "the invalidation")
        assert cache.get_cached_response(TEXT, "summarize")["v"] == 2
        foreign.close()

        # Requests kept succeeding throughout and are served by Redis again: no breaker stays open.
        count = sum(served.values())
        wait_for(lambda: sum(served.values()) > count + 50, 10, "the read loop after the failover")
        assert not errors, errors
        assert served["memory"] + served["redis"] > 0
        wait_for(lambda: cache.ping(), 5, "Redis through the new master")
        assert cache._state.breaker.state == "closed"
    finally:  # never leave the loop writing into the next tests
        stop.set()
        thread.join(10)
    assert cache.get_or_compute(f"{TEXT}loop 0", "qa", lambda: {"answer": "y"})["answer"] == "x"


def _on_the_replica(setup, key: str) -> None:
    replica = redis.Redis(*next(a for a in setup.nodes() if a != setup.master_address()))
    try:
        wait_for(lambda: replica.exists(key), 10, "the entry on the replica")
    finally:
        replica.close()


def _replica_gets(setup) -> int:
    replica = redis.Redis(*next(a for a in setup.nodes() if a != setup.master_address()))
    try:
        return int(replica.info("commandstats").get("cmdstat_get", {}).get("calls", 0))
    finally:
        replica.close()


@pytest.mark.parametrize("replica_reads", [False, True])
def test_replica_reads_only_when_asked_and_never_fill_the_tier(settings, sentinel_setup, replica_reads):
    sentinel_setup.wait_ready()  # an earlier failover's old master may still be resyncing
    options = {"READ_FROM_REPLICAS": True} if replica_reads else {}
    settings.CACHES = {**settings.CACHES, "ai": sentinel_cache_settings(sentinel_setup, **options)}
    cache = caches["ai"]
    cache.redis.flushdb()
    assert cache.start_coherence(wait=10) == "live"
    key = cache.key_generator.generate(TEXT, "qa")
    write_and_settle(cache, key, lambda: cache.cache_response(TEXT, "qa", None, {"v": 1}))
    _on_the_replica(sentinel_setup, key)
    before = _replica_gets(sentinel_setup)
    sources = [cache.get_cached_response(TEXT, "qa")["cache_source"] for _ in range(3)]
    if replica_reads:
        assert sources == ["redis"] * 3  # a replica's answer may be stale: never kept in memory
        assert _replica_gets(sentinel_setup) == before + 3
    else:
        assert sources == ["redis", "memory", "memory"]
        assert _replica_gets(sentinel_setup) == before
