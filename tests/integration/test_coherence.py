"""Several processes, one Redis: memory tiers stay coherent, invalidation is exact and
non-blocking, and get_or_compute makes one compute call per key across threads and processes."""

import math
import threading
import time

import pytest

from aicache.bench.scenarios import populate
from tests.helpers import run_threads, wait_for, write_and_settle
from tests.integration.processes import Worker

pytestmark = pytest.mark.integration

TEXT = "Coherence keeps every process honest about what Redis holds. " * 3  # small tier
OLD = {"summary": "old answer"}
NEW = {"summary": "new answer"}
BOUND = 1.0  # generous: correctness, not speed (the benchmark measures the delay)


def _cached_in_a(a: Worker, operation: str = "summarize", question=None) -> None:
    a.call("cache", text=TEXT, operation=operation, response=OLD, question=question)
    assert a.call("get", text=TEXT, operation=operation, question=question)["source"] == "redis"
    got = a.call("get", text=TEXT, operation=operation, question=question)
    assert got["source"] == "memory" and got["response"]["summary"] == "old answer"


def _propagate(a: Worker, b: Worker, operation: str, **call) -> tuple[float, float]:
    """B acts; returns the seconds from B's call starting, and from it returning, until the entry
    left A's memory tier (negative: gone before B's call had returned)."""
    a.send("watch", text=TEXT, operation=operation, timeout=5)
    assert a.read()["watching"] is True
    b_call = b.call("invalidate", **call)
    gone = a.read()["gone_at"]
    assert gone is not None, "A kept a stale entry"
    return gone - b_call["started_at"], gone - b_call["returned_at"]


@pytest.mark.parametrize(
    "call",
    [
        {"method": "invalidate_by_operation", "args": ["summarize"]},
        {"method": "invalidate_pattern", "args": ["summarize"]},
        {"method": "invalidate_all"},
        {"method": "invalidate_memory_cache", "kwargs": {"everywhere": True}},
    ],
    ids=["operation", "pattern", "all", "memory-everywhere"],
)
def test_invalidation_in_b_evicts_from_a(workers, call):
    a, b = workers(2)
    _cached_in_a(a)
    _, after_return = _propagate(a, b, "summarize", **call)
    assert after_return < BOUND
    assert a.call("get", text=TEXT, operation="summarize")["hit"] is (
        call["method"] == "invalidate_memory_cache"
    )


def test_overwrite_in_b_reaches_a(workers):
    a, b = workers(2)
    _cached_in_a(a, "qa", question="why?")
    a.send("watch", text=TEXT, operation="qa", question="why?", timeout=5)
    assert a.read()["watching"]
    b.call("cache", text=TEXT, operation="qa", question="why?", response=NEW)
    assert a.read()["gone_at"] is not None
    got = a.call("get", text=TEXT, operation="qa", question="why?")
    assert got["response"]["summary"] == "new answer"


def test_foreign_delete_and_expiry_reach_a(workers, real_cache):
    (a,) = workers(1)
    _cached_in_a(a)
    key = real_cache.key_generator.generate(TEXT, "summarize")
    a.send("watch", text=TEXT, operation="summarize", timeout=5)
    a.read()
    real_cache.redis.delete(key)  # any other client
    assert a.read()["gone_at"] is not None
    _cached_in_a(a)
    real_cache.redis.pexpire(key, 50)  # Redis expires it
    a.send("watch", text=TEXT, operation="summarize", timeout=5)
    a.read()
    # EXISTS makes Redis notice the expiry now rather than on its next sweep.
    wait_for(lambda: real_cache.redis.exists(key) == 0, timeout=5, what="Redis expiring the key")
    assert a.read()["gone_at"] is not None


PROPAGATION_ROUNDS = 100


def test_propagation_delay_within_the_contract(workers):
    """README: measured as there (rounds alternating invalidate_by_operation, invalidate_pattern
    and invalidate_all in B while A polls its tier), the entry leaves A's tier p99 (nearest rank)
    under 50 ms after B's call started."""
    a, b = workers(2)
    calls = [
        {"method": "invalidate_by_operation", "args": ["summarize"]},
        {"method": "invalidate_pattern", "args": ["summarize"]},
        {"method": "invalidate_all"},
    ]
    from_start = []
    for n in range(PROPAGATION_ROUNDS):
        _cached_in_a(a)
        started, _ = _propagate(a, b, "summarize", **calls[n % len(calls)])
        from_start.append(started)
    p99 = sorted(from_start)[math.ceil(0.99 * PROPAGATION_ROUNDS) - 1]
    assert p99 < 0.05, sorted(from_start)[-5:]


def _write(cache, response, operation="summarize", **kwargs) -> None:
    """cache_response, then wait for the write's own invalidation message to be applied."""
    key = cache.key_generator.generate(TEXT, operation, None, kwargs.get("question"))
    write_and_settle(cache, key, lambda: cache.cache_response(TEXT, operation, None, response, **kwargs))


def test_own_write_then_reads_fill_from_redis_then_serve_from_memory(real_cache):
    _write(real_cache, OLD)
    assert real_cache.get_cached_response(TEXT, "summarize")["cache_source"] == "redis"
    assert real_cache.get_cached_response(TEXT, "summarize")["cache_source"] == "memory"


def test_a_foreign_write_in_the_same_turn_is_never_lost(real_cache, redis_server):
    """In BCAST mode Redis sends one message per key per event-loop turn: our write and a foreign
    write released together (CLIENT PAUSE) share one message. It must not be taken for our echo."""
    _write(real_cache, OLD)
    key = real_cache.key_generator.generate(TEXT, "summarize")
    admin, foreign = redis_server.client(), redis_server.client()
    foreign.ping()
    listener = real_cache._state.listener
    admin.execute_command("CLIENT", "PAUSE", 300, "WRITE")
    ours = threading.Thread(target=real_cache.cache_response, args=(TEXT, "summarize", None, NEW))
    ours.start()
    wait_for(lambda: any(c.get("cmd") == "evalsha" for c in admin.client_list()), what="our write queued")
    theirs_data = real_cache.codec.encode(b'{"summary":"foreign, later"}', 600).data
    theirs = threading.Thread(target=foreign.set, args=(key, theirs_data), kwargs={"ex": 600})
    before = listener.messages
    theirs.start()
    ours.join(5)
    theirs.join(5)
    wait_for(lambda: listener.messages > before, what="the shared message")
    for _ in range(3):
        assert real_cache.get_cached_response(TEXT, "summarize")["summary"] == "foreign, later"


def test_redis_restart_clears_tier_and_never_serves_it_while_down(real_cache, redis_server):
    _write(real_cache, OLD)
    listener = real_cache._state.listener
    redis_server.stop()
    wait_for(lambda: real_cache.coherence.status == "disconnected", what="the listener to notice")
    # Disconnected is never usable: the tier was cleared and is bypassed.
    assert len(real_cache.memory) == 0
    assert real_cache.get_cached_response(TEXT, "summarize") is None
    redis_server.start()
    assert listener.wait_live(10)
    assert listener.reconnects >= 1
    assert real_cache.get_cached_response(TEXT, "summarize") is None  # Redis restarted empty


def _raced_get(cache, monkeypatch, key, during):
    """Patch the cache's GET: after it has read the old value and before the caller can fill its
    tier, run ``during()`` to completion (in another thread, as another request would)."""
    original_get = cache.redis.get
    raced = threading.Event()

    def get_then_race(k):
        data = original_get(k)
        if k == key and not raced.is_set():
            raced.set()
            run_threads(lambda i: during(), 1)
        return data

    monkeypatch.setattr(cache.redis, "get", get_then_race)
    return raced


def test_read_invalidate_race_never_fills_stale(real_cache, monkeypatch):
    """A reads v1 from Redis; before A fills its tier, another client writes v2 and the
    invalidation arrives. The fill must be skipped, or A would serve v1 until its TTL."""
    _write(real_cache, OLD)
    real_cache.invalidate_memory_cache()
    key = real_cache.key_generator.generate(TEXT, "summarize")
    listener = real_cache._state.listener
    other = real_cache.redis  # its own connection from the pool (get is patched, set is not)

    def foreign_write():
        before = listener.messages
        other.set(key, real_cache.codec.encode(b'{"summary":"new answer"}', 60).data, ex=60)
        wait_for(lambda: listener.messages > before, what="the invalidation to arrive")

    raced = _raced_get(real_cache, monkeypatch, key, foreign_write)
    stale = real_cache.get_cached_response(TEXT, "summarize")
    assert raced.is_set() and stale["summary"] == "old answer" and stale["cache_source"] == "redis"
    assert key not in real_cache.memory  # the fill was skipped
    monkeypatch.undo()
    assert real_cache.get_cached_response(TEXT, "summarize")["summary"] == "new answer"


@pytest.mark.parametrize("writer", ["cache_response", "refresh"])
def test_own_process_overwrite_never_leaves_the_older_value(real_cache, monkeypatch, writer):
    """Issue 9.1: thread A reads v0 from Redis; thread B of the same process writes v1; A then
    tries to fill v0. No read after B returned may see v0."""
    _write(real_cache, OLD)
    real_cache.invalidate_memory_cache()
    key = real_cache.key_generator.generate(TEXT, "summarize")

    def thread_b_writes():
        if writer == "cache_response":
            real_cache.cache_response(TEXT, "summarize", None, NEW)
        else:
            real_cache.get_or_compute(TEXT, "summarize", lambda: dict(NEW), cache="refresh")

    raced = _raced_get(real_cache, monkeypatch, key, thread_b_writes)
    got_a = real_cache.get_cached_response(TEXT, "summarize")  # thread A
    assert raced.is_set() and got_a["summary"] == "old answer"  # read before B's write: fine
    monkeypatch.undo()
    for _ in range(3):  # every later read, from memory or Redis, sees v1
        assert real_cache.get_cached_response(TEXT, "summarize")["summary"] == "new answer"


def test_a_write_redis_refused_never_fills_the_tier(real_cache, redis_server):
    """Issue 9.3: after an OOM on SET the value must not sit in this process's tier."""
    client = redis_server.client()
    _write(real_cache, OLD)
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")
    try:
        real_cache.cache_response(TEXT, "summarize", None, NEW)  # refused: OOM
        errors = real_cache.error_counts()
        assert errors.get("redis_error", 0) >= 1
        key = real_cache.key_generator.generate(TEXT, "summarize")
        assert key not in real_cache.memory
    finally:
        client.config_set("maxmemory", "0")
    # Redis still holds the old value, and so does every read.
    assert real_cache.get_cached_response(TEXT, "summarize")["summary"] == "old answer"


class _TellingLock:
    """The tier's lock, which sets ``found_taken`` when ``thread`` finds it held (and then waits
    for it as usual)."""

    def __init__(self, lock, thread: threading.Thread, found_taken: threading.Event) -> None:
        self.lock, self.thread, self.found_taken = lock, thread, found_taken

    def __enter__(self):
        if not self.lock.acquire(blocking=False):
            if threading.current_thread() is self.thread:
                self.found_taken.set()
            self.lock.acquire()
        return self

    def __exit__(self, *exc) -> None:
        self.lock.release()


def test_fill_check_and_fill_are_one_step(real_cache, monkeypatch):
    """Issue 9.4: an eviction arriving while a fill is being made waits for it, then applies.
    Staged: the fill's store starts the eviction and goes on only once the evictor has found the
    tier's lock taken; were check and store not one step under that lock, the eviction would run
    to its end first (caught here), and the older value would be stored after it."""
    _write(real_cache, OLD)
    real_cache.invalidate_memory_cache()
    key = real_cache.key_generator.generate(TEXT, "summarize")
    tier = real_cache.coherence
    found_taken = threading.Event()
    evictor = threading.Thread(target=tier.invalidate, args=([key],), daemon=True)
    monkeypatch.setattr(tier, "_lock", _TellingLock(tier._lock, evictor, found_taken))
    original_set = tier.memory.set

    def set_with_eviction_racing(k, *args):
        if k == key and evictor.ident is None:
            evictor.start()
            wait_for(
                lambda: found_taken.is_set() or not evictor.is_alive(),
                what="the evictor to find the tier's lock taken, or to finish",
            )
            assert found_taken.is_set(), "the eviction ran in the middle of a fill"
        return original_set(k, *args)

    monkeypatch.setattr(tier.memory, "set", set_with_eviction_racing)
    assert real_cache.get_cached_response(TEXT, "summarize")["cache_source"] == "redis"
    evictor.join(5)
    assert evictor.ident is not None and not evictor.is_alive()
    assert key not in real_cache.memory  # the eviction applied after the fill, not before it


# ------------------------------------------------------------------ half-open subscription
#: The real Redis through a TCP proxy (conftest's ``proxied_cache``), with a fast liveness proof.
FAST_PROOF = {"COHERENCE_PROBE_SECONDS": 0.1, "COHERENCE_LIVENESS_SECONDS": 0.5}


def test_half_open_subscription_clears_and_bypasses_the_tier(proxied_cache, redis_server):
    """Issue 9.2: the listener's connection silently stops delivering (black-holed); within the
    liveness bound the tier is cleared and bypassed, so the foreign write is seen."""
    cache, proxy = proxied_cache(live=True, **FAST_PROOF)
    _write(cache, OLD)
    cache.get_cached_response(TEXT, "summarize")  # fills from Redis
    assert cache.get_cached_response(TEXT, "summarize")["cache_source"] == "memory"
    listener = cache._state.listener
    proxy.blackhole_client_port(listener.sockets[0][1])  # only the subscription goes silent
    direct = redis_server.client()
    key = cache.key_generator.generate(TEXT, "summarize")
    direct.set(key, cache.codec.encode(b'{"summary":"new answer"}', 60).data, ex=60)
    written_at = time.monotonic()
    wait_for(lambda: cache.coherence.status == "disconnected", timeout=5, what="the proof to lapse")
    lapsed_after = time.monotonic() - written_at
    assert lapsed_after < 0.5 + 0.1 + 0.5  # liveness bound + one probe interval + scheduling
    got = cache.get_cached_response(TEXT, "summarize")
    assert got["summary"] == "new answer" and got["cache_source"] == "redis"
    assert listener.lapses >= 1
    # The listener reconnects on fresh connections and proves itself again.
    assert listener.wait_live(5)
    cache.get_cached_response(TEXT, "summarize")
    assert cache.get_cached_response(TEXT, "summarize")["cache_source"] == "memory"
    direct.delete(key)
    wait_for(lambda: key not in cache.memory, what="the foreign delete to arrive after recovery")


def test_tier_bypassed_until_first_proof(proxied_cache):
    cache, proxy = proxied_cache(live=True, **FAST_PROOF)
    listener = cache._state.listener
    proxy.blackhole()  # everything goes silent, including new connections
    wait_for(lambda: cache.coherence.status == "disconnected", timeout=5)
    assert not cache.coherence.usable
    proxy.heal()
    proxy.close_all()
    assert listener.wait_live(5)
    assert cache.coherence.usable


# ------------------------------------------------------------------ invalidation at scale
#: The longest any Redis command may run while 100k entries are invalidated (Redis's own SLOWLOG
#: timing: the client's would add this process's GIL and scheduler). A batch of 500 runs in about
#: 1.5 ms here, and up to 8 ms when a mutation run preempts redis-server mid-command; but SLOWLOG
#: is wall-clock time, so a redis-server descheduled on a loaded 2-vCPU machine can log far more.
#: The bound is generous for that and still catches what blocks readers: a KEYS over these 103k
#: keys plus one UNLINK of 100k took ~345 ms. The batch size is pinned by counting UNLINKs.
SLOW_COMMAND_US = 100_000


def test_invalidating_100k_entries_of_one_operation(real_cache):
    """Never blocks Redis (README "Invalidation"): no KEYS, no SCAN of the keyspace (the index is
    drained), one UNLINK per batch of 500, and no command Redis runs meanwhile takes longer than
    SLOW_COMMAND_US, so a concurrent reader waits at most that long for any read; it keeps being
    served throughout. The time taken and the reader's latency are figures of
    ``manage.py aicache_benchmark --only invalidation`` (docs/performance.md), not bounds here."""
    populate(real_cache, "sentiment", 100_000)
    populate(real_cache, "summarize", 3_000)
    real_cache.cache_response(TEXT, "qa", None, {"answer": "kept"}, question="q")
    client = real_cache.redis
    (slower_than,) = client.config_get("slowlog-log-slower-than").values()
    client.config_set("slowlog-log-slower-than", SLOW_COMMAND_US)
    client.slowlog_reset()
    client.config_resetstat()  # Redis counts the commands it ran
    stop = threading.Event()
    probe_key = real_cache.key_generator.generate("summarize text 1", "summarize")
    reader = client.__class__(connection_pool=client.connection_pool)

    def read_loop():
        reads = 0
        while not stop.is_set():
            assert reader.get(probe_key) is not None
            reads += 1
        return reads

    def run(i):
        if i == 0:
            return read_loop()
        try:
            return real_cache.invalidate_by_operation("sentiment", operation_context="test")
        finally:
            stop.set()

    try:
        reads, removed = run_threads(run, 2, timeout=120)
        slow = client.slowlog_get(10)
    finally:
        client.config_set("slowlog-log-slower-than", slower_than)
    assert slow == [], [(entry["duration"], entry["command"][:60]) for entry in slow]
    assert removed == 100_000
    assert reads > 0  # the reader was served throughout (each read found its entry)
    commands = client.info("commandstats")
    assert "cmdstat_keys" not in commands and "cmdstat_scan" not in commands
    assert commands["cmdstat_unlink"]["calls"] == 100_000 / 500
    assert not list(client.scan_iter("ai_cache:sentiment:*", count=1000))
    assert len(list(client.scan_iter("ai_cache:summarize:*", count=1000))) == 3_000
    assert real_cache.get_cached_response(TEXT, "qa", question="q")["answer"] == "kept"
    assert real_cache.invalidate_by_operation("summarize") == 3_000


def test_writes_after_an_invalidation_are_indexed_afresh(real_cache):
    """The invalidation renamed the index away: a later write starts a new one, which the next
    invalidation finds (and counts exactly)."""
    real_cache.cache_response("first", "summarize", None, OLD)
    assert real_cache.invalidate_by_operation("summarize") == 1
    real_cache.cache_response("second", "summarize", None, NEW)
    assert real_cache.invalidate_by_operation("summarize") == 1
    assert real_cache.invalidate_by_operation("summarize") == 0
