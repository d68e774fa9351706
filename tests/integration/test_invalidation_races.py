"""Invalidation against concurrent writes and in-flight computes (real redis-server), staged with
hooks at the exact step where each race used to be lost."""

import threading
import time
from collections import Counter

import pytest

from aicache import invalidation
from tests.helpers import run_threads, wait_for

pytestmark = pytest.mark.integration

TEXT = "Invalidation must win against whatever is in flight when it runs. " * 2


def _indexed(cache, operation: str, key: str) -> bool:
    return cache.redis.zscore(cache.ns.index(operation, cache.ns.bucket(key)), key) is not None


def test_invalidate_all_never_leaves_an_unindexed_entry(real_cache, monkeypatch):
    """Issue 9.5: a write landing while invalidate_all runs keeps its index entry, so a later
    invalidate_by_operation still finds it."""
    real_cache.cache_response(TEXT, "summarize", None, {"v": 0})
    original = invalidation.scan_unlink

    def scan_then_write(*args, **kwargs):
        result = original(*args, **kwargs)
        run_threads(lambda i: real_cache.cache_response("written meanwhile", "summarize", None, {"v": 1}), 1)
        return result

    monkeypatch.setattr(invalidation, "scan_unlink", scan_then_write)
    assert real_cache.invalidate_all() == 1
    monkeypatch.undo()
    key = real_cache.key_generator.generate("written meanwhile", "summarize")
    assert real_cache.redis.exists(key) and _indexed(real_cache, "summarize", key)
    assert real_cache.count_by_operation("summarize") == 1
    assert real_cache.invalidate_by_operation("summarize") == 1
    assert not real_cache.redis.exists(key)


def test_write_during_an_operation_drain_survives(real_cache, monkeypatch):
    """The index is renamed away atomically: a write landing mid-drain starts a fresh index and
    survives with it (draining the live index instead would delete it)."""
    for i in range(3):
        real_cache.cache_response(f"{TEXT} {i}", "summarize", None, {"v": i})
    original = invalidation.drain_index
    client = real_cache.redis
    original_zrange = client.zrange
    written = threading.Event()

    def zrange_after_a_write(name, *args, **kwargs):
        if not written.is_set():
            written.set()
            run_threads(lambda i: real_cache.cache_response("mid-drain", "summarize", None, {"v": "new"}), 1)
        return original_zrange(name, *args, **kwargs)

    monkeypatch.setattr(client, "zrange", zrange_after_a_write)
    assert real_cache.invalidate_by_operation("summarize") == 3
    monkeypatch.undo()
    assert written.is_set() and original is invalidation.drain_index
    assert real_cache.get_cached_response("mid-drain", "summarize")["v"] == "new"
    assert real_cache.count_by_operation("summarize") == 1


@pytest.mark.parametrize(
    "invalidate",
    [
        lambda c: c.invalidate_by_operation("summarize"),
        lambda c: c.invalidate_all(),
        lambda c: c.invalidate_pattern("summ*"),
    ],
    ids=["operation", "all", "pattern"],
)
def test_invalidation_defeats_a_compute_already_in_flight(real_cache, invalidate):
    """Issue 9.6: a compute that started before the invalidation returns its result to its caller
    but does not cache it (the old prompt's answer must not land a second later)."""
    real_cache.cache_response("seen before", "summarize", None, {"v": "old"})  # the op is known

    def compute():
        run_threads(lambda i: invalidate(real_cache), 1)  # the prompt changed while we computed
        return {"summary": "answer to the old prompt"}

    result = real_cache.get_or_compute(TEXT, "summarize", compute)
    assert result["summary"] == "answer to the old prompt" and result["cache_hit"] is False
    assert real_cache.get_cached_response(TEXT, "summarize") is None
    assert real_cache._state.counter_snapshot().get("fenced_stores") == 1
    # A compute that starts after the invalidation is cached as usual.
    assert real_cache.get_or_compute(TEXT, "summarize", lambda: {"summary": "new"})["summary"] == "new"
    assert real_cache.get_cached_response(TEXT, "summarize")["summary"] == "new"


@pytest.mark.parametrize("cache", ["refresh", "default"])
def test_a_compute_overtaken_by_its_tags_or_operation_is_not_cached(real_cache, cache):
    """``cache="refresh"`` computes outside single flight, fenced all the same; the fence covers
    the operation and each of the entry's tags (read for the entry's own key)."""
    real_cache.cache_response("seen before", "summarize", None, {"v": "old"}, tags=["prompt:v3"])
    for invalidate in (
        lambda: real_cache.invalidate_by_operation("summarize"),
        lambda: real_cache.invalidate_tags(["prompt:v3"]),
    ):

        def compute(invalidate=invalidate):
            run_threads(lambda i: invalidate(), 1)
            return {"summary": "answer to the old prompt"}

        result = real_cache.get_or_compute(TEXT, "summarize", compute, cache=cache, tags=["prompt:v3"])
        assert result["summary"] == "answer to the old prompt" and result["cache_hit"] is False
        assert real_cache.get_cached_response(TEXT, "summarize") is None
    assert real_cache._state.counter_snapshot().get("fenced_stores") == 2


def test_invalidation_of_another_operation_does_not_fence(real_cache):
    def compute():
        run_threads(lambda i: real_cache.invalidate_by_operation("sentiment"), 1)
        return {"summary": "kept"}

    real_cache.get_or_compute(TEXT, "summarize", compute)
    assert real_cache.get_cached_response(TEXT, "summarize")["summary"] == "kept"


def test_short_hex_pattern_removes_nothing_on_real_redis(real_cache):
    """Issue 9.12: "a1" occurs inside about a fifth of all digests; it must remove none."""
    for i in range(300):
        real_cache.cache_response(f"{TEXT} {i}", "summarize" if i % 2 else "qa", None, {"v": i})
    digests = [k.decode().rsplit(":", 1)[1] for k in real_cache.redis.scan_iter("ai_cache:*:*")]
    assert sum("a1" in d for d in digests) > 20
    for pattern in ("a1", "*a1*", "0", "[0-9a-f]"):
        assert real_cache.invalidate_pattern(pattern) == 0
    assert real_cache.count_all() == 300
    assert real_cache.invalidate_pattern("q*") == 150
    assert real_cache.count_all() == 150


@pytest.mark.parametrize(
    ("hook", "invalidate"),
    [
        ("drain_index", lambda c: c.invalidate_by_operation("summarize")),
        ("drain_index", lambda c: c.invalidate_all()),
        ("scan_unlink", lambda c: c.invalidate_pattern("summ*")),
        ("drain_tag", lambda c: c.invalidate_tags(["t"])),
    ],
    ids=["operation", "all", "pattern", "tags"],
)
def test_own_invalidation_wins_against_a_racing_read(real_cache, monkeypatch, hook, invalidate):
    """A read that runs after the memory tier was dropped but before Redis removed the entry
    fills the old value; the invalidating call must still leave no read after it seeing that
    value, even before Redis's own message arrives (held back here: the listener is paused)."""
    real_cache.cache_response(TEXT, "summarize", None, {"v": "old"}, tags=["t"])
    real_cache.get_cached_response(TEXT, "summarize")  # fills the tier
    listener_tier = real_cache.coherence
    held: list = []
    monkeypatch.setattr(listener_tier, "invalidate", lambda keys: held.append(keys))  # delivery delayed
    if hook == "scan_unlink" and real_cache.ns.clustered:
        hook = "drain_index"  # on a cluster a pattern drains the indexes first, then scans
    original = getattr(invalidation, hook)

    def read_first(*args, **kwargs):
        hit = run_threads(lambda i: real_cache.get_cached_response(TEXT, "summarize"), 1)[0]
        assert hit["v"] == "old"  # the racing read saw (and filled) the old value
        return original(*args, **kwargs)

    monkeypatch.setattr(invalidation, hook, read_first)
    assert invalidate(real_cache) == 1
    assert real_cache.get_cached_response(TEXT, "summarize") is None


def _fault_on_the_second_batch(monkeypatch) -> list[int]:
    """Every removal batch (the UNLINK script, or a tag drain's batch script) is counted; the
    second meets a Redis that went away before it ran."""
    from redis.exceptions import ConnectionError as RedisConnectionError

    original = invalidation._script
    batches: list[int] = []

    def failing(client, source):
        script = original(client, source)
        if source not in (invalidation.UNLINK_LUA, invalidation.TAG_BATCH_LUA):
            return script

        def batch(*args, **kwargs):
            batches.append(1)
            if len(batches) == 2:
                raise RedisConnectionError("Redis went away")
            return script(*args, **kwargs)

        return batch

    monkeypatch.setattr(invalidation, "_script", failing)
    return batches


@pytest.mark.parametrize(
    ("invalidate", "count"),
    [
        (lambda c: c.invalidate_by_operation("summarize"), lambda c: c.count_by_operation("summarize")),
        (lambda c: c.invalidate_pattern("summ*"), lambda c: c.count_pattern("summ*")),
        (lambda c: c.invalidate_all(), lambda c: c.count_all()),
        (lambda c: c.invalidate_tags(["t"]), lambda c: c.count_tags(["t"])),
    ],
    ids=["operation", "pattern", "all", "tags"],
)
def test_a_fault_midway_through_a_drain_orphans_nothing(real_cache, monkeypatch, invalidate, count):
    """Issue 9 review, for each invalidation that removes in batches: a Redis fault between two
    batches returns exactly what the first removed (README: every count is exact, also when Redis
    fails midway), and orphans nothing: the rest stays indexed or in a registered drain, is
    counted, and the next invalidation removes exactly it."""
    for i in range(1200):
        real_cache.cache_response(f"{TEXT} {i}", "summarize", None, {"v": i}, tags=["t"])
    batches = _fault_on_the_second_batch(monkeypatch)
    first = invalidate(real_cache)
    assert len(batches) == 2  # the fault came between batches
    # the first batch, exactly (in a cluster: the first bucket's entries)
    assert first == 500 or (real_cache.ns.clustered and 0 < first < 1200)
    monkeypatch.undo()
    real_cache._state.breaker.success()
    assert count(real_cache) == 1200 - first
    assert real_cache.count_by_operation("summarize") == 1200 - first
    assert invalidate(real_cache) == 1200 - first
    assert real_cache.count_by_operation("summarize") == 0
    assert not list(real_cache.redis.scan_iter("ai_cache:summarize:*"))


def _first_batch(cache, keys: list[str]) -> int:
    """What the first removal batch of a drain takes: 500 entries on one node; in a cluster the
    first bucket's (every bucket's index is renamed first, then drained bucket by bucket)."""
    per_bucket = Counter(cache.ns.bucket(key) for key in keys)
    return min(invalidation.UNLINK_BATCH, next(per_bucket[b] for b in cache.ns.buckets if per_bucket[b]))


def _write_1200(cache, **kwargs) -> list[tuple[str, str]]:
    texts = [f"{TEXT} {i}" for i in range(1200)]
    for i, text in enumerate(texts):
        cache.cache_response(text, "summarize", None, {"v": i}, **kwargs)
    return [(text, cache.key_generator.generate(text, "summarize")) for text in texts]


def test_count_tags_sees_a_tag_drain_a_fault_left_half_done(real_cache, monkeypatch):
    """README: count_tags counts every entry carrying the tags, and invalidate_tags has the
    guarantees of invalidate_by_operation, whose interrupted drain stays counted."""
    keys = [key for _, key in _write_1200(real_cache, tags=["t"])]
    batches = _fault_on_the_second_batch(monkeypatch)
    first = real_cache.invalidate_tags(["t"])
    assert len(batches) == 2  # the fault came between two of drain_tag's batches
    assert first == _first_batch(real_cache, keys)  # 500 on one node
    monkeypatch.undo()
    real_cache._state.breaker.success()
    assert real_cache.count_tags(["t"]) == 1200 - first  # 700 on one node, all in the drain
    assert real_cache.invalidate_tags(["t"]) == 1200 - first
    assert real_cache.count_tags(["t"]) == 0


def _drain_holding(cache, key: str) -> str:
    """The interrupted drain of "summarize" that holds ``key``."""
    registry = cache.ns.drains("summarize", cache.ns.bucket(key))
    (drain,) = [d for d in cache.redis.smembers(registry) if cache.redis.zscore(d, key) is not None]
    return drain.decode()


def test_count_by_operation_is_exact_after_a_fault_midway(real_cache, monkeypatch):
    """README: every count is exact. After a fault midway through a drain, count_by_operation is
    the number of distinct live entries the next invalidate_by_operation removes: a key rewritten
    since (in the drain and in the fresh index) counts once; a drain member whose expiry passed
    counts 0, and so does a key rewritten since with a TTL that ran out (its drain member still
    carries the older, later expiry)."""
    written = _write_1200(real_cache)
    batches = _fault_on_the_second_batch(monkeypatch)
    first = real_cache.invalidate_by_operation("summarize")
    assert len(batches) == 2 and first == _first_batch(real_cache, [key for _, key in written])
    monkeypatch.undo()
    real_cache._state.breaker.success()
    rest = [(text, key) for text, key in written if real_cache.redis.exists(key)]
    assert len(rest) == 1200 - first  # 700 on one node
    (rewritten, _), (short, short_key), (_, expired_key) = rest[:3]
    real_cache.cache_response(rewritten, "summarize", None, {"v": "again"})
    real_cache.cache_response(short, "summarize", None, {"v": "short"}, ttl=1)
    expires_at = int(time.time() * 1000) + 50  # the entry and its drain member agree, as when written
    real_cache.redis.pexpireat(expired_key, expires_at)
    real_cache.redis.zadd(_drain_holding(real_cache, expired_key), {expired_key: expires_at}, xx=True)
    wait_for(
        lambda: not any(real_cache.redis.exists(key) for key in (short_key, expired_key)),
        what="both entries to expire",
    )
    expected = 1200 - first - 2
    assert real_cache.count_by_operation("summarize") == expected
    assert real_cache.invalidate_by_operation("summarize") == expected
    assert real_cache.count_by_operation("summarize") == 0


@pytest.mark.parametrize("by", ["operation", "tag"])
def test_each_invalidation_drains_under_its_own_name(real_cache, monkeypatch, by):
    """Two invalidations of one operation (or one tag) must never share a drain: the second's
    RENAME would land on the first's members before it drained them, and they would stay in Redis
    unindexed."""
    seen = []
    original = invalidation._drain

    def record(client, ns, parts, *args, **kwargs):
        seen.append([drain for _, _, drain, _ in parts])
        return original(client, ns, parts, *args, **kwargs)

    monkeypatch.setattr(invalidation, "_drain", record)
    for round_ in range(2):
        real_cache.cache_response(f"{TEXT} {round_}", "summarize", None, {"v": round_}, tags=["doc:1"])
        if by == "operation":
            assert real_cache.invalidate_by_operation("summarize") == 1
        else:
            assert real_cache.invalidate_tags(["doc:1"]) == 1
    first, second = seen
    assert len(first) == len(real_cache.ns.buckets) and not set(first) & set(second)
    prefix = real_cache.ns.drain("summarize", "") if by == "operation" else real_cache.ns.tag_drain("", "")
    assert all(name.startswith(prefix) and len(name) > len(prefix) for name in first + second)
