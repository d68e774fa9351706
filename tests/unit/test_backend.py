import asyncio
import os
import pickle
import signal
import threading
import time

import orjson
import pytest

from aicache.backend import META_KEYS
from aicache.codec import HEADER, MAGIC
from tests.helpers import FakeClock, counted_errors, recorded_lookups

SMALL = "Caching answers saves money. " * 5  # 145 chars: small tier
MEDIUM = "Large language models are slow and costly to call again. " * 20  # 1140 chars
RESPONSE = {"summary": "Caching saves money.", "usage": {"prompt_tokens": 40, "completion_tokens": 5}}
BIG_RESPONSE = {"summary": " ".join(f"Point {i}: repeated LLM calls cost time and money." for i in range(60))}


def test_miss_then_hit_with_metadata(ai_cache):
    assert ai_cache.get_cached_response(SMALL, "summarize") is None
    ai_cache.cache_response(SMALL, "summarize", None, RESPONSE)
    hit = ai_cache.get_cached_response(SMALL, "summarize")
    assert {k: hit[k] for k in RESPONSE} == RESPONSE
    assert hit["cache_hit"] is True
    assert hit["tier"] == "small"
    assert hit["text_length"] == len(SMALL)
    assert hit["compression_used"] is False
    assert hit["cache_source"] == "memory"
    assert abs(hit["cached_at"] - time.time()) < 5


def test_memory_tier_only_for_memory_tiers(ai_cache):
    ai_cache.cache_response(MEDIUM, "summarize", None, RESPONSE)
    assert ai_cache.get_cached_response(MEDIUM, "summarize")["cache_source"] == "redis"
    assert len(ai_cache.memory) == 0


def test_redis_hit_fills_memory_tier(ai_cache):
    ai_cache.cache_response(SMALL, "summarize", None, RESPONSE)
    ai_cache.invalidate_memory_cache()
    assert ai_cache.get_cached_response(SMALL, "summarize")["cache_source"] == "redis"
    assert ai_cache.get_cached_response(SMALL, "summarize")["cache_source"] == "memory"


def test_returned_dicts_are_independent(ai_cache):
    ai_cache.cache_response(SMALL, "key_points", None, {"points": ["a", "b"]})
    first = ai_cache.get_cached_response(SMALL, "key_points")
    first["points"].append("mutated")
    assert ai_cache.get_cached_response(SMALL, "key_points")["points"] == ["a", "b"]


@pytest.mark.parametrize("reserved", sorted(META_KEYS))
def test_reserved_metadata_keys_refused(ai_cache, reserved):
    """Issue 9.11: a response carrying a key the cache adds is refused, naming it, and nothing is
    stored or computed twice."""
    with pytest.raises(ValueError, match=reserved):
        ai_cache.cache_response(SMALL, "qa", None, {**RESPONSE, reserved: "mine"}, question="q")
    calls = []
    with pytest.raises(ValueError, match=reserved):
        ai_cache.get_or_compute(SMALL, "qa", lambda: calls.append(1) or {"answer": 1, reserved: 2})
    assert calls == [1]
    assert ai_cache.redis.dbsize() == 0


@pytest.mark.parametrize("algorithm", ["zlib", "zstd"])
def test_compression_above_threshold(make_cache, algorithm):
    cache = make_cache(COMPRESSION_ALGORITHM=algorithm, COMPRESSION_LEVEL=3)
    cache.cache_response(MEDIUM, "summarize", None, BIG_RESPONSE)
    hit = cache.get_cached_response(MEDIUM, "summarize")
    assert hit["compression_used"] is True and hit["summary"] == BIG_RESPONSE["summary"]
    stored = cache.redis.get(cache.key_generator.generate(MEDIUM, "summarize"))
    assert len(stored) < len(orjson.dumps(BIG_RESPONSE)) / 2
    cache.cache_response(MEDIUM, "sentiment", None, RESPONSE)  # below the threshold
    assert cache.get_cached_response(MEDIUM, "sentiment")["compression_used"] is False
    cache.cache_response(MEDIUM, "qa", None, BIG_RESPONSE, tags=["doc:1"])  # an entry with metadata
    assert cache.get_cached_response(MEDIUM, "qa")["compression_used"] is True


def test_per_operation_ttls(ai_cache):
    expected = {"summarize": 7200, "sentiment": 86400, "key_points": 7200, "questions": 3600, "qa": 1800}
    for operation, ttl in {**expected, "translate": 3600}.items():
        ai_cache.cache_response(MEDIUM, operation, None, RESPONSE)
        key = ai_cache.key_generator.generate(MEDIUM, operation)
        assert ttl - 2 <= ai_cache.redis.ttl(key) <= ttl
    ai_cache.cache_response(MEDIUM, "summarize", {"v": 2}, RESPONSE, ttl=42)
    assert 40 <= ai_cache.redis.ttl(ai_cache.key_generator.generate(MEDIUM, "summarize", {"v": 2})) <= 42


def test_memory_entry_never_outlives_redis_ttl(ai_cache, monkeypatch):
    ai_cache.cache_response(SMALL, "qa", None, RESPONSE, question="q", ttl=1)
    assert ai_cache.get_cached_response(SMALL, "qa", question="q")["cache_source"] == "memory"
    real = time.monotonic
    monkeypatch.setattr("aicache.memory.time.monotonic", lambda: real() + 1.5)
    ai_cache.redis.delete(ai_cache.key_generator.generate(SMALL, "qa", None, "q"))  # Redis expired it
    assert ai_cache.get_cached_response(SMALL, "qa", question="q") is None


def test_a_copy_filled_from_an_older_frame_dies_with_that_frame(ai_cache, monkeypatch):
    """A frame another process wrote 60 s ago with a 100 s TTL has 40 s left in Redis: the copy a
    read fills from it must die at the frame's expiry (cached_at + ttl), not a TTL after the fill
    (qa's 1,800 s or the frame's 100 s)."""
    from aicache import backend, coherence, memory

    clock = FakeClock(1_000.0, wall_offset=time.time() - 1_000.0)
    for module in (backend, coherence, memory):
        monkeypatch.setattr(module, "time", clock)
    key = ai_cache.key_generator.generate(SMALL, "qa", None, "q")
    frame = ai_cache.codec.encode(orjson.dumps(RESPONSE), 100, cached_at=clock.time() - 60).data
    ai_cache.redis.set(key, frame, ex=40)  # what Redis has left of it
    assert ai_cache.get_cached_response(SMALL, "qa", question="q")["cache_source"] == "redis"  # fills
    clock.now += 39.9
    assert ai_cache.get_cached_response(SMALL, "qa", question="q")["cache_source"] == "memory"
    clock.now += 0.1  # the frame's expiry: Redis drops the entry
    ai_cache.redis.delete(key)
    assert ai_cache.get_cached_response(SMALL, "qa", question="q") is None
    assert ai_cache.memory.stats().expirations == 1


@pytest.mark.parametrize(
    "payload",
    [
        pickle.dumps({"summary": "evil"}),
        HEADER.pack(MAGIC, 0, 0, 60) + pickle.dumps({"summary": "evil"}),
        b"\xa1",
        HEADER.pack(MAGIC, 1, 0, 60) + b"truncated",
        HEADER.pack(MAGIC, 0, 0, 60) + b"[1, 2, 3]",
        b"just text",
    ],
    ids=["pickle", "pickle-in-frame", "truncated-header", "corrupt-zlib", "not-a-dict", "text"],
)
def test_planted_bad_payloads_read_as_misses(ai_cache, payload, monkeypatch):
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    ai_cache.redis.set(ai_cache.key_generator.generate(SMALL, "summarize"), payload)
    assert ai_cache.get_cached_response(SMALL, "summarize") is None
    assert ai_cache.error_counts()["corrupt_entry"] == 1
    calls = []
    result = ai_cache.get_or_compute(SMALL, "summarize", lambda: calls.append(1) or RESPONSE)
    assert calls == [1] and result["cache_hit"] is False
    assert ai_cache.get_cached_response(SMALL, "summarize")["summary"] == RESPONSE["summary"]


def test_get_or_compute_calls_once(ai_cache):
    calls = []

    def compute():
        calls.append(1)
        return RESPONSE

    first = ai_cache.get_or_compute(SMALL, "summarize", compute, options={"n": 1})
    second = ai_cache.get_or_compute(SMALL, "summarize", compute, options={"n": 1})
    assert calls == [1]
    assert first["cache_hit"] is False and first["cache_source"] == "compute"
    assert second["cache_hit"] is True and second["summary"] == RESPONSE["summary"]


def test_compute_error_propagates_and_nothing_is_cached(ai_cache):
    def boom():
        raise RuntimeError("LLM down")

    with pytest.raises(RuntimeError, match="LLM down"):
        ai_cache.get_or_compute(SMALL, "summarize", boom)
    assert ai_cache.redis.dbsize() == 0
    with pytest.raises(TypeError, match="response must be a dict"):
        ai_cache.get_or_compute(SMALL, "summarize", lambda: ["not", "a", "dict"])
    assert ai_cache.redis.dbsize() == 0


def _populate(cache):
    for i in range(5):
        cache.cache_response(f"{SMALL} {i}", "summarize", None, RESPONSE)
        cache.cache_response(f"{SMALL} {i}", "sentiment", None, {"label": "positive"})
    cache.cache_response(MEDIUM, "key_points", None, RESPONSE)
    cache.redis.set("other:app:key", b"keep me")


def test_invalidate_by_operation_scope(ai_cache):
    _populate(ai_cache)
    assert ai_cache.invalidate_by_operation("summarize", operation_context="model upgrade") == 5
    assert ai_cache.get_cached_response(f"{SMALL} 1", "summarize") is None
    assert ai_cache.get_cached_response(f"{SMALL} 1", "sentiment")["label"] == "positive"
    assert ai_cache.get_cached_response(MEDIUM, "key_points") is not None
    assert ai_cache.invalidate_by_operation("summarize") == 0
    assert ai_cache.redis.get("other:app:key") == b"keep me"


def test_invalidate_pattern_is_a_glob_over_operation_names(ai_cache):
    _populate(ai_cache)
    ai_cache.cache_response(f"{SMALL} x", "summarize_v2", None, {"summary": "v2"})
    assert ai_cache.count_pattern("summ*") == 6
    assert ai_cache.invalidate_pattern("summarize") == 5  # exactly that operation, not summarize_v2
    assert ai_cache.get_cached_response(f"{SMALL} x", "summarize_v2")["summary"] == "v2"
    assert ai_cache.invalidate_pattern("sentiment:") == 5  # the seed's "operation:" spelling
    assert ai_cache.get_cached_response(f"{SMALL} 2", "sentiment") is None
    assert ai_cache.invalidate_pattern("summarize_v[0-9]") == 1
    assert ai_cache.count_all() == ai_cache.count_pattern("*")
    assert ai_cache.redis.get("other:app:key") == b"keep me"


def test_a_short_hex_pattern_never_matches_inside_a_digest(ai_cache):
    for i in range(200):
        ai_cache.cache_response(f"{SMALL} {i}", "summarize", None, {"summary": str(i)})
    digests = [key.decode().rsplit(":", 1)[1] for key in ai_cache.redis.scan_iter("ai_cache:*")]
    assert sum("a1" in d for d in digests) > 10  # the pattern does occur inside digests
    assert ai_cache.count_pattern("a1") == 0
    assert ai_cache.invalidate_pattern("a1") == 0
    assert ai_cache.invalidate_pattern("*a1*") == 0
    assert ai_cache.count_by_operation("summarize") == 200
    assert len(ai_cache.memory) == 100  # the memory tier kept them too
    with pytest.raises(ValueError, match="glob over operation names"):
        ai_cache.invalidate_pattern("summarize:abc")  # a digest segment cannot be named


def test_invalidate_all_and_memory(ai_cache):
    _populate(ai_cache)
    assert len(ai_cache.memory) == 10
    assert ai_cache.invalidate_memory_cache() == 10
    assert ai_cache.get_cached_response(f"{SMALL} 0", "summarize")["cache_source"] == "redis"
    assert ai_cache.invalidate_all() == 11
    assert len(ai_cache.memory) == 0
    assert ai_cache.redis.get("other:app:key") == b"keep me"
    assert ai_cache.invalidate_all() == 0


def test_invalidation_spans_many_batches(ai_cache):
    for i in range(1234):
        ai_cache.cache_response(f"text {i}", "questions", None, {"q": i})
    assert ai_cache.invalidate_by_operation("questions") == 1234
    # Bookkeeping remains: the set naming the indexed operations, the operation's fence and the
    # sweep set (which deletes dead indexes).
    assert sorted(k.decode() for k in ai_cache.redis.scan_iter()) == [
        "ai_cache!gen:questions",
        "ai_cache!ops",
        "ai_cache!sweep",
    ]
    from aicache import invalidation

    assert invalidation.live_all(ai_cache.redis, ai_cache.ns) == 0
    for i in range(3):
        ai_cache.cache_response(f"again {i}", "questions", None, {"q": i})
    ai_cache.cache_response("other", "qa", None, {"a": 1}, question="q")
    assert invalidation.live_all(ai_cache.redis, ai_cache.ns) == 4
    assert ai_cache.invalidate_all() == 4
    assert not list(ai_cache.redis.scan_iter("ai_cache:*"))
    assert invalidation.live_all(ai_cache.redis, ai_cache.ns) == 0


def test_plain_django_api_still_works(ai_cache):
    ai_cache.set("plain", {"a": [1, 2]}, timeout=30)
    assert ai_cache.get("plain") == {"a": [1, 2]}
    assert ai_cache.incr(ai_cache.add("n", 1) and "n") == 2
    ai_cache.delete("plain")
    assert ai_cache.get("plain", "gone") == "gone"


def test_plain_api_never_unpickles(ai_cache, monkeypatch):
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("unpickled"))
    ai_cache.redis.set(ai_cache.make_key("evil"), pickle.dumps({"x": 1}))
    assert ai_cache.get("evil", "default") == "default"
    assert ai_cache.error_counts()["corrupt_entry"] == 1
    with pytest.raises(TypeError, match="JSON-typed"):
        ai_cache.set("obj", object())
    ai_cache.set("good", [1, 2])
    ai_cache.set("none", None)
    assert ai_cache.get_many(["good", "evil", "none", "absent"]) == {"good": [1, 2], "none": None}
    assert ai_cache.error_counts()["corrupt_entry"] == 2


# ------------------------------------------------------------------ bad input
BAD_CALLS = [
    ("text", TypeError, {"text": None}),
    ("text", TypeError, {"text": b"bytes"}),
    ("text", ValueError, {"text": ""}),
    ("text", ValueError, {"text": "   \n"}),
    ("MAX_TEXT_LENGTH", ValueError, {"text": "x" * 1_000_001}),
    ("operation", ValueError, {"operation": "Summarize"}),
    ("operation", ValueError, {"operation": "sum*"}),
    ("operation", ValueError, {"operation": ""}),
    ("operation", ValueError, {"operation": "a" * 65}),
    ("operation", TypeError, {"operation": 3}),
    ("options", TypeError, {"options": ["a"]}),
    ("options", TypeError, {"options": {"f": object()}}),
    ("question", TypeError, {"question": 42}),
    ("ttl", ValueError, {"ttl": 0}),
    ("ttl", ValueError, {"ttl": "60"}),
    ("ttl", ValueError, {"ttl": True}),
]


@pytest.mark.parametrize("name,exc,override", BAD_CALLS)
def test_bad_input_to_cache_response_writes_nothing(ai_cache, name, exc, override):
    args = {"text": SMALL, "operation": "summarize", "options": None, "response": RESPONSE, **override}
    with pytest.raises(exc, match=name):
        ai_cache.cache_response(**args)
    assert ai_cache.redis.dbsize() == 0 and len(ai_cache.memory) == 0


@pytest.mark.parametrize("name,exc,override", BAD_CALLS)
def test_bad_input_to_get_or_compute_computes_nothing(ai_cache, name, exc, override):
    args = {"text": SMALL, "operation": "summarize", "compute": lambda: pytest.fail("computed"), **override}
    with pytest.raises(exc, match=name):
        ai_cache.get_or_compute(**args)
    assert ai_cache.redis.dbsize() == 0


@pytest.mark.parametrize(
    "response,exc,match",
    [
        (["list"], TypeError, "response must be a dict"),
        ("text", TypeError, "response must be a dict"),
        ({"when": object()}, TypeError, "response must be JSON-serialisable"),
        ({1: "int key"}, TypeError, "response must be JSON-serialisable"),
        ({"big": "x" * (8 * 1024 * 1024)}, ValueError, "MAX_RESPONSE_BYTES"),
    ],
)
def test_bad_responses(ai_cache, response, exc, match):
    with pytest.raises(exc, match=match):
        ai_cache.cache_response(SMALL, "summarize", None, response)
    assert ai_cache.redis.dbsize() == 0


@pytest.mark.parametrize(
    "call,exc",
    [
        (lambda c: c.invalidate_pattern(""), ValueError),
        (lambda c: c.invalidate_pattern(None), TypeError),
        (lambda c: c.invalidate_pattern("x" * 300), ValueError),
        (lambda c: c.invalidate_pattern("Sum"), ValueError),
        (lambda c: c.count_pattern("a b"), ValueError),
        (lambda c: c.invalidate_by_operation("Bad Op"), ValueError),
        (lambda c: c.invalidate_all(operation_context=5), TypeError),
        (lambda c: c.get_or_compute(SMALL, "summarize", "not callable"), TypeError),
    ],
)
def test_bad_invalidation_input_changes_nothing(ai_cache, call, exc):
    ai_cache.cache_response(SMALL, "summarize", None, RESPONSE)
    with pytest.raises(exc):
        call(ai_cache)
    assert len(list(ai_cache.redis.scan_iter("ai_cache:*"))) == 1 and len(ai_cache.memory) == 1


def test_get_or_compute_rejects_async_compute_in_sync_call(ai_cache):
    async def compute():
        return RESPONSE

    with pytest.raises(TypeError, match="aget_or_compute"):
        ai_cache.get_or_compute(SMALL, "summarize", compute)
    assert ai_cache.redis.dbsize() == 0


# ------------------------------------------------------------------ async twins
def test_async_twins(ai_cache):
    calls = []

    async def compute():
        calls.append(1)
        await asyncio.sleep(0)
        return RESPONSE

    async def scenario():
        first = await ai_cache.aget_or_compute(SMALL, "summarize", compute)
        second = await ai_cache.aget_or_compute(SMALL, "summarize", compute)
        await ai_cache.acache_response(SMALL, "sentiment", None, {"label": "neutral"})
        got = await ai_cache.aget_cached_response(SMALL, "sentiment")
        removed = await ai_cache.ainvalidate_by_operation("sentiment")
        pattern = await ai_cache.ainvalidate_pattern("summarize")
        # Populated again, so the memory and "all" twins have something to remove.
        for i in range(3):
            await ai_cache.acache_response(f"{SMALL} {i}", "qa", None, {"a": i})
        mem = await ai_cache.ainvalidate_memory_cache()
        memory_left = len(ai_cache.memory)
        everything = await ai_cache.ainvalidate_all()
        sync_compute = await ai_cache.aget_or_compute(SMALL, "qa", lambda: RESPONSE, question="q")
        return first, second, got, removed, pattern, mem, memory_left, everything, sync_compute

    first, second, got, removed, pattern, mem, memory_left, everything, sync_compute = asyncio.run(scenario())
    assert calls == [1]
    assert (first["cache_hit"], second["cache_hit"]) == (False, True)
    assert got["label"] == "neutral"
    assert (removed, pattern, mem, memory_left, everything) == (1, 1, 3, 0, 3)
    assert sync_compute["cache_hit"] is False
    assert ai_cache.count_all() == 1


@pytest.mark.parametrize("control", ["no-store", "refresh", "only-if-cached"])
def test_async_twin_passes_cache_controls(ai_cache, control):
    ai_cache.cache_response(SMALL, "qa", None, {"a": "stored"})
    result = asyncio.run(ai_cache.aget_or_compute(SMALL, "qa", lambda: {"a": "fresh"}, cache=control))
    expected = {"no-store": "fresh", "refresh": "fresh", "only-if-cached": "stored"}[control]
    assert result["a"] == expected
    assert ai_cache.get_cached_response(SMALL, "qa")["a"] == ("fresh" if control == "refresh" else "stored")


def test_cache_shared_by_threads(ai_cache):
    from django.core.cache import caches

    ai_cache.cache_response(SMALL, "summarize", None, RESPONSE)
    sources = []
    t = threading.Thread(target=lambda: sources.append(caches["ai"].get_cached_response(SMALL, "summarize")))
    t.start()
    t.join()
    assert sources[0]["cache_source"] == "memory"


@pytest.mark.parametrize(
    "length,tier",
    [
        (1, "small"),
        (500, "small"),
        (501, "medium"),
        (5000, "medium"),
        (5001, "large"),
        (50000, "large"),
        (50001, "xlarge"),
        (1_000_000, "xlarge"),
    ],
)
def test_tier_at_every_boundary(ai_cache, length, tier):
    text = "x" * length
    ai_cache.cache_response(text, "summarize", None, RESPONSE)
    hit = ai_cache.get_cached_response(text, "summarize")
    assert hit["tier"] == tier and hit["text_length"] == length
    assert hit["cache_source"] == ("memory" if tier == "small" else "redis")


def test_custom_tiers_and_memory_tiers(make_cache):
    cache = make_cache(TEXT_SIZE_TIERS={"tiny": 10, "rest": 100}, MEMORY_TIERS=["rest", "xlarge"])
    for length, tier, source in [(10, "tiny", "redis"), (11, "rest", "memory"), (101, "xlarge", "memory")]:
        cache.cache_response("y" * length, "qa", None, RESPONSE)
        hit = cache.get_cached_response("y" * length, "qa")
        assert (hit["tier"], hit["cache_source"]) == (tier, source)


def test_index_trims_expired_members_has_no_ttl_and_the_sweep_deletes_it_when_dead(ai_cache, monkeypatch):
    """Each write trims index members whose entries have expired. The index has no TTL (volatile-*
    eviction must never take it: issue 16's finding); the sweep set holds its latest expiry, and
    a write after that moment deletes it."""
    from aicache import invalidation

    index = ai_cache.ns.index("qa")
    ai_cache.cache_response("short lived", "qa", None, {"a": 1}, ttl=10)
    ai_cache.cache_response("long lived", "qa", None, {"a": 2}, ttl=500)
    assert ai_cache.redis.ttl(index) == -1
    ai_cache.cache_response("shorter again", "qa", None, {"a": 3}, ttl=5)
    sweep_at = ai_cache.redis.zscore(ai_cache.ns.sweep(), index)
    assert 490_000 <= sweep_at - time.time() * 1000 <= 500_000  # a shorter write never lowers it
    assert ai_cache.redis.zcard(index) == 3
    now = time.time()
    monkeypatch.setattr(invalidation.time, "time", lambda: now + 60)  # both short ones expired
    ai_cache.cache_response("later", "qa", None, {"a": 4}, ttl=500)
    members = {m.decode() for m in ai_cache.redis.zrange(index, 0, -1)}
    assert members == {ai_cache.key_generator.generate(t, "qa") for t in ("long lived", "later")}
    monkeypatch.setattr(invalidation.time, "time", lambda: now + 600)  # everything of qa expired
    ai_cache.cache_response("another operation", "summarize", None, {"a": 5}, ttl=500)
    assert not ai_cache.redis.exists(index)  # swept by a write of anything
    assert ai_cache.redis.zscore(ai_cache.ns.sweep(), index) is None


def test_async_compute_using_to_thread_never_deadlocks(ai_cache):
    """Review finding: followers blocked on a flight must not hold the threads the leader's async
    compute needs (asyncio.to_thread uses the loop's default executor, 6 threads on 2 cores)."""
    calls = []

    async def compute():
        calls.append(1)
        await asyncio.to_thread(time.sleep, 0.05)
        return {"answer": 42}

    async def scenario(same: bool):
        texts = [SMALL if same else f"{SMALL} {i}" for i in range(12)]
        return await asyncio.wait_for(
            asyncio.gather(*(ai_cache.aget_or_compute(t, "qa", compute) for t in texts)), timeout=20
        )

    results = asyncio.run(scenario(same=True))
    assert len(calls) == 1 and all(r["answer"] == 42 for r in results)
    calls.clear()
    assert len(asyncio.run(scenario(same=False))) == 12 and len(calls) == 12


def test_async_twins_work_in_a_child_forked_after_the_parent_used_them(ai_cache):
    """A Celery prefork child or a gunicorn worker forked from a parent that had used an async twin
    (its executor then holds an idle thread) gets working twins: a copied executor would queue
    their work for that thread, which the child does not have, and hang for ever."""
    asyncio.run(ai_cache.acache_response(SMALL, "qa", None, {"answer": 1}))
    assert asyncio.run(ai_cache.aget_cached_response(SMALL, "qa"))["answer"] == 1
    pid = os.fork()
    if pid == 0:  # the child exits 0 only if its twin answered; a hang ends by SIGALRM in 10 s
        code = 1
        try:
            signal.alarm(10)
            code = 0 if asyncio.run(ai_cache.aget_cached_response(SMALL, "qa"))["answer"] == 1 else 2
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0


def test_followers_get_the_result_as_computed_not_as_the_leader_changed_it(ai_cache):
    release = threading.Event()

    def compute():
        release.wait(5)
        return {"points": ["a"]}

    def call(i):
        if i == 0:
            result = ai_cache.get_or_compute(SMALL, "key_points", compute)
            result["points"].append("changed by the leader's caller")
            return result
        if i == 1:
            from tests.helpers import wait_for

            wait_for(lambda: ai_cache._state.counter_snapshot().get("single_flight_waits", 0) == 1)
            release.set()
            return None
        from tests.helpers import wait_for

        wait_for(lambda: len(ai_cache._state.flights) == 1)
        return ai_cache.get_or_compute(SMALL, "key_points", compute)

    from tests.helpers import run_threads

    _, _, follower = run_threads(call, 3)
    assert follower["points"] == ["a"]


def test_a_failed_compute_still_records_its_miss(ai_cache):
    records = []
    original = ai_cache.monitor.record_lookup
    ai_cache.monitor.record_lookup = lambda op, tier, source, *a: (
        records.append(source) or original(op, tier, source, *a)
    )
    try:
        with pytest.raises(RuntimeError):
            ai_cache.get_or_compute(SMALL, "qa", lambda: (_ for _ in ()).throw(RuntimeError("LLM down")))
    finally:
        ai_cache.monitor.record_lookup = original
    assert records == [""]


def test_non_json_option_types_are_refused(ai_cache):
    import dataclasses
    import datetime as dt

    @dataclasses.dataclass
    class Opt:
        temperature: float

    for options in ({"o": Opt(float("nan"))}, {"when": dt.datetime(2026, 1, 1)}):
        with pytest.raises(TypeError, match="options"):
            ai_cache.get_cached_response(SMALL, "qa", options)


@pytest.mark.parametrize(
    "kwargs", [{"wait_timeout": 1e300}, {"lock_timeout": 10**9}, {"wait_timeout": float("nan")}]
)
def test_absurd_timeouts_refused(ai_cache, kwargs):
    with pytest.raises(ValueError, match="seconds up to"):
        ai_cache.get_or_compute(SMALL, "qa", lambda: pytest.fail("computed"), **kwargs)


def test_two_aliases_on_one_redis_keep_their_own_settings(make_cache, ai_cache):
    other = make_cache(MEMORY_CACHE_SIZE=7, CIRCUIT_BREAKER_FAILURES=9)
    assert other._state is not ai_cache._state
    assert other.memory.max_entries == 7 and other._state.breaker.threshold == 9
    assert ai_cache._state.breaker.threshold == 3


def test_a_backend_built_at_any_state_generation_finds_its_process_state(ai_cache, monkeypatch):
    """The state is looked up again after every reset (a new generation); a backend built while the
    generation is 0, 1 or later must not take its empty slot for a state already fetched."""
    from django.core.cache import caches

    from aicache import state

    for generation in (0, 1, 2, 7):
        monkeypatch.setattr(state, "_generation", generation)
        cache = caches.create_connection("ai")
        assert cache._state is not None
        cache.cache_response("a text at any generation", "qa", None, {"answer": generation})
        assert cache.get_cached_response("a text at any generation", "qa")["answer"] == generation


def test_a_failed_wake_up_is_counted_under_publish(ai_cache, monkeypatch):
    """A compute that raised announces it on the events channel; if Redis refuses that, the fault
    is counted, named for what failed (error:<kind>:publish), and the caller still gets its error."""
    counted = counted_errors(ai_cache, monkeypatch)
    monkeypatch.setattr(ai_cache.redis, "publish", _refuse)

    def failing():
        raise RuntimeError("LLM down")

    with pytest.raises(RuntimeError, match="LLM down"):
        ai_cache.get_or_compute("a compute that fails", "qa", failing)
    assert counted == [("redis_error", "publish")]


class SummaryLessMonitor:
    """A MONITOR_CLASS that records nothing and offers no summary()."""

    def __init__(self, **options):
        pass

    def __getattr__(self, name):
        if name in ("summary", "counters"):
            raise AttributeError(name)
        return lambda *args, **kwargs: None


@pytest.mark.parametrize("monitor_class", [None, "tests.unit.test_backend.SummaryLessMonitor"])
def test_the_summary_without_a_recording_monitor_still_counts_faults(make_cache, monkeypatch, monitor_class):
    from redis.exceptions import ResponseError

    cache = make_cache(MONITOR_CLASS=monitor_class)

    def refuse(*args, **kwargs):
        raise ResponseError("WRONGTYPE")

    monkeypatch.setattr(cache.redis, "get", refuse)
    assert cache.get_cached_response("a text whose read fails", "qa") is None
    summary = cache.get_performance_summary()
    assert summary["total_operations"] == 0 and summary["hit_ratio"] == 0.0
    assert summary["errors"] == cache.error_counts() and summary["errors"]["redis_error"] >= 1


# --------------------------------------------- what get_or_compute reports (mutation-found)
def test_get_or_compute_reports_each_source_with_a_duration_from_the_calls_start(ai_cache, monkeypatch):
    """A Redis hit, a memory hit, a compute and a failed compute: what the caller is told and what
    the monitor records, each with a duration measured from the call's start (not a clock reading),
    and each hit on a computed entry with what computing it took."""
    lookups, savings = recorded_lookups(ai_cache, monkeypatch)
    ai_cache.cache_response(MEDIUM, "qa", None, RESPONSE)  # Redis only: no memory tier at this size
    computed = ai_cache.get_or_compute(SMALL, "qa", lambda: {"answer": "computed"})
    with monkeypatch.context() as hit:  # a hit found by the first read takes no lease
        hit.setattr(ai_cache.redis, "lock", lambda *a, **k: pytest.fail("a Redis hit took the lease"))
        from_redis = ai_cache.get_or_compute(MEDIUM, "qa", lambda: pytest.fail("computed a Redis hit"))
    from_memory = ai_cache.get_or_compute(SMALL, "qa", lambda: pytest.fail("computed a memory hit"))

    def failing():
        raise RuntimeError("LLM down")

    with pytest.raises(RuntimeError, match="LLM down"):
        ai_cache.get_or_compute(f"{SMALL} again", "qa", failing)
    assert (from_redis["summary"], from_memory["answer"], computed["answer"]) == (
        RESPONSE["summary"],
        "computed",
        "computed",
    )
    assert [(r["cache_hit"], r["cache_source"]) for r in (computed, from_redis, from_memory)] == [
        (False, "compute"),
        (True, "redis"),
        (True, "memory"),
    ]
    assert [source for source, _ in lookups] == ["", "redis", "memory", ""]
    assert all(0 <= duration < 5 for _, duration in lookups), lookups
    ((seconds, _, _),) = savings  # the memory hit on the computed entry
    assert 0 <= seconds < 5


def test_a_follower_that_waited_too_long_computes_and_reports_the_wait(ai_cache, monkeypatch):
    """In this process, a caller behind a compute that outlasts ``wait_timeout`` computes itself;
    its lookup is a miss whose duration includes the wait."""
    from tests.integration.test_single_flight import wait_behind_a_slow_compute

    lookups, _ = recorded_lookups(ai_cache, monkeypatch)
    own, _ = wait_behind_a_slow_compute(ai_cache, ai_cache, wait_timeout=0.2)
    assert (own["answer"], own["cache_hit"], own["cache_source"]) == ("own", False, "compute")
    assert ai_cache._state.counter_snapshot()["single_flight_wait_timeouts"] == 1
    # The follower records before it returns, so before the leader's compute is released.
    (source, waited), (leader_source, _) = lookups
    assert (source, leader_source) == ("", "") and 0.2 <= waited < 5, lookups


def test_a_compute_with_redis_unreachable_is_returned_as_computed(ai_cache, monkeypatch):
    """No fence can be read, so nothing is stored; the caller still gets its answer, marked as a
    compute (never a cache hit, no cached_at, not compressed)."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    def unreachable(*args, **kwargs):
        raise RedisConnectionError("Redis is down")

    counted = counted_errors(ai_cache, monkeypatch)
    monkeypatch.setattr(ai_cache.redis, "mget", unreachable)
    result = ai_cache.get_or_compute(MEDIUM, "qa", lambda: {"answer": "computed"}, cache="refresh")
    assert counted == [("unreachable", "fence")]  # named for what failed
    assert result == {
        "answer": "computed",
        "cache_hit": False,
        "cached_at": None,
        "tier": "medium",
        "text_length": len(MEDIUM),
        "compression_used": False,
        "cache_source": "compute",
    }
    monkeypatch.undo()
    assert ai_cache.get_cached_response(MEDIUM, "qa") is None


def test_get_or_compute_refuses_what_it_cannot_call_with_its_own_words(ai_cache, monkeypatch):
    lookups, _ = recorded_lookups(ai_cache, monkeypatch)
    with pytest.raises(TypeError, match=r"^compute must be callable, got int$"):
        ai_cache.get_or_compute(SMALL, "qa", 3)

    async def compute():
        return RESPONSE

    with pytest.raises(
        TypeError, match=r"^compute is an async function; use aget_or_compute for async callables$"
    ):
        ai_cache.get_or_compute(SMALL, "qa", compute)
    assert lookups == [] and ai_cache.redis.dbsize() == 0  # refused before anything was looked up


def test_a_misconfigured_cache_names_every_problem(settings):
    from django.core.cache import caches
    from django.core.exceptions import ImproperlyConfigured

    settings.AICACHE = {"HASH_ALGORITHM": "crc32", "DEFAULT_TTL": -5}
    with pytest.raises(ImproperlyConfigured) as refused:
        caches["ai"].get_cached_response("text", "summarize")
    problems = [problem.message for problem in caches["ai"].config_problems]
    assert len(problems) == 2 and "HASH_ALGORITHM" in problems[0] and "DEFAULT_TTL" in problems[1]
    assert str(refused.value) == "aicache is misconfigured (run `manage.py check`): " + "; ".join(problems)


def test_a_dictionary_fetch_that_fails_is_counted_under_dictionary(ai_cache, monkeypatch):
    counted = counted_errors(ai_cache, monkeypatch)
    monkeypatch.setattr(ai_cache.redis, "get", _refuse)
    assert ai_cache._fetch_dictionary(ai_cache.ns.prefix + "!dict:qa") is None
    assert counted == [("redis_error", "dictionary")]


def test_a_leader_served_by_another_process_compute_reports_it_as_coalesced(ai_cache, monkeypatch):
    """Staged: another process holds the Redis lease; this process's leader waits on it, with a
    follower of its own behind it. The other process stores its answer (with what computing it
    cost) and lets go. Both callers here were served by that one compute: coalesced, each saving
    what it cost, each lookup timed from its own call's start."""
    from tests.helpers import run_threads, wait_for

    lookups, savings = recorded_lookups(ai_cache, monkeypatch)
    key = ai_cache.key_generator.generate(SMALL, "qa")
    lease = ai_cache.redis.lock(ai_cache.ns.lock(key), timeout=30, thread_local=False)
    assert lease.acquire(blocking=False)  # the other process's lease

    def waits():
        return ai_cache._state.counter_snapshot().get("single_flight_waits", 0)

    answer = {"answer": "computed elsewhere", "usage": {"prompt_tokens": 30, "completion_tokens": 7}}

    def call(i):
        if i == 1:
            wait_for(lambda: waits() == 1, what="the leader waiting on the lease")
        elif i == 2:
            wait_for(lambda: waits() == 2, what="the follower waiting on the leader")
            ai_cache.get_or_compute(SMALL, "qa", lambda: answer, cache="refresh")  # the other process
            lease.release()
            return None
        return ai_cache.get_or_compute(SMALL, "qa", lambda: pytest.fail("computed twice"))

    leader, follower, _ = run_threads(call, 3, timeout=30)
    for served in (leader, follower):
        assert (served["answer"], served["cache_hit"], served["cache_source"]) == (
            "computed elsewhere",
            True,
            "coalesced",
        )
    assert ai_cache._state.counter_snapshot()["single_flight_coalesced"] == 2
    assert ai_cache.monitor.export_metrics()["totals"]["counters"]["single_flight_coalesced"] == 2
    assert [source for source, _ in lookups] == ["coalesced", "coalesced"]
    assert all(0 <= duration < 5 for _, duration in lookups), lookups
    assert [tokens for _, *tokens in savings] == [[30, 7], [30, 7]]
    assert all(0 <= seconds < 5 for seconds, _, _ in savings), savings


def test_the_lease_is_renewed_from_the_renewer_thread(ai_cache, monkeypatch):
    """The lease is taken without a thread-local token, for the length asked for: the renewer runs
    in a thread of its own and must be able to extend it while the compute runs."""
    from aicache import singleflight
    from tests.helpers import wait_for

    renewals = []
    reacquire = singleflight._reacquire

    def recorded(lock):
        renewed = reacquire(lock)
        renewals.append((renewed, lock.timeout))
        return renewed

    monkeypatch.setattr(singleflight, "_reacquire", recorded)

    def compute():
        wait_for(lambda: renewals, timeout=3, what="the renewer to extend the lease once")
        return {"answer": "long"}

    assert ai_cache.get_or_compute(SMALL, "qa", compute, lock_timeout=1.5)["answer"] == "long"
    assert renewals[0] == (True, 1.5)


@pytest.mark.parametrize("option", ["MEMORY_CACHE_SIZE", "MEMORY_CACHE_MAX_BYTES"])
def test_a_memory_tier_of_size_zero_is_never_consulted(make_cache, option):
    """0 entries or 0 bytes turns the memory tier off: reads go straight to Redis (no memory
    lookup counted as a miss, nothing filled), whatever MEMORY_TIERS says."""
    cache = make_cache(**{option: 0})
    cache.cache_response(SMALL, "qa", None, RESPONSE)
    assert cache.get_cached_response(SMALL, "qa")["cache_source"] == "redis"
    assert cache.get_or_compute(SMALL, "qa", lambda: pytest.fail("computed"))["cache_source"] == "redis"
    memory = cache.memory
    assert (memory.hits, memory.misses, len(memory)) == (0, 0, 0)


def test_whether_the_lean_path_fits_the_client_is_decided_once(make_cache, monkeypatch):
    """aicache.lean is used only where it is safe for the client (aicache.lean.usable); the check
    is made once per cache object, not on every store, also when its answer is no."""
    from aicache import lean

    asked = []
    monkeypatch.setattr(lean, "usable", lambda client: asked.append(client) or False)
    cache = make_cache(DEFAULT_TTL=3600)  # a cache object of its own, never used before
    for i in range(3):
        cache.cache_response(f"{SMALL} {i}", "qa", None, RESPONSE)
    assert len(asked) == 1 and cache._lean is None
    assert cache.get_cached_response(f"{SMALL} 2", "qa")["summary"] == RESPONSE["summary"]


def _refuse(*args, **kwargs):
    from redis.exceptions import ResponseError

    raise ResponseError("NOPERM this user has no permissions to run this command")


def test_a_get_that_fails_is_a_miss_counted_under_get(ai_cache, monkeypatch):
    ai_cache.cache_response(MEDIUM, "qa", None, RESPONSE)
    counted = counted_errors(ai_cache, monkeypatch)
    monkeypatch.setattr(ai_cache, "_getter", _refuse)
    assert ai_cache.get_cached_response(MEDIUM, "qa") is None
    assert counted == [("redis_error", "get")]


class _Replica:
    """A replica that answers what the primary holds, and says which keys it was asked for."""

    def __init__(self, primary):
        self.primary, self.asked, self.refuse = primary, [], False

    def get(self, key):
        self.asked.append(key)
        if self.refuse:
            _refuse()
        return self.primary.get(key)


def test_replica_reads_never_fill_the_memory_tier_and_their_faults_are_counted(ai_cache, monkeypatch):
    """READ_FROM_REPLICAS (Sentinel; tests/topologies has the real one): reads go to the replica,
    whose answer may be stale, so it is served but never kept in the memory tier."""
    import dataclasses

    ai_cache.cache_response(SMALL, "qa", None, RESPONSE)
    ai_cache.invalidate_memory_cache()
    replica = _Replica(ai_cache.redis)
    monkeypatch.setattr(ai_cache, "config", dataclasses.replace(ai_cache.config, read_from_replicas=True))
    primary_client = ai_cache.client.get_client
    # django-redis hands out the read client (write=False): the replica, fetched on first use
    monkeypatch.setattr(
        ai_cache.client, "get_client", lambda write=True, **kw: primary_client(**kw) if write else replica
    )
    key = ai_cache.key_generator.generate(SMALL, "qa")
    for _ in range(2):
        hit = ai_cache.get_cached_response(SMALL, "qa")
        assert (hit["summary"], hit["cache_source"]) == (RESPONSE["summary"], "redis")
    assert replica.asked == [key, key] and len(ai_cache.memory) == 0
    counted = counted_errors(ai_cache, monkeypatch)
    replica.refuse = True
    assert ai_cache.get_cached_response(SMALL, "qa") is None
    assert counted == [("redis_error", "get")]


def test_a_copy_filled_from_redis_carries_the_entrys_tags(ai_cache, monkeypatch):
    """The memory copy made on a Redis hit keeps the tags written with the entry, so removing a tag
    drops it here even when the drain in Redis fails."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    from aicache import invalidation

    ai_cache.cache_response(SMALL, "qa", None, RESPONSE, tags=["prompt:v3"])
    ai_cache.invalidate_memory_cache()  # the copy here will come from Redis
    assert ai_cache.get_cached_response(SMALL, "qa")["cache_source"] == "redis"
    assert ai_cache.get_cached_response(SMALL, "qa")["cache_source"] == "memory"

    def down(*args, **kwargs):
        raise RedisConnectionError("Redis went down mid-invalidation")

    monkeypatch.setattr(invalidation, "drain_tag", down)
    ai_cache.invalidate_tags(["prompt:v3"])
    assert len(ai_cache.memory) == 0


def test_a_memory_tier_of_one_entry_is_on(make_cache):
    """The boundary of MEMORY_CACHE_SIZE=0 (off): one entry is a tier, and it serves."""
    cache = make_cache(MEMORY_CACHE_SIZE=1)
    cache.cache_response(SMALL, "qa", None, RESPONSE)
    assert cache.get_cached_response(SMALL, "qa")["cache_source"] == "memory"
    assert len(cache.memory) == 1


def test_a_memory_tier_of_one_byte_is_still_consulted(make_cache):
    """The boundary of the test above: 1 byte holds no response, but the tier is on."""
    cache = make_cache(MEMORY_CACHE_MAX_BYTES=1)
    cache.cache_response(SMALL, "qa", None, RESPONSE)
    assert cache.get_cached_response(SMALL, "qa")["cache_source"] == "redis"
    assert cache.memory.misses == 1 and len(cache.memory) == 0


def test_a_decode_fault_is_logged_with_what_was_wrong(ai_cache, caplog):
    """The warning names the fault and the reason (here: an entry holding a list)."""
    key = ai_cache.key_generator.generate(SMALL, "qa")
    ai_cache.redis.set(key, HEADER.pack(MAGIC, 0, 0, 60) + b"[1, 2, 3]")
    with caplog.at_level("WARNING", logger="aicache"):
        assert ai_cache.get_cached_response(SMALL, "qa") is None
    assert "aicache decode failed (corrupt_entry): entry holds a list, not a response dict" in caplog.text
