"""One compute per key: in one process with Redis up, down or hung; across processes while Redis
answers; a slow compute is never run twice; a failing compute is not retried by every waiter."""

import threading
import time

import pytest
from django.core.cache import caches

from tests.helpers import run_threads, wait_for

pytestmark = pytest.mark.integration

TEXT = "Single flight keeps one LLM call per question, whatever Redis is doing. " * 3


def stampede(worker, operation: str, counter: str, threads: int, op: str = "stampede", **extra) -> None:
    """Send a worker ``threads`` concurrent get_or_compute calls of TEXT (worker.py's op_stampede:
    compute INCRs ``counter``); read its reply with ``worker.read()``. ``op="stampede_start"`` runs
    them in the background (the reply comes at once; ``stampede_result`` gives their outcome)."""
    worker.send(op, threads=threads, text=TEXT, operation=operation, counter=counter, **extra)


def test_stampede_32_threads_3_processes_one_compute(workers, real_cache):
    """32 callers in each of 3 processes, one compute. The first process's compute is held by a
    gate until every other caller waits on it (each process's state counts them: 31 callers on its
    leader in the first; in each other process its leader on the lease plus 31 callers), so every
    count is exact: 1 miss, and 95 callers coalesced on that one result."""
    procs = workers(3)
    counter, gate = "test:computes", "test:computes:gate"
    real_cache.redis.delete(counter, gate)
    for worker, expected in zip(procs, (31, 32, 32), strict=True):
        stampede(worker, "summarize", counter, 32, op="stampede_start", gate=gate)
        assert worker.read() == {"started": True}
        wait_for(
            lambda w=worker, n=expected: w.call("counters").get("single_flight_waits", 0) == n,
            what=f"{expected} waits in a process",
        )
    # the first process's leader holds the lease: its compute starts (and is held by the gate)
    wait_for(lambda: real_cache.redis.get(counter) == b"1", what="the one compute to start")
    real_cache.redis.set(gate, 1)
    replies = [w.call("stampede_result") for w in procs]
    assert int(real_cache.redis.get(counter)) == 1
    results = [r for reply in replies for r in reply["results"]]
    assert len(results) == 96 and not any(reply["errors"] for reply in replies)
    assert len({r["answer"] for r in results}) == 1
    assert sum(not r["hit"] for r in results) == 1
    coalesced = [reply["counters"].get("single_flight_coalesced", 0) for reply in replies]
    assert coalesced == [31, 32, 32]


def test_five_concurrent_calls_one_miss_four_coalesced(real_cache):
    """Issue 10's example: 5 concurrent identical calls on a cold key = 1 compute, and the
    records say 1 miss and 4 coalesced hits."""
    calls = []
    records = []
    monitor = real_cache.monitor
    original = monitor.record_lookup

    def spy(operation_type, tier, source, *args):
        records.append(source)
        return original(operation_type, tier, source, *args)

    monitor.record_lookup = spy
    try:
        entered = threading.Event()
        release = threading.Event()

        def compute():
            calls.append(1)
            entered.set()
            release.wait(5)
            return {"answer": 42}

        def call(i):
            if i:
                entered.wait(5)  # join after the leader is computing
            return real_cache.get_or_compute(TEXT, "qa", compute)

        def release_when_all_joined():
            wait_for(lambda: real_cache._state.counter_snapshot().get("single_flight_waits", 0) == 4)
            release.set()

        t = threading.Thread(target=release_when_all_joined)
        t.start()
        results = run_threads(call, 5)
        t.join()
    finally:
        monitor.record_lookup = original
    assert calls == [1]
    assert sorted(records) == ["", "coalesced", "coalesced", "coalesced", "coalesced"]
    assert sorted(r["cache_source"] for r in results) == ["coalesced"] * 4 + ["compute"]


def test_crashed_holder_waiter_computes_after_lease(workers, real_cache):
    holder, waiter = workers(2)
    counter = "test:crash"
    real_cache.redis.delete(counter)
    stampede(holder, "qa", counter, 1, crash=True, lock_timeout=1.0)
    with pytest.raises(RuntimeError, match="worker exited with 3"):
        holder.read()
    started = time.monotonic()
    stampede(waiter, "qa", counter, 4, compute_seconds=0.05)
    reply = waiter.read()
    waited = time.monotonic() - started
    assert int(real_cache.redis.get(counter)) == 2  # the crashed attempt, then exactly one more
    assert len(reply["results"]) == 4 and not reply["errors"]
    assert waited < 1.0 + 0.5 + 1.0  # the 1 s lease, a poll, slack: not the 60 s wait_timeout


def test_lease_is_renewed_while_a_long_compute_runs(workers, real_cache):
    """Issue 9.8: a compute 2.5x longer than the lease is not run again by a waiter."""
    holder, waiter = workers(2)
    counter = "test:long"
    real_cache.redis.delete(counter)
    lock_key = real_cache.ns.lock(real_cache.key_generator.generate(TEXT, "key_points"))
    stampede(holder, "key_points", counter, 1, compute_seconds=2.5, lock_timeout=1.0)
    wait_for(lambda: real_cache.redis.exists(lock_key), what="the holder to take the lease")
    stampede(waiter, "key_points", counter, 4, compute_seconds=0.05, lock_timeout=1.0)
    reply = waiter.read()
    holder_reply = holder.read()
    assert int(real_cache.redis.get(counter)) == 1
    answers = {r["answer"] for r in reply["results"] + holder_reply["results"]}
    assert len(answers) == 1 and len(reply["results"]) == 4


def _waits(cache) -> int:
    return cache._state.counter_snapshot().get("single_flight_waits", 0)


def test_failing_compute_shared_in_process_not_retried_by_each_waiter(real_cache):
    """Issue 9.9: 6 callers, an oversized response: 1 paid call, 6 errors, nothing cached. The
    compute fails only once the 5 others wait on it (the process state counts their waits)."""
    calls = []

    def oversized():
        calls.append(1)
        wait_for(lambda: _waits(real_cache) == 5, what="the 5 other callers to wait on this compute")
        return {"text": "x" * (real_cache.config.max_response_bytes + 1)}

    def call(i):
        with pytest.raises(ValueError, match="MAX_RESPONSE_BYTES"):
            real_cache.get_or_compute(TEXT, "summarize", oversized)

    run_threads(call, 6)
    assert len(calls) == 1
    assert real_cache.get_cached_response(TEXT, "summarize") is None
    assert real_cache.get_or_compute(TEXT, "summarize", lambda: {"ok": 1})["cache_hit"] is False


def test_failing_compute_at_most_one_call_per_process_per_attempt(workers, real_cache):
    """Two processes, three callers each, a compute that raises. The first process's compute
    raises only once every other caller waits on it (each process's state counts them: its two
    callers in the first, and in the second its leader on the lease plus its two callers), so
    the count is exact: each process computes once (its leader; its callers share the error),
    the second only after the first's attempt failed, and all six callers get the error."""
    first, second = workers(2)
    counter, gate = "test:raise", "test:raise:gate"
    real_cache.redis.delete(counter, gate)

    def computes() -> int:
        return int(real_cache.redis.get(counter) or 0)

    def waits(worker) -> int:
        return worker.call("counters").get("single_flight_waits", 0)

    for worker, expected in ((first, 2), (second, 3)):
        stampede(worker, "questions", counter, 3, op="stampede_start", gate=gate, **{"raise": True})
        assert worker.read() == {"started": True}
        wait_for(lambda w=worker, n=expected: waits(w) == n, what=f"{expected} waits in a process")
    # Only the first process's leader computes so far, held by the gate (its followers may count
    # as waiting a moment before its compute has counted itself).
    wait_for(lambda: computes() == 1, what="the first process's leader in its compute")
    real_cache.redis.set(gate, 1)  # its compute raises now
    replies = [worker.call("stampede_result") for worker in (first, second)]
    assert [(len(r["results"]), len(r["errors"])) for r in replies] == [(0, 3), (0, 3)]
    assert {e for r in replies for e in r["errors"]} == {"LLM failed"}
    assert computes() == 2  # one per process, not one per caller


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


def test_no_store_never_reads_a_stored_value(real_cache):
    real_cache.cache_response(TEXT, "questions", None, {"n": "stored"})
    result = real_cache.get_or_compute(TEXT, "questions", lambda: {"n": "fresh"}, cache="no-store")
    assert result["n"] == "fresh" and result["cache_hit"] is False
    assert real_cache.get_cached_response(TEXT, "questions")["n"] == "stored"  # and never writes


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"cache": "bogus"}, r"^cache must be one of \['default', .*got 'bogus'$"),
        ({"cache": None}, r"^cache must be one of .*got None$"),
        ({"lock_timeout": 0}, r"^lock_timeout must be a positive number of seconds up to \d+, got 0$"),
        ({"wait_timeout": -1}, r"^wait_timeout must be a positive number of seconds up to \d+, got -1$"),
        ({"lock_timeout": "5"}, r"^lock_timeout must be .*, got '5'$"),
    ],
)
def test_bad_cache_controls(real_cache, kwargs, message):
    with pytest.raises(ValueError, match=message):
        real_cache.get_or_compute(TEXT, "questions", lambda: pytest.fail("computed"), **kwargs)


# ------------------------------------------------------------------ Redis down or hung
@pytest.fixture
def unanswering_cache(proxied_cache):
    """caches["hung"]: a Redis that accepts connections and never answers (a TCP proxy)."""
    cache, _ = proxied_cache("hung", accept_only=True, SOCKET_TIMEOUT=0.3, SOCKET_CONNECT_TIMEOUT=0.3)
    return cache


def _stampede(cache, n=40):
    """n concurrent get_or_compute calls of one key; the compute returns once the n - 1 others
    wait on it (the process state counts them). Returns how long each compute took, and each
    caller's (result, elapsed)."""
    calls = []

    def compute():
        started = time.monotonic()
        wait_for(lambda: _waits(cache) == n - 1, what=f"the {n - 1} other callers to wait on this compute")
        calls.append(time.monotonic() - started)
        return {"answer": "computed without Redis"}

    def call(i):
        started = time.monotonic()
        result = cache.get_or_compute(TEXT, "summarize", compute)
        return result, time.monotonic() - started

    return calls, run_threads(call, n)


def test_hung_redis_one_compute_and_one_timeout_per_call(unanswering_cache):
    """Issue 9.7: 40 identical concurrent requests against a Redis that never answers make one
    compute; no request waits on Redis longer than one socket timeout (0.3 s) plus the compute."""
    calls, results = _stampede(unanswering_cache)
    assert len(calls) == 1
    assert all(r["answer"] == "computed without Redis" for r, _ in results)
    assert max(elapsed for _, elapsed in results) < 0.3 + calls[0] + 0.4
    assert unanswering_cache.error_counts().get("unreachable", 0) >= 1


def test_stopped_redis_one_compute(real_cache, redis_server):
    redis_server.stop()
    calls, results = _stampede(real_cache)
    assert len(calls) == 1 and len(results) == 40


def test_half_open_breaker_admits_one_probe(unanswering_cache):
    """After the breaker opens, the first caller past the window probes; the other concurrent
    callers do not each wait a socket timeout on the hung server."""
    cache = unanswering_cache
    breaker = cache._state.breaker
    for i in range(3):  # three different keys: three timeouts open the breaker
        cache.get_cached_response(f"{TEXT} {i}", "qa")
    assert breaker.state == "open"
    breaker._open_until = time.monotonic()  # the window has just ended
    before = cache.error_counts().get("unreachable", 0)

    def call(i):
        started = time.monotonic()
        cache.get_cached_response(f"{TEXT} other {i}", "qa")
        return time.monotonic() - started

    elapsed = run_threads(call, 20)
    assert cache.error_counts().get("unreachable", 0) - before == 1  # one probe reached Redis
    assert sorted(elapsed)[-2] < 0.3  # everyone but the probe answered without waiting
    assert breaker.state == "open"


# ------------------------------------------------------------------ two "processes" in one
@pytest.fixture
def two_processes(settings, redis_server, real_cache):
    """Two caches on the same Redis and prefix but different process state (as two processes
    would have): separate flights and listeners contending for the same Redis lease."""
    settings.CACHES = {
        **settings.CACHES,
        "other": {**settings.CACHES["ai"], "LOCATION": f"redis://localhost:{redis_server.port}/0"},
    }
    other = caches["other"]
    assert other._identity != real_cache._identity
    assert other.start_coherence(wait=5) == "live"
    return real_cache, other


def test_a_raising_holder_wakes_the_other_process_at_once(two_processes, monkeypatch):
    """The holder announces that compute raised, so a waiter elsewhere takes over now, not after
    its safety poll (made 30 s here) or its wait_timeout."""
    from aicache import singleflight

    monkeypatch.setattr(singleflight, "POLL_WITH_SIGNALS", 30.0)
    holder, waiter = two_processes
    holding = threading.Event()
    fail_now = threading.Event()

    def failing():
        holding.set()
        fail_now.wait(5)
        raise RuntimeError("LLM failed")

    def run(i):
        if i == 0:
            with pytest.raises(RuntimeError):
                holder.get_or_compute(TEXT, "qa", failing)
            return None
        if i == 1:
            holding.wait(5)
            result = waiter.get_or_compute(TEXT, "qa", lambda: {"answer": "took over"}, wait_timeout=60)
            return result, time.monotonic()
        wait_for(lambda: waiter._state.counter_snapshot().get("single_flight_waits", 0) >= 1)
        failed_at = time.monotonic()
        fail_now.set()
        return failed_at

    _, (result, returned_at), failed_at = run_threads(run, 3, timeout=30)
    assert result["answer"] == "took over" and result["cache_hit"] is False
    assert returned_at - failed_at < 2.0, returned_at - failed_at


def wait_behind_a_slow_compute(holder, waiter, **call) -> tuple[dict, float]:
    """``holder`` computes a key (for 10 s unless released); meanwhile ``waiter`` (the same cache,
    or another "process") asks for it with ``call`` (e.g. ``wait_timeout``) and its own compute.
    Returns the waiter's result and how long it took; the holder is released when it returns."""
    holding, done = threading.Event(), threading.Event()

    def slow():
        holding.set()
        done.wait(10)
        return {"answer": "slow"}

    def run(i):
        if i == 0:
            return holder.get_or_compute(TEXT, "summarize", slow)
        assert holding.wait(5)
        try:
            started = time.monotonic()
            result = waiter.get_or_compute(TEXT, "summarize", lambda: {"answer": "own"}, **call)
            return result, time.monotonic() - started
        finally:
            done.set()

    return run_threads(run, 2, timeout=30)[1]


def test_wait_timeout_bounds_a_waiter(two_processes):
    holder, waiter = two_processes
    result, elapsed = wait_behind_a_slow_compute(holder, waiter, wait_timeout=0.3)
    assert result["answer"] == "own" and 0.3 <= elapsed < 1.5
    assert waiter._state.counter_snapshot()["single_flight_wait_timeouts"] == 1
