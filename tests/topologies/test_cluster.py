"""Redis Cluster only: entries spread over every primary, each primary tracked, counts exact across
primaries, single flight and fencing in every bucket, and a slot migration during reads and
invalidations that never yields a stale answer or an inexact count."""

import threading

import pytest
import redis
from django.core.cache import caches
from redis.cluster import ClusterNode, RedisCluster
from redis.crc import key_slot

from aicache.cluster_coherence import topology
from tests.helpers import run_threads, wait_for, write_and_settle
from tests.topologies.conftest import cluster_cache_settings

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

TEXT = "Redis Cluster spreads aicache entries over every primary. "


@pytest.fixture
def cluster_cache(settings, cluster_setup):
    settings.CACHES = {**settings.CACHES, "ai": cluster_cache_settings(cluster_setup)}
    cache = caches["ai"]
    cache.redis.flushdb()
    assert cache.start_coherence(wait=10) == "live"
    return cache


@pytest.fixture
def foreign(cluster_setup):
    """Another process's client on the cluster."""
    client = RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", cluster_setup.ports[0])], protocol=2)
    yield client
    client.close()


def texts_per_bucket(cache, operation="summarize") -> dict[str, str]:
    """One text whose key falls in each of the 16 buckets."""
    found: dict[str, str] = {}
    i = 0
    while len(found) < len(cache.ns.buckets):
        text = f"{TEXT}{i}"
        found.setdefault(cache.ns.bucket(cache.key_generator.generate(text, operation)), text)
        i += 1
    return found


def owner(slot_map, key: str) -> int:
    slot = key_slot(key.encode())
    return next(port for start, end, _, port in slot_map if start <= slot <= end)


def test_entries_spread_over_every_primary_and_each_primary_is_tracked(cluster_cache, foreign):
    texts = texts_per_bucket(cluster_cache)
    keys = {}
    for text in texts.values():
        key = keys[text] = cluster_cache.key_generator.generate(text, "summarize")
        write_and_settle(
            cluster_cache,
            key,
            lambda text=text: cluster_cache.cache_response(text, "summarize", None, {"v": 1}),
        )
        assert cluster_cache.get_cached_response(text, "summarize")["cache_source"] == "redis"
        assert cluster_cache.get_cached_response(text, "summarize")["cache_source"] == "memory"
    slot_map = topology(cluster_cache.redis)
    assert {owner(slot_map, key) for key in keys.values()} == {port for *_, port in slot_map}
    assert len(slot_map) == 3
    # Another process deletes each entry on its own primary: every primary's tracking evicts it.
    for text, key in keys.items():
        assert key in cluster_cache.memory
        foreign.delete(key)
        wait_for(lambda key=key: key not in cluster_cache.memory, 5, f"eviction of {key}")
        assert cluster_cache.get_cached_response(text, "summarize") is None


def test_counts_exact_across_primaries(cluster_cache, foreign):
    for operation in ("summarize", "summary_v2", "qa"):
        for i in range(40):
            cluster_cache.cache_response(f"{TEXT}{i}", operation, None, {"v": i}, tags=[f"t{i % 2}"])
    assert cluster_cache.count_all() == 120
    assert cluster_cache.count_pattern("summ*") == 80
    assert cluster_cache.count_by_operation("qa") == 40
    assert cluster_cache.count_tags(["t0"]) == 60
    assert cluster_cache.invalidate_tags(["t0"]) == 60
    assert cluster_cache.invalidate_pattern("summary_*") == 20
    assert cluster_cache.invalidate_by_operation("qa") == 20
    assert cluster_cache.count_all() == 20
    assert cluster_cache.invalidate_all() == 20
    assert cluster_cache.count_all() == 0
    assert not list(foreign.scan_iter(match="ai_cache:[a-z]*"))  # every primary scanned: nothing left


def test_single_flight_lease_and_fence_in_every_bucket(cluster_cache, foreign):
    for bucket, text in texts_per_bucket(cluster_cache, "qa").items():
        key = cluster_cache.key_generator.generate(text, "qa")
        leases = []

        def compute(key=key):
            leases.append(foreign.exists(cluster_cache.ns.lock(key)))
            return {"answer": 1}

        assert cluster_cache.get_or_compute(text, "qa", compute)["cache_hit"] is False
        assert leases == [1], f"no lease held on bucket {bucket}"
        assert cluster_cache.get_or_compute(text, "qa", compute)["cache_hit"] is True

        def invalidated_meanwhile():
            assert cluster_cache.invalidate_by_operation("qa") == 1  # the entry stored above
            return {"answer": 2}

        got = cluster_cache.get_or_compute(text, "qa", invalidated_meanwhile, cache="refresh")
        assert got["answer"] == 2
        assert cluster_cache.get_cached_response(text, "qa") is None, f"fence failed on bucket {bucket}"


def test_slot_migration_during_reads_and_invalidations(cluster_cache, cluster_setup, foreign):
    """``redis-cli --cluster reshard`` moves the slots of two buckets from one primary to another
    while rounds of write, read and invalidate run: every read returns the round's value or a
    miss, never an older one; every invalidation's count equals the entries written; the listener
    follows the new slot map and proves every primary again."""
    cache = cluster_cache
    slot_map = topology(cache.redis)
    first_start, first_end, _, _ = slot_map[0]
    source = next(node for node in cluster_setup.primaries() if node[1] == slot_map[0][3])
    target = next(node for node in cluster_setup.primaries() if node[1] == slot_map[1][3])
    bucket_slots = sorted(key_slot(b.encode()) for b in cache.ns.buckets)
    moving = [s for s in bucket_slots if first_start <= s <= first_end][:2]
    assert len(moving) == 2
    resharded = threading.Event()
    errors: list[BaseException] = []

    def reshard():
        try:
            cluster_setup.reshard(source[2], target[2], moving[-1] - first_start + 1)
        except BaseException as exc:  # reported below
            errors.append(exc)
        finally:
            resharded.set()

    texts = [f"{TEXT}reshard {i}" for i in range(48)]
    listener = cache._state.listener
    changes_before = listener.watch.changes
    thread = threading.Thread(target=reshard, daemon=True)
    thread.start()
    rounds = during = 0
    while not resharded.is_set() or rounds < 3:
        rounds += 1
        during += not resharded.is_set()
        written = 0
        for text in texts:
            req = cache._request(text, "summarize", None, None)
            written += cache._store.__wrapped__(cache, req, b'{"round": %d}' % rounds).written
        for _ in range(2):  # the second read may come from the memory tier
            for text in texts:
                got = cache.get_cached_response(text, "summarize")
                assert got is None or got["round"] == rounds, f"stale answer {got} in round {rounds}"
        removed = 0
        for _ in range(20):  # a call that met a migrating slot counts what it removed; go on
            if rounds % 2:
                removed += cache.invalidate_by_operation("summarize")
            else:
                removed += cache.invalidate_pattern("summ*")
            if cache.count_by_operation("summarize") == 0 and not list(
                foreign.scan_iter(match="ai_cache:summarize:*")
            ):
                break
            cache._state.breaker.success()
        assert removed == written, f"round {rounds}: {written} written, {removed} removed"
        for text in texts:
            assert cache.get_cached_response(text, "summarize") is None
    thread.join(120)
    assert not errors, errors
    print(f"{rounds} rounds, {during} begun during the reshard")
    assert during >= 1
    assert topology(cache.redis) != slot_map
    wait_for(lambda: listener.watch.changes > changes_before, 10, "the listener to see the new map")
    assert listener.wait_live(10)
    # A foreign write to a moved bucket still reaches the memory tier through its new primary.
    text = next(
        t
        for t in texts
        if key_slot(cache.ns.bucket(cache.key_generator.generate(t, "summarize")).encode()) in moving
    )
    key = cache.key_generator.generate(text, "summarize")
    write_and_settle(cache, key, lambda: cache.cache_response(text, "summarize", None, {"round": 0}))
    cache.get_cached_response(text, "summarize")
    assert cache.get_cached_response(text, "summarize")["cache_source"] == "memory"
    foreign.delete(key)
    wait_for(lambda: key not in cache.memory, 5, "the moved bucket's eviction")
    assert isinstance(foreign, redis.RedisCluster)


def test_plain_django_api_on_the_cluster(cluster_cache):
    """django-redis's own methods on the cluster client: multi-key calls span slots."""
    values = {f"plain-{i}": {"n": i} for i in range(40)}
    cluster_cache.set_many(values, timeout=60)
    assert cluster_cache.get_many(list(values)) == values
    assert cluster_cache.get("plain-3") == {"n": 3}
    cluster_cache.delete_many([f"plain-{i}" for i in range(20)])
    assert len(cluster_cache.get_many(list(values))) == 20
    assert cluster_cache.delete_pattern("plain-*") == 20
    assert cluster_cache.get_many(list(values)) == {}


def test_a_primary_killed_fails_over_and_the_listener_follows(cluster_cache, cluster_setup):
    """A primary dies; its replica takes over its slots. Requests keep succeeding (fail-open
    while the cluster decides), the listener clears the tier and tracks the new primary, and the
    buckets that moved serve again from Redis and the memory tier."""
    cache = cluster_cache
    listener = cache._state.listener
    victim = cluster_setup.slot_map()[-1][2]
    texts = texts_per_bucket(cache)
    for text in texts.values():
        cache.cache_response(text, "summarize", None, {"v": 1})
    changes = listener.watch.changes
    epoch = cache.coherence.token("x")[0]
    stop = threading.Event()
    errors: list[BaseException] = []

    def read_loop():
        while not stop.is_set():
            for text in texts.values():
                try:
                    got = cache.get_or_compute(text, "summarize", lambda: {"v": 1})
                    assert got["v"] == 1
                except BaseException as exc:  # reported below: no request may fail
                    errors.append(exc)
                    return

    thread = threading.Thread(target=read_loop, daemon=True)
    thread.start()
    cluster_setup.kill(victim)
    try:
        wait_for(lambda: victim not in {p for *_, p in cluster_setup.slot_map()}, 30, "the cluster failover")
        wait_for(lambda: listener.watch.changes > changes, 15, "the listener to see the new map")
        wait_for(lambda: cache.coherence.status == "live", 30, "every primary proven again")
        assert cache.coherence.token("x")[0] > epoch  # the tier was cleared
        for text in texts.values():  # every bucket, the moved ones too, is served by Redis again
            key = cache.key_generator.generate(text, "summarize")
            write_and_settle(
                cache, key, lambda text=text: cache.cache_response(text, "summarize", None, {"v": 1})
            )
            wait_for(lambda text=text: cache.get_cached_response(text, "summarize"), 10, "a hit")
    finally:
        stop.set()
        thread.join(10)
        cluster_setup.restart(victim)  # rejoins as a replica of the promoted node
    assert not errors, errors
    assert cache._state.breaker.state == "closed"


def test_one_cluster_client_per_process_whatever_the_threads(cluster_cache):
    """Django builds a backend per thread; they all share one RedisCluster (and its pools)."""
    clients = run_threads(lambda i: caches["ai"].redis, 4)
    assert all(client is cluster_cache.redis for client in clients)


def test_health_status_on_the_cluster(cluster_cache):
    from aicache.monitoring.health import redis_status

    for i in range(20):
        cluster_cache.cache_response(f"{TEXT}{i}", "qa", None, {"v": i})
    status = redis_status("ai")
    assert status["ok"] and status["coherence"] == "live"
    assert status["live_entries"] == 20 and status["version"].startswith(("6.", "7.", "8."))
