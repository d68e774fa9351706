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


def test_a_node_added_and_given_a_slot_is_never_served_unheard(
    cluster_cache, cluster_setup, foreign, monkeypatch
):
    """Review finding: after ``redis-cli --cluster add-node`` and a slot moved to the new master, a
    foreign write there went unheard until the watch's next poll (the tier served the old value
    115 times in 0.62 s). Now (1) a master without slots is tracked as soon as the watch sees it,
    and (2) staged with the watch's view frozen (it has not seen the new node at all): a command
    that meets a node outside the proven map clears the tier, so nothing read there is filled and
    the foreign write is what every read returns."""
    from aicache import cluster_coherence

    cache = cluster_cache
    watch = cache._state.listener.watch
    text = texts_per_bucket(cache)["7"]
    key = cache.key_generator.generate(text, "summarize")
    slot = key_slot(b"7")
    source = owner(topology(cache.redis), key)
    write_and_settle(cache, key, lambda: cache.cache_response(text, "summarize", None, {"v": 1}))
    cache.get_cached_response(text, "summarize")
    assert cache.get_cached_response(text, "summarize")["cache_source"] == "memory"

    # (1) a slotless master is tracked, and the tier stays live (it proves nothing, holds nothing)
    first = cluster_setup.add_node()
    try:
        wait_for(lambda: ("127.0.0.1", first) in watch.nodes, 10, "the watch to track the new master")
        assert ("127.0.0.1", first) not in watch.proving
        assert cache._state.listener.wait_live(10)
    finally:
        cluster_setup.remove_node(first)
        cache.redis.nodes_manager.initialize()
    wait_for(lambda: ("127.0.0.1", first) not in watch.nodes, 10, "the watch to drop the removed node")
    assert cache._state.listener.wait_live(10)

    # (2) the watch's view frozen: it never learns of the second node by polling
    frozen = watch.topology
    real_view = cluster_coherence.cluster_view
    thaw = threading.Event()
    monkeypatch.setattr(
        cluster_coherence, "cluster_view", lambda c: real_view(c) if thaw.is_set() else frozen
    )
    write_and_settle(cache, key, lambda: cache.cache_response(text, "summarize", None, {"v": 1}))
    cache.get_cached_response(text, "summarize")
    assert cache.get_cached_response(text, "summarize")["cache_source"] == "memory"
    added = cluster_setup.add_node()
    moved = False
    try:
        cluster_setup.move_slot(slot, source, added)
        moved = True
        # MIGRATE deleted the key on its old master: that master's tracking evicted our copy
        wait_for(lambda: key not in cache.memory, 5, "the migrated key's eviction")
        unproven = watch.unproven_commands
        assert cache.get_cached_response(text, "summarize")["v"] == 1  # MOVED: read on the new node
        assert key not in cache.memory  # read from a node no listener proves: never filled
        req = cache._request(text, "summarize", None, None)
        frame = cache.codec.encode(b'{"v": 2}', req.ttl).data
        foreign.set(key, frame, ex=req.ttl)  # a foreign write on the new master
        sources = []
        for _ in range(50):
            got = cache.get_cached_response(text, "summarize")
            assert got["v"] == 2, f"stale answer {got} after a foreign write on the added node"
            sources.append(got["cache_source"])
        assert set(sources) == {"redis"}
        assert watch.unproven_commands > unproven  # each read met the unproven node
        # thawed: the watch follows, proves the new master too, and the tier works there again
        thaw.set()
        watch.wakeup.set()
        wait_for(lambda: ("127.0.0.1", added) in watch.proving, 10, "the watch to prove the new master")
        assert cache._state.listener.wait_live(10)
        cache.get_cached_response(text, "summarize")
        assert cache.get_cached_response(text, "summarize")["cache_source"] == "memory"
        foreign.delete(key)
        wait_for(lambda: key not in cache.memory, 5, "the new master's eviction message")
    finally:
        thaw.set()
        if moved:
            cluster_setup.move_slot(slot, added, source)
        cluster_setup.remove_node(added)
        cache.redis.nodes_manager.initialize()  # the shared client forgets the removed node
    wait_for(
        lambda: watch.topology and not watch.topology[1] and added not in {p for *_, p in watch.topology[0]},
        15,
        "the watch to follow the original map",
    )


def primary_figures(cluster_setup, section: str, field: str) -> list[int]:
    out = []
    for port in sorted({port for *_, port in cluster_setup.slot_map()}):
        client = redis.Redis(port=port)
        try:
            out.append(int(client.info(section)[field]))
        finally:
            client.close()
    return out


def test_admin_entry_browser_on_the_cluster(cluster_cache, foreign):
    """Review finding: on Cluster an unfiltered page raised DataError, operation and tag filters
    showed 0 entries and delete refused ``{b}`` keys. Pages walk every primary (SCAN) and every
    bucket (indexes); a selected key is deleted on its own primary."""
    from aicache.monitoring import entries

    cache = cluster_cache
    keys = set()
    for i in range(45):
        operation = "qa" if i % 3 else "summarize"
        cache.cache_response(f"{TEXT}{i}", operation, None, {"v": i}, tags=["doc:1"] if i < 20 else None)
        keys.add(cache.key_generator.generate(f"{TEXT}{i}", operation))
    foreign.set("ai_cache:!live!x!1", b"1")  # a probe-shaped key is not an entry

    def walk(**kwargs) -> list[str]:
        seen, token = [], ""
        for _ in range(100):
            page = entries.page(cache, token=token, size=7, **kwargs)
            seen += [e.key for e in page.entries]
            if not page.next_token:
                return seen
            token = page.next_token
        raise AssertionError("no last page")

    everything = walk()
    assert sorted(everything) == sorted(keys)  # every primary scanned, each key once
    qa = walk(operation="qa")
    assert len(qa) == len(set(qa)) == 30 and all(":qa:" in k for k in qa)
    tagged = walk(tag="doc:1")
    assert len(set(tagged)) == 20
    assert {entries.parse_key(cache.ns, k)[1][0] for k in everything} == {"{"}  # the tagged digest
    chosen = sorted(keys)[:5]
    assert len({cache.ns.bucket(k) for k in chosen}) >= 1
    assert entries.delete(cache, chosen, actor="staff") == 5
    assert not any(foreign.exists(k) for k in chosen)
    assert cache.count_all() == 40
    with pytest.raises(ValueError, match="not an aicache entry key"):
        entries.delete(cache, [chosen[0].replace("{", "").replace("}", "")], actor="staff")


@pytest.mark.django_db
def test_health_and_snapshot_redis_sum_every_primary(cluster_cache, cluster_setup, settings):
    from aicache.monitoring import maintenance
    from aicache.monitoring.health import redis_status

    settings.CACHES = {"default": settings.CACHES["default"], "ai": settings.CACHES["ai"]}
    for i in range(30):
        cluster_cache.cache_response(f"{TEXT}{i}", "qa", None, {"v": i})
    status = redis_status("ai")
    each = primary_figures(cluster_setup, "memory", "used_memory")
    assert len(each) == 3
    # one node's figure is about a third of the sum (each primary holds its share)
    assert status["used_memory"] > 2 * max(each) * 0.9
    (out,) = maintenance.snapshot_redis()
    assert out["entries"] == 30
    assert out["used_memory"] > 2 * max(each) * 0.9


@pytest.fixture
def password_cluster(tmp_path):
    from aicache.bench.topologies import ClusterSetup

    setup = ClusterSetup(tmp_path / "auth-cluster", password="cluster-s3cret")
    try:
        setup.start()
        yield setup
    finally:
        setup.stop()


def test_cluster_with_requirepass_takes_options_password(settings, password_cluster):
    """Review finding: ClusterClient.connect ignored OPTIONS PASSWORD. On a cluster started with
    requirepass, the cache (LOCATION without credentials) answers, and its coherence listeners on
    every primary authenticate too (a foreign delete still evicts from the tier)."""
    settings.CACHES = {
        **settings.CACHES,
        "ai": cluster_cache_settings(password_cluster, PASSWORD="cluster-s3cret"),
    }
    cache = caches["ai"]
    assert cache.ping()
    assert cache.start_coherence(wait=10) == "live"
    text = f"{TEXT} behind a password"
    key = cache.key_generator.generate(text, "summarize")
    write_and_settle(cache, key, lambda: cache.cache_response(text, "summarize", None, {"v": 1}))
    cache.get_cached_response(text, "summarize")
    assert cache.get_cached_response(text, "summarize")["cache_source"] == "memory"
    foreign = RedisCluster(
        startup_nodes=[ClusterNode("127.0.0.1", password_cluster.ports[0])], password="cluster-s3cret"
    )
    try:
        foreign.delete(key)
    finally:
        foreign.close()
    wait_for(lambda: key not in cache.memory, 5, "the eviction through an authenticated listener")
    assert cache.count_all() == 1  # the index outlives the deleted entry until its expiry
    with pytest.raises(redis.RedisClusterException, match="Authentication required"):  # it is required
        RedisCluster(startup_nodes=[ClusterNode("127.0.0.1", password_cluster.ports[0])], protocol=2)
