"""Bounded and honest in-process: memory of a monitor nobody drains, slow-event capping, capped
Prometheus labels, and single-flight waiters counted as hits."""

import gc
import sys
import time
import types

import pytest
from prometheus_client import REGISTRY

from aicache.monitoring import prometheus, recorder
from aicache.monitoring.recorder import CachePerformanceMonitor


class Clock:
    """time.time() for the recorder, moved by the test."""

    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(monkeypatch):
    c = Clock(1_800_000_000.0)  # a minute boundary: 30,000,000 minutes
    monkeypatch.setattr(time, "time", c)
    return c


_SHARED = (type, types.ModuleType, types.FunctionType, types.BuiltinFunctionType, types.CodeType)


def retained_bytes(root) -> int:
    """Bytes of every object reachable from ``root`` (classes, modules and functions aside)."""
    seen, stack, total = set(), [root], 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, _SHARED):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        stack.extend(gc.get_referents(obj))
    return total


def test_standalone_monitor_memory_is_bounded():
    """200,000 records into a monitor that no exporter drains keep what its windows need, not
    the records: under 2 MB here, where 200,000 pending tuples alone take over 30 MB."""
    m = CachePerformanceMonitor(max_measurements=1000)
    empty = retained_bytes(m)
    for i in range(200_000):
        m.record_lookup("qa", "small", "redis" if i % 4 else "", 1e-5 * (i % 7 + 1), 1e-6, 100)
    assert len(m._pending) < recorder.SETTLE_AT
    retained = retained_bytes(m) - empty
    assert retained < 2_000_000, retained
    assert (m.cache_hits, m.cache_misses) == (150_000, 50_000)  # nothing lost on the way
    assert len(m.cache_operation_times) == 1000


def test_undrained_series_stay_bounded(clock):
    m = CachePerformanceMonitor(max_measurements=100, retention_hours=1)
    for i in range(5000):
        m.record_invalidation_event(f"p{i % 3}", 1, 0.001)
    assert m.total_invalidations == 5000
    assert len(m._pending_invalidations) == 100
    for _ in range(3000):  # a read a minute for 50 hours: a rollup per minute, never drained
        clock.now += 60
        m.record_lookup("qa", "small", "redis", 0.001, None, 10)
    m.reset_stats()  # settles
    assert 60 < len(m._rollups) <= recorder.ROLLUP_PRUNE_AT
    kept = sum(r.count for r in m._rollups.values())
    # every record pruned unexported is counted: the invalidations beyond the 100 kept, and the
    # rollups (5000 invalidations, 3000 reads) older than the retention window
    assert m.drain().counters["dropped_pending"] == 4900 + (8000 - kept)


def test_slow_events_are_capped_per_minute_and_action(clock):
    cap = 20  # README: "capped at 20 per minute and action"
    m = CachePerformanceMonitor(cache_operation_threshold=0.01)
    for _ in range(1000):
        m.record_lookup("qa", "small", "redis", 0.5, None, 10)
    for _ in range(30):
        m.record_cache_operation_time("set", 0.5, False, 10, operation_type="qa", tier="small")
    for _ in range(10):  # a get reported through the original API shares the get allowance
        m.record_cache_operation_time("get", 0.5, True, 10, operation_type="qa", tier="small")
    clock.now += 60  # the next minute: a fresh allowance
    for _ in range(50):
        m.record_lookup("qa", "small", "redis", 0.5, None, 10)
    drained = m.drain()
    by_action = {}
    for s in drained.slow:
        key = (s.operation, int(s.timestamp) // 60)
        by_action[key] = by_action.get(key, 0) + 1
    minute = int(clock.now) // 60
    assert by_action == {("get", minute - 1): cap, ("set", minute - 1): cap, ("get", minute): cap}
    assert drained.counters["dropped_slow_events"] == (1000 + 10 - cap) + (30 - cap) + (50 - cap)
    gets = sum(r.count for k, r in drained.rollups.items() if k[1] == "get")
    assert gets == 1060  # capping drops raw events only: every read is in the rollups


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_operation_labels_are_capped_at_50_per_process(monkeypatch):
    """README: the AI operation label is capped at 50 distinct values per process; the rest
    become ``other``."""
    monkeypatch.setattr(prometheus, "_operations", set())  # this test's process, from nothing
    labels = [prometheus.operation_label(f"op{i}") for i in range(60)]
    assert labels == [f"op{i}" for i in range(50)] + ["other"] * 10
    assert prometheus.operation_label("op49") == "op49"  # a value already labelled keeps its label


def test_action_and_source_labels_share_20_more_values(monkeypatch):
    """README: an ``action`` or ``source`` outside its fixed set shares 20 more values; the rest
    become ``other``, and the fixed sets never count against them."""
    monkeypatch.setattr(prometheus, "_actions", set())
    m = CachePerformanceMonitor()
    other = sample("redis_cache_operation_duration_seconds_count", action="get", source="other")
    for i in range(15):  # 15 custom actions, then 15 custom sources: 35 rollups, 30 new values
        m.record_cache_operation_time(f"capact{i}", 0.001, True, operation_type="qa", tier="small")
    for i in range(15):
        m.record_lookup("qa", "small", f"capsrc{i}", 0.001, None, 10)
    prometheus.apply(m, m.drain())
    labelled = {
        (s.labels["action"], s.labels["source"])
        for metric in REGISTRY.collect()
        if metric.name == "redis_cache_operation_duration_seconds"
        for s in metric.samples
    }
    actions = {a for a, _ in labelled if a.startswith("capact")}
    sources = {source for a, source in labelled if a == "get" and source.startswith("capsrc")}
    assert (len(actions), len(sources)) == (15, 5)  # 20 in all, in the order they came
    latency_actions = {  # the histogram takes the same capped action label
        s.labels["action"]
        for metric in REGISTRY.collect()
        if metric.name == "redis_cache_latency_ms"
        for s in metric.samples
        if s.labels.get("action", "").startswith("capact")
    }
    assert latency_actions == actions
    assert sample("redis_cache_operation_duration_seconds_count", action="get", source="other") - other == 10
    for fixed in ("get", "set", "memory", "redis", "coalesced", "miss", "ok", "error"):
        assert prometheus.action_label(fixed) == fixed


def test_five_identical_calls_on_a_cold_key_recorder_figures():
    """What the single-flight core records for 5 concurrent identical get_or_compute calls on a
    cold key (one lookup each: 1 miss whose compute ran, 4 coalesced): 1 miss, 4 hits."""
    m = CachePerformanceMonitor()
    before = {
        "hits": sample("redis_cache_hits_total", operation="five", tier="small"),
        "misses": sample("redis_cache_misses_total", operation="five", tier="small"),
        "coalesced": sample("aicache_single_flight_total", event="coalesced"),
        "coalesced_reads": sample(
            "redis_cache_operation_duration_seconds_count", action="get", source="coalesced"
        ),
    }
    m.record_lookup("five", "small", "", 0.001, 1e-6, 40)
    for _ in range(4):
        m.record_lookup("five", "small", "coalesced", 0.3, 1e-6, 40)
    stats = m.get_performance_stats()
    assert (stats["cache_hits"], stats["cache_misses"], stats["cache_hit_rate"]) == (4, 1, 80.0)
    assert m.counters["single_flight_coalesced"] == 4
    assert m.summary()["hit_ratio"] == 0.8
    drained = m.drain()
    outcomes = {k[4]: r.count for k, r in drained.rollups.items() if k[1] == "get"}
    assert outcomes == {"miss": 1, "hit_coalesced": 4}
    prometheus.apply(m, drained)
    assert sample("redis_cache_hits_total", operation="five", tier="small") - before["hits"] == 4
    assert sample("redis_cache_misses_total", operation="five", tier="small") - before["misses"] == 1
    assert sample("aicache_single_flight_total", event="coalesced") - before["coalesced"] == 4
    assert (
        sample("redis_cache_operation_duration_seconds_count", action="get", source="coalesced")
        - before["coalesced_reads"]
        == 4
    )


def test_standalone_monitor_bounded_by_distinct_operation_names(monkeypatch):
    """Review finding: distinct operation names inside the retention grew the undrained rollups
    without bound (200k names: 600k rollups, 379 MB)."""
    from aicache.monitoring import CachePerformanceMonitor, rollups

    monkeypatch.setattr(rollups, "MAX_UNDRAINED_ROLLUPS", 500)
    monitor = CachePerformanceMonitor()
    for i in range(3000):
        monitor.record_lookup(f"op{i}", "small", "redis", 0.001, None, 10)
    monitor.get_performance_stats()
    assert len(monitor._rollups) <= 500
    assert monitor.counters.get("dropped_pending", 0) > 0  # counted, not silently lost
    assert monitor.cache_hits == 3000  # the totals are exact all the same
