import pytest

from aicache import memory
from aicache.memory import MISSING, MemoryTier
from aicache.state import CircuitBreaker, get_process_state
from tests.helpers import run_threads


def test_lru_eviction_by_count():
    tier = MemoryTier(max_entries=3, max_bytes=10_000)
    for k in "abc":
        tier.set(k, k, 1, 60)
    assert tier.get("a") == "a"  # a becomes most recent
    tier.set("d", "d", 1, 60)
    assert tier.get("b") is MISSING
    assert [tier.get(k) for k in "acd"] == ["a", "c", "d"]
    assert tier.stats().evictions == 1


def test_lru_eviction_by_bytes():
    tier = MemoryTier(max_entries=100, max_bytes=100)
    tier.set("a", "a", 40, 60)
    tier.set("b", "b", 40, 60)
    tier.set("c", "c", 40, 60)  # 120 bytes > 100: the oldest goes
    assert tier.get("a") is MISSING
    assert tier.stats().bytes == 80
    assert tier.set("huge", "x", 101, 60) is False
    assert tier.get("huge") is MISSING


def test_overwrite_replaces_size():
    tier = MemoryTier(10, 100)
    tier.set("a", 1, 60, 60)
    tier.set("a", 2, 10, 60)
    assert tier.stats().bytes == 10 and tier.get("a") == 2


def test_entries_expire(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(memory.time, "monotonic", lambda: now[0])
    tier = MemoryTier(10, 100)
    tier.set("a", 1, 1, ttl=5)
    now[0] += 4.9
    assert tier.get("a") == 1
    now[0] += 0.2
    assert tier.get("a") is MISSING
    assert tier.stats().expirations == 1 and tier.stats().bytes == 0


def test_disabled_and_zero_ttl():
    assert MemoryTier(0, 100).set("a", 1, 1, 60) is False
    tier = MemoryTier(10, 100)
    assert tier.set("a", 1, 1, 0) is False


def test_prefix_and_many_delete():
    tier = MemoryTier(10, 100)
    for k in ("p:a:1", "p:a:2", "p:b:1"):
        tier.set(k, k, 1, 60)
    assert tier.delete_prefix("p:a:") == 2
    assert tier.keys() == ["p:b:1"]
    assert tier.delete_many(["p:b:1", "nope"]) == 1
    assert tier.clear() == 0


def test_concurrent_use_keeps_accounting_exact():
    tier = MemoryTier(max_entries=50, max_bytes=10_000)

    def work(n):
        for i in range(2000):
            key = f"{n}:{i % 70}"
            tier.set(key, i, 3, 60)
            tier.get(f"{(n + 1) % 4}:{i % 70}")
            if i % 13 == 0:
                tier.delete(key)

    run_threads(work, 4)
    stats = tier.stats()
    assert stats.entries <= 50
    assert stats.bytes == 3 * stats.entries


def test_process_state_is_shared_per_identity(ai_cache):
    cfg = ai_cache.config
    a = get_process_state(("redis://x", "p"), cfg)
    b = get_process_state(("redis://x", "p"), cfg)
    c = get_process_state(("redis://y", "p"), cfg)
    assert a is b and a is not c


def test_circuit_breaker_opens_at_the_threshold_and_probes_once(monkeypatch):
    now = [0.0]
    monkeypatch.setattr("aicache.state.time.monotonic", lambda: now[0])
    breaker = CircuitBreaker(failures=2, reset=5)
    breaker.failure()
    assert breaker.allow() and breaker.state == "closed"
    breaker.failure()
    assert not breaker.allow() and breaker.opened == 1 and breaker.state == "open"
    now[0] = 4.9
    assert not breaker.allow()
    now[0] = 5.1
    assert breaker.would_allow()
    assert breaker.allow()  # half-open: this caller is the one probe...
    assert not breaker.allow() and not breaker.would_allow()  # ...and every other caller waits
    breaker.failure()  # the probe failed: open again for a full window
    assert breaker.opened == 2 and not breaker.allow()
    now[0] = 10.2
    assert breaker.allow()
    breaker.release()  # the probe ended without a verdict: the next caller probes
    assert breaker.allow()
    breaker.success()
    assert breaker.state == "closed" and breaker.allow() and breaker.allow()
    breaker.failure()
    assert breaker.allow()  # counting starts again after a success


@pytest.mark.parametrize("n", [1, 8])
def test_thread_instances_share_the_tier(n, ai_cache):
    from django.core.cache import caches

    seen = run_threads(lambda i: caches["ai"].memory, n)
    assert [m is ai_cache.memory for m in seen] == [True] * n


def test_peek_reads_without_moving_or_counting(monkeypatch):
    tier = MemoryTier(max_entries=2, max_bytes=10_000)
    tier.set("a", "value a", 1, 60)
    tier.set("b", "value b", 1, 60)
    before = tier.stats()
    assert tier.peek("a") == "value a" and tier.peek("zz") is MISSING
    assert (tier.stats().hits, tier.stats().misses) == (before.hits, before.misses)
    tier.set("c", "value c", 1, 60)  # "a" was peeked, not used: it is still the least recent
    assert tier.peek("a") is MISSING and tier.peek("b") == "value b"
    from tests.helpers import FakeClock

    monkeypatch.setattr(memory, "time", FakeClock(memory.time.monotonic() + 120))
    assert tier.peek("b") == "value b"  # expired, still peeked (invalidate_where matches it)
    assert tier.get("b") is MISSING


def test_stats_count_every_figure_and_membership_is_a_counted_read():
    tier = MemoryTier(max_entries=2, max_bytes=500)
    tier.set("a", "value a", 7, 60)
    tier.set("b", "value b", 9, 60)
    tier.set("c", "value c", 11, 60)  # evicts "a"
    assert tier.get("b") == "value b"
    assert "c" in tier and "a" not in tier  # a hit and a miss
    assert tier.get("zz") is MISSING
    assert tier.stats() == memory.MemoryStats(
        entries=2, bytes=20, max_entries=2, max_bytes=500, hits=2, misses=2, evictions=1, expirations=0
    )


def test_expired_reads_count_each_miss_and_expiry(monkeypatch):
    now = [1000.0]
    monkeypatch.setattr(memory.time, "monotonic", lambda: now[0])
    tier = MemoryTier(10, 100)
    tier.set("a", 1, 3, ttl=5)
    tier.set("b", 2, 4, ttl=5)
    now[0] += 5.0  # exactly the expiry instant: both are gone
    assert tier.get("a") is MISSING and tier.get("b") is MISSING
    stats = tier.stats()
    assert (stats.misses, stats.expirations, stats.entries, stats.bytes) == (2, 2, 0, 0)
    assert tier.get("a") is MISSING  # now simply absent: a third miss, no third expiry
    assert (tier.stats().misses, tier.stats().expirations) == (3, 2)


def test_delete_reports_and_removes_exactly_its_key():
    tier = MemoryTier(10, 100)
    tier.set("a", 1, 30, 60)
    tier.set("b", 2, 20, 60)
    assert tier.delete("a") is True
    assert tier.get("a") is MISSING and tier.get("b") == 2
    assert tier.stats().bytes == 20
    assert tier.delete("a") is False and tier.delete("never") is False
    assert tier.stats().bytes == 20


def test_delete_many_and_clear_keep_bytes_exact():
    tier = MemoryTier(10, 100)
    for key, size in (("a", 10), ("b", 20), ("c", 30)):
        tier.set(key, key, size, 60)
    assert tier.delete_many(["a", "c", "gone"]) == 2
    assert (tier.stats().bytes, tier.keys()) == (20, ["b"])
    assert tier.clear() == 1
    assert tier.stats().bytes == 0
    tier.set("d", "d", 5, 60)
    assert tier.stats().bytes == 5


def test_a_tier_holds_exactly_its_bytes_and_counts_every_eviction():
    tier = MemoryTier(max_entries=10, max_bytes=100)
    assert tier.set("whole", "w", 100, 60) is True  # exactly the bound fits
    assert tier.get("whole") == "w"
    assert tier.set("a", "a", 60, 60) is True  # evicts "whole"
    assert tier.set("b", "b", 40, 60) is True  # 100 bytes again: nothing more goes
    assert [tier.get(k) for k in ("whole", "a", "b")] == [MISSING, "a", "b"]
    assert tier.set("c", "c", 70, 60) is True  # 170 bytes: "a", then "b" go
    assert tier.keys() == ["c"] and tier.stats().evictions == 3


def test_a_value_too_big_for_the_tier_removes_the_older_one():
    """The older value must not outlive the write that replaced it in Redis."""
    tier = MemoryTier(10, 100)
    tier.set("a", "old", 10, 60)
    assert tier.set("a", "new", 101, 60) is False
    assert tier.get("a") is MISSING and tier.stats().bytes == 0
    tier.set("b", "old", 10, 60)
    assert tier.set("b", "new", 10, 0) is False  # no lifetime left: the same
    assert tier.get("b") is MISSING
