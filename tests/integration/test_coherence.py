"""Several processes, one Redis: memory tiers stay coherent, invalidation is exact and
non-blocking, and get_or_compute makes one compute call per key across threads and processes."""

import statistics
import threading
import time

import pytest

from aicache.bench.scenarios import populate
from tests.integration.processes import Worker

pytestmark = pytest.mark.integration

TEXT = "Coherence keeps every process honest about what Redis holds. " * 3  # small tier
OLD = {"summary": "old answer"}
NEW = {"summary": "new answer"}
BOUND = 1.0  # generous: correctness, not speed (the benchmark measures the delay)


@pytest.fixture
def workers(redis_server, real_cache):
    started: list[Worker] = []

    def start(n: int) -> list[Worker]:
        for _ in range(n):
            worker = Worker(f"{redis_server.url}/0")
            assert worker.call("status")["status"] == "live"
            started.append(worker)
        return started[-n:]

    yield start
    for worker in started:
        worker.close()


def _cached_in_a(a: Worker, operation: str = "summarize", question=None) -> None:
    a.call("cache", text=TEXT, operation=operation, response=OLD, question=question)
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
    time.sleep(0.1)
    real_cache.redis.get(key)  # make Redis notice the expiry now rather than on its next sweep
    assert a.read()["gone_at"] is not None


def test_propagation_delay_figures(workers):
    """Correctness over 30 rounds; the p50/p99 go to the benchmark report."""
    a, b = workers(2)
    from_start, from_return = [], []
    for _ in range(30):
        _cached_in_a(a)
        start, end = _propagate(a, b, "summarize", method="invalidate_by_operation", args=["summarize"])
        from_start.append(start)
        from_return.append(end)
    ms = 1000
    print(
        f"propagation from B's call start p50={statistics.median(from_start) * ms:.2f} ms "
        f"max={max(from_start) * ms:.2f} ms; after it returned "
        f"p50={statistics.median(from_return) * ms:.2f} ms max={max(from_return) * ms:.2f} ms"
    )
    assert max(from_return) < BOUND


def test_own_writes_stay_in_own_memory_tier(real_cache):
    real_cache.cache_response(TEXT, "summarize", None, OLD)
    time.sleep(0.1)  # long enough for the write's own invalidation message to come back
    assert real_cache.get_cached_response(TEXT, "summarize")["cache_source"] == "memory"


def test_listener_reconnect_clears_tier_and_outage_keeps_serving(real_cache, redis_server):
    real_cache.cache_response(TEXT, "summarize", None, OLD)
    coherence = real_cache._state.coherence
    redis_server.stop()
    deadline = time.monotonic() + 5
    while coherence.status != "disconnected":
        assert time.monotonic() < deadline
        time.sleep(0.02)
    # Redis is down: the memory tier keeps serving.
    assert real_cache.get_cached_response(TEXT, "summarize")["cache_source"] == "memory"
    redis_server.start()
    assert coherence.wait_live(10)
    assert coherence.reconnects == 1
    # It cannot know what changed meanwhile, so it starts again from an empty tier.
    assert len(real_cache.memory) == 0
    assert real_cache.get_cached_response(TEXT, "summarize") is None  # Redis restarted empty


def test_read_invalidate_race_never_fills_stale(real_cache, monkeypatch):
    """A reads v1 from Redis; before A fills its tier, B writes v2 and the invalidation arrives.
    The fill must be skipped, or A would serve v1 until its TTL."""
    real_cache.cache_response(TEXT, "summarize", None, OLD)
    coherence = real_cache._state.coherence
    deadline = time.monotonic() + 5
    while coherence._own:  # let the echo of that write arrive first: the race below needs quiet
        assert time.monotonic() < deadline
        time.sleep(0.001)
    real_cache.invalidate_memory_cache()
    key = real_cache.key_generator.generate(TEXT, "summarize")
    original_get = real_cache.redis.get
    raced = threading.Event()

    def get_then_race(k):
        data = original_get(k)  # v1 read
        if k == key and not raced.is_set():
            raced.set()
            before = coherence.messages
            other = real_cache.redis.__class__(connection_pool=real_cache.redis.connection_pool)
            other.set(key, real_cache.codec.encode(b'{"summary":"new answer"}', 60).data, ex=60)
            while coherence.messages == before:  # wait until the invalidation has arrived
                time.sleep(0.001)
        return data

    monkeypatch.setattr(real_cache.redis, "get", get_then_race)
    stale = real_cache.get_cached_response(TEXT, "summarize")
    assert stale["summary"] == "old answer" and stale["cache_source"] == "redis"
    assert key not in real_cache.memory  # the fill was skipped
    monkeypatch.undo()
    assert real_cache.get_cached_response(TEXT, "summarize")["summary"] == "new answer"


# ------------------------------------------------------------------ invalidation at scale
def test_invalidating_100k_entries_of_one_operation(real_cache):
    populate(real_cache, "sentiment", 100_000)
    populate(real_cache, "summarize", 3_000)
    real_cache.cache_response(TEXT, "qa", None, {"answer": "kept"}, question="q")
    worst = [0.0]
    stop = threading.Event()
    probe_key = real_cache.key_generator.generate("summarize text 1", "summarize")
    reader = real_cache.redis.__class__(connection_pool=real_cache.redis.connection_pool)

    def read_loop():
        while not stop.is_set():
            t0 = time.perf_counter()
            assert reader.get(probe_key) is not None
            worst[0] = max(worst[0], time.perf_counter() - t0)

    thread = threading.Thread(target=read_loop)
    thread.start()
    started = time.perf_counter()
    removed = real_cache.invalidate_by_operation("sentiment", operation_context="test")
    elapsed = time.perf_counter() - started
    stop.set()
    thread.join()
    print(f"100k invalidation: {elapsed:.2f} s, worst concurrent read {worst[0] * 1000:.2f} ms")
    assert removed == 100_000
    assert not list(real_cache.redis.scan_iter("ai_cache:sentiment:*", count=1000))
    assert len(list(real_cache.redis.scan_iter("ai_cache:summarize:*", count=1000))) == 3_000
    assert real_cache.get_cached_response(TEXT, "qa", question="q")["answer"] == "kept"
    assert real_cache.invalidate_by_operation("summarize") == 3_000


def test_index_keeps_writes_made_during_invalidation(real_cache):
    real_cache.cache_response("first", "summarize", None, OLD)
    assert real_cache.invalidate_by_operation("summarize") == 1
    real_cache.cache_response("second", "summarize", None, NEW)
    assert real_cache.invalidate_by_operation("summarize") == 1
    assert real_cache.invalidate_by_operation("summarize") == 0


# ------------------------------------------------------------------ single flight
def test_stampede_32_threads_3_processes_one_compute(workers, real_cache):
    procs = workers(3)
    counter = "test:computes"
    real_cache.redis.delete(counter)
    start_at = time.monotonic() + 1.0
    for w in procs:
        w.send("stampede", threads=32, text=TEXT, operation="summarize", counter=counter, start_at=start_at)
    replies = [w.read() for w in procs]
    assert int(real_cache.redis.get(counter)) == 1
    results = [r for reply in replies for r in reply["results"]]
    assert len(results) == 96 and not any(reply["errors"] for reply in replies)
    assert len({r["answer"] for r in results}) == 1
    assert sum(not r["hit"] for r in results) == 1
    coalesced = sum(reply["counters"].get("single_flight_coalesced", 0) for reply in replies)
    assert coalesced >= 90  # the others waited for that one result (a few may simply hit)


def test_crashed_holder_waiter_computes_after_lease(workers, real_cache):
    holder, waiter = workers(2)
    counter = "test:crash"
    real_cache.redis.delete(counter)
    holder.send(
        "stampede",
        threads=1,
        text=TEXT,
        operation="qa",
        counter=counter,
        crash=True,
        lock_timeout=1.0,
        start_at=time.monotonic(),
    )
    with pytest.raises(RuntimeError, match="worker exited with 3"):
        holder.read()
    started = time.monotonic()
    reply = waiter.call(
        "stampede",
        threads=4,
        text=TEXT,
        operation="qa",
        counter=counter,
        compute_seconds=0.05,
        start_at=time.monotonic(),
    )
    waited = time.monotonic() - started
    assert int(real_cache.redis.get(counter)) == 2  # the crashed attempt, then exactly one more
    assert len(reply["results"]) == 4 and not reply["errors"]
    assert waited < 5  # after the 1 s lease, not the 60 s wait_timeout


def test_compute_raising_propagates_and_is_not_cached(real_cache):
    calls = []

    def boom():
        calls.append(1)
        time.sleep(0.1)
        raise RuntimeError("LLM failed")

    errors = []

    def call():
        try:
            real_cache.get_or_compute(TEXT, "key_points", boom)
        except RuntimeError as exc:
            errors.append(exc)

    threads = [threading.Thread(target=call) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(errors) == 4 and len(calls) == 4  # each failure handed over; none hangs
    assert real_cache.get_cached_response(TEXT, "key_points") is None
    assert real_cache.get_or_compute(TEXT, "key_points", lambda: {"points": ["ok"]})["cache_hit"] is False


@pytest.mark.parametrize("control", ["default", "no-store", "refresh", "only-if-cached"])
def test_cache_controls(real_cache, control):
    calls = []

    def compute():
        calls.append(1)
        return {"n": len(calls)}

    result = real_cache.get_or_compute(TEXT, "questions", compute, cache=control)
    if control == "only-if-cached":
        assert result is None and calls == []
        real_cache.cache_response(TEXT, "questions", None, {"n": 0})
        assert real_cache.get_or_compute(TEXT, "questions", compute, cache=control)["n"] == 0
        return
    assert result == {**result, "n": 1, "cache_hit": False}
    stored = real_cache.get_cached_response(TEXT, "questions")
    assert (stored is None) is (control == "no-store")
    again = real_cache.get_or_compute(TEXT, "questions", compute, cache=control)
    if control == "default":
        assert again["cache_hit"] is True and calls == [1]
    else:  # no-store and refresh compute every time
        assert again["n"] == 2 and again["cache_hit"] is False
        if control == "refresh":
            assert real_cache.get_cached_response(TEXT, "questions")["n"] == 2


@pytest.mark.parametrize(
    "kwargs",
    [{"cache": "bogus"}, {"cache": None}, {"lock_timeout": 0}, {"wait_timeout": -1}, {"lock_timeout": "5"}],
)
def test_bad_cache_controls(real_cache, kwargs):
    with pytest.raises(ValueError):
        real_cache.get_or_compute(TEXT, "questions", lambda: pytest.fail("computed"), **kwargs)
