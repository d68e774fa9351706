"""The original ``CachePerformanceMonitor`` API, key by key, against hand-computed values.

A user porting code written against the original finds the same import, attributes, counters and
result shapes (extra keys are allowed; missing or reshaped ones are not).
"""

import time
from datetime import datetime

import pytest

from aicache.instrument import NullMonitor


@pytest.fixture
def monitor():
    from aicache.monitoring import CachePerformanceMonitor

    return CachePerformanceMonitor(retention_hours=1, max_measurements=1000)


def test_import_from_the_package():
    from aicache.monitoring import CachePerformanceMonitor
    from aicache.monitoring.recorder import CachePerformanceMonitor as Recorder

    assert CachePerformanceMonitor is Recorder
    with pytest.raises(ImportError):
        from aicache.monitoring import NoSuchThing  # noqa: F401


def test_public_attributes_and_counters(monitor):
    before = time.time()
    monitor.record_key_generation_time(0.002, 120, "summarize", {"model": "m1"})
    monitor.record_cache_operation_time("get", 0.010, True, 120, {"tier": "small"})
    monitor.record_cache_operation_time("get", 0.030, False, 80)
    monitor.record_cache_operation_time("set", 0.020, False, 80)
    monitor.record_compression_ratio(1000, 250, 0.004, "summarize")
    monitor.record_invalidation_event("summarize", 7, 0.003, "operation", "deploy")
    monitor.record_memory_usage(3, 3000, 100, 10_000)

    (kg,) = monitor.key_generation_times
    assert (kg.duration, kg.text_length, kg.operation_type, kg.additional_data) == (
        0.002,
        120,
        "summarize",
        {"model": "m1"},
    )
    assert before <= kg.timestamp <= time.time()
    get_hit, get_miss, put = monitor.cache_operation_times
    assert [m.operation_type for m in (get_hit, get_miss, put)] == ["get", "get", "set"]  # the action
    assert (get_hit.duration, get_hit.text_length, get_hit.additional_data) == (0.010, 120, {"tier": "small"})
    assert get_miss.additional_data == {} and put.duration == 0.020
    (c,) = monitor.compression_ratios
    assert (
        c.original_size,
        c.compressed_size,
        c.compression_ratio,
        c.compression_time,
        c.operation_type,
    ) == (
        1000,
        250,
        0.25,
        0.004,
        "summarize",
    )
    assert before <= c.timestamp <= time.time()
    (inv,) = monitor.invalidation_events
    assert (inv.pattern, inv.keys_invalidated, inv.invalidation_type, inv.operation_context) == (
        "summarize",
        7,
        "operation",
        "deploy",
    )
    (mem,) = monitor.memory_usage_measurements
    assert mem.memory_entries == 3 and mem.memory_bytes == 3000
    # counters read as attributes, exact right after recording (no exporter has run)
    assert (monitor.cache_hits, monitor.cache_misses, monitor.total_operations) == (1, 1, 3)
    assert (monitor.total_invalidations, monitor.total_keys_invalidated) == (1, 7)


def test_recent_slow_operations_shape(monitor):
    # key generation: mean of (1, 1, 1, 9) ms = 3 ms; 9 ms is 3x
    for d in (0.001, 0.001, 0.001, 0.009):
        monitor.record_key_generation_time(d, 100, "qa")
    # cache operations: mean of (2, 2, 2, 2, 12) ms = 4 ms; 12 ms is 3x
    for d in (0.002, 0.002, 0.002, 0.002):
        monitor.record_cache_operation_time("get", d, True, 50)
    monitor.record_cache_operation_time("set", 0.012, False, 60)
    # compression: mean time of (1, 5) ms = 3 ms; neither is over 2x, so nothing at 2.0
    monitor.record_compression_ratio(1000, 400, 0.001, "qa")
    monitor.record_compression_ratio(2000, 500, 0.005, "qa")
    slow = monitor.get_recent_slow_operations(2.0)
    assert set(slow) == {"key_generation", "cache_operations", "compression"}
    (k,) = slow["key_generation"]
    assert {key: k[key] for key in ("duration", "text_length", "operation_type")} == {
        "duration": 0.009,
        "text_length": 100,
        "operation_type": "qa",
    }
    assert k["times_slower"] == pytest.approx(3.0)
    datetime.fromisoformat(k["timestamp"])  # an ISO string
    (op,) = slow["cache_operations"]
    assert (op["duration"], op["text_length"], op["operation_type"]) == (0.012, 60, "set")
    assert op["times_slower"] == pytest.approx(3.0) and isinstance(op["timestamp"], str)
    assert slow["compression"] == []
    (comp,) = monitor.get_recent_slow_operations(1.5)["compression"]  # 5 ms > 1.5 x 3 ms
    assert {key: comp[key] for key in ("compression_time", "original_size", "compression_ratio")} == {
        "compression_time": 0.005,
        "original_size": 2000,
        "compression_ratio": 0.25,
    }
    assert comp["operation_type"] == "qa" and comp["times_slower"] == pytest.approx(5 / 3)
    datetime.fromisoformat(comp["timestamp"])


def test_invalidation_frequency_patterns_are_a_dict_most_common_first(monitor):
    calls = ["a"] * 3 + ["b"] * 5 + ["c"] + [f"p{i}" for i in range(12)]
    for p in calls:
        monitor.record_invalidation_event(p, 2, 0.001, "pattern" if p != "b" else "operation")
    patterns = monitor.get_invalidation_frequency_stats()["patterns"]
    common = patterns["most_common_patterns"]
    assert isinstance(common, dict) and len(common) == 10
    assert list(common.items())[:3] == [("b", 5), ("a", 3), ("c", 1)]
    assert patterns["invalidation_types"] == {"pattern": 16, "operation": 5}


def _by_issue(monitor):
    return {r["issue"]: r for r in monitor.get_invalidation_recommendations()}


@pytest.mark.parametrize(
    "count,severity", [(2, None), (3, "warning"), (4, "warning"), (5, "critical"), (9, "critical")]
)
def test_high_frequency_recommendation(count, severity):
    from aicache.monitoring import CachePerformanceMonitor

    m = CachePerformanceMonitor(invalidation_rate_warning_per_hour=3, invalidation_rate_critical_per_hour=5)
    for i in range(count):
        m.record_invalidation_event(f"p{i}", 5, 0.001)
    rec = _by_issue(m).get("High invalidation frequency")
    assert (rec["severity"] if rec else None) == severity
    if rec:
        assert set(rec) >= {"severity", "issue", "message", "suggestions"} and rec["suggestions"]


def test_dominant_pattern_recommendation(monitor):
    for p in ("x", "x", "x", "y", "z"):  # 3 of 5: more than half
        monitor.record_invalidation_event(p, 5, 0.001)
    rec = _by_issue(monitor)["Dominant invalidation pattern"]
    assert rec["severity"] == "info" and "'x'" in rec["message"] and rec["suggestions"]


def test_low_efficiency_and_high_impact_recommendations(monitor):
    monitor.record_invalidation_event("a", 0, 0.001)
    monitor.record_invalidation_event("b", 1, 0.001)  # 0.5 keys per invalidation
    low = _by_issue(monitor)
    assert (
        set(low) == {"Low invalidation efficiency"}
        and low["Low invalidation efficiency"]["severity"] == "info"
    )
    from aicache.monitoring import CachePerformanceMonitor

    big = CachePerformanceMonitor()
    big.record_invalidation_event("all", 150, 0.01, "all")
    big.record_invalidation_event("everything", 150, 0.01, "all")  # no pattern dominates
    high = _by_issue(big)
    assert (
        set(high) == {"High invalidation impact"}
        and high["High invalidation impact"]["severity"] == "warning"
    )
    assert high["High invalidation impact"]["id"] == "high_invalidation_impact"  # stable machine id


def test_export_metrics_original_keys(monitor):
    monitor.record_key_generation_time(0.001, 10, "qa")
    monitor.record_cache_operation_time("get", 0.002, True, 10)
    monitor.record_cache_operation_time("get", 0.004, False, 10)
    monitor.record_compression_ratio(100, 40, 0.0005, "qa")
    monitor.record_invalidation_event("qa", 4, 0.001, "operation")
    monitor.record_memory_usage(1, 100)
    out = monitor.export_metrics()
    assert out["key_generation_times"] == [
        {
            "duration": 0.001,
            "text_length": 10,
            "timestamp": out["key_generation_times"][0]["timestamp"],
            "operation_type": "qa",
            "additional_data": {},
        }
    ]
    ops = out["cache_operation_times"]
    assert [(o["operation_type"], o["duration"], o["text_length"]) for o in ops] == [
        ("get", 0.002, 10),
        ("get", 0.004, 10),
    ]
    assert all(isinstance(o["timestamp"], float) and o["additional_data"] == {} for o in ops)
    (comp,) = out["compression_ratios"]
    assert {
        k: comp[k] for k in ("original_size", "compressed_size", "compression_ratio", "compression_time")
    } == {
        "original_size": 100,
        "compressed_size": 40,
        "compression_ratio": 0.4,
        "compression_time": 0.0005,
    }
    assert comp["operation_type"] == "qa"
    assert [e["keys_invalidated"] for e in out["invalidation_events"]] == [4]
    assert [m["memory_bytes"] for m in out["memory_usage_measurements"]] == [100]
    assert (out["cache_hits"], out["cache_misses"], out["total_operations"]) == (1, 1, 2)
    assert (out["total_invalidations"], out["total_keys_invalidated"]) == (1, 4)
    assert abs(datetime.fromisoformat(out["export_timestamp"]).timestamp() - time.time()) < 5


def test_reset_stats_empties_everything(monitor):
    monitor.record_key_generation_time(0.001, 10)
    monitor.record_cache_operation_time("get", 0.002, True)
    monitor.record_compression_ratio(100, 40, 0.0005)
    monitor.record_invalidation_event("qa", 4, 0.001)
    monitor.record_memory_usage(1, 100)
    monitor.reset_stats()
    assert monitor.key_generation_times == [] and monitor.cache_operation_times == []
    assert monitor.compression_ratios == [] and monitor.invalidation_events == []
    assert monitor.memory_usage_measurements == []
    assert (monitor.cache_hits, monitor.cache_misses, monitor.total_operations) == (0, 0, 0)
    assert (monitor.total_invalidations, monitor.total_keys_invalidated) == (0, 0)
    out = monitor.export_metrics()
    assert out["key_generation_times"] == out["cache_operation_times"] == out["compression_ratios"] == []


def test_performance_stats_keeps_its_shape(monitor):
    monitor.record_cache_operation_time("get", 0.002, True, 10)
    monitor.record_cache_operation_time("set", 0.004, False, 10)
    stats = monitor.get_performance_stats()
    assert {"timestamp", "retention_hours", "cache_hit_rate", "total_cache_operations"} <= set(stats)
    assert (stats["cache_hits"], stats["cache_misses"], stats["cache_hit_rate"]) == (1, 0, 100.0)
    assert stats["cache_operations"]["by_operation_type"]["set"]["count"] == 1


def test_summary_keys_match_the_null_monitor(monitor):
    from aicache.monitoring.summaries import EMPTY_SUMMARY

    assert set(monitor.summary()) == set(NullMonitor().summary()) == set(EMPTY_SUMMARY)


def test_summary_takes_every_figure_from_one_window():
    """With measurement windows of 2, the summary still covers all 6 reads since the start: its
    hit ratio, memory share and latencies agree with each other."""
    from aicache.monitoring import CachePerformanceMonitor

    m = CachePerformanceMonitor(max_measurements=2)
    for source, d in (("memory", 0.001), ("memory", 0.001), ("redis", 0.004), ("", 0.006)):
        m.record_lookup("qa", "small", source, d, None, 10)
    for source, d in (("redis", 0.010), ("redis", 0.010)):
        m.record_lookup("qa", "medium", source, d, None, 10)
    m.record_compression_ratio(1000, 400, 0.001)
    m.record_compression_ratio(1000, 600, 0.001)
    m.record_compression_ratio(2000, 1000, 0.001)
    s = m.summary()
    assert s["hit_ratio"] == pytest.approx(5 / 6)
    assert s["total_operations"] == 6
    assert s["memory_tier_hit_share"] == pytest.approx(2 / 5)
    assert s["avg_get_latency_by_tier"] == {"medium": pytest.approx(0.010), "small": pytest.approx(0.003)}
    assert s["avg_get_latency_ms_by_tier"] == {"medium": 10.0, "small": 3.0}
    assert s["avg_operation_latency"] == pytest.approx(0.032 / 6)
    assert s["avg_operation_latency_ms"] == 5.333
    assert s["compression_bytes_saved"] == 2000 and s["compression_savings_percent"] == pytest.approx(50.0)
    m.reset_stats()
    assert m.summary()["total_operations"] == 0


def test_write_success_is_not_cache_hit(monitor):
    monitor.record_cache_operation_time("set", 0.001, False, operation_type="qa", tier="small")
    monitor.record_cache_operation_time("set", 0.001, False, operation_type="qa", tier="small", success=False)
    outcomes = {k[4]: r.count for k, r in monitor.drain().rollups.items() if k[1] == "set"}
    assert outcomes == {"ok": 1, "error": 1}
    assert [m.success for m in monitor.cache_operation_times] == [True, False]
    assert (monitor.cache_hits, monitor.cache_misses) == (0, 0)


def test_cache_write_records_success_apart(ai_cache, monkeypatch):
    from redis.exceptions import ConnectionError

    text = "A write that Redis refuses is recorded as failed, not as a miss. " * 2
    ai_cache.cache_response(text, "qa", None, {"a": 1})

    def down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(ai_cache, "_write", down)
    ai_cache.cache_response(text + "!", "qa", None, {"a": 2})
    sets = [m for m in ai_cache.monitor.cache_operation_times if m.operation_type == "set"]
    assert [(m.cache_hit, m.success) for m in sets] == [(False, True), (False, False)]


def test_summary_errors_come_from_the_same_window(ai_cache, monkeypatch):
    """Review finding: errors survived reset_stats() while every other figure restarted."""
    from redis.exceptions import ResponseError

    def refuse(*args, **kwargs):
        raise ResponseError("WRONGTYPE")

    monkeypatch.setattr(ai_cache.redis, "get", refuse)
    ai_cache.get_cached_response("a text for the error window", "qa")
    zero = dict.fromkeys(
        ("unreachable", "redis_error", "corrupt_entry", "forged_entry", "unknown_dictionary", "circuit_open"),
        0,
    )
    assert ai_cache.get_performance_summary()["errors"] == {**zero, "redis_error": 1}
    ai_cache.monitor.reset_stats()
    assert ai_cache.get_performance_summary()["errors"] == zero
    assert ai_cache.error_counts() == {**zero, "redis_error": 1}  # the process-lifetime count stays


def test_record_memory_usage_takes_the_original_memory_cache_dict():
    """Code ported from the original passes the memory cache itself (and Redis stats)."""
    from aicache.monitoring import CachePerformanceMonitor

    monitor = CachePerformanceMonitor()
    monitor.record_memory_usage({"key1": {"data": "value1"}})
    record = monitor.record_memory_usage(
        {"key1": {"data": "value1"}, "key2": {"data": "value2"}},
        redis_stats={"memory_used_bytes": 5_000_000, "keys": 10},
    )
    assert record.memory_entries == 2 and record.memory_bytes > 0 and record.redis_used_bytes == 5_000_000
    stats = monitor.get_performance_stats()["memory_usage"]
    assert stats["current"]["memory_cache_entry_count"] == 2
    assert stats["trends"]["total_measurements"] == 2
    assert stats["current"]["total_cache_size_mb"] > 4.7
    assert len(monitor.export_metrics()["memory_usage_measurements"]) == 2


def test_dominant_pattern_as_the_original_counts_it():
    from aicache.monitoring import CachePerformanceMonitor

    monitor = CachePerformanceMonitor()
    for _ in range(3):
        monitor.record_invalidation_event("dominant_pattern", 1, 0.01)
    monitor.record_invalidation_event("other_pattern", 1, 0.01)
    (rec,) = [
        r for r in monitor.get_invalidation_recommendations() if r["issue"] == "Dominant invalidation pattern"
    ]
    assert rec["severity"] == "info" and "dominant_pattern" in rec["message"]


def test_the_original_measurement_classes_import_and_behave():
    from aicache.monitoring import (
        CachePerformanceMonitor,
        CompressionMetric,
        InvalidationMetric,
        MemoryUsageMetric,
        PerformanceMetric,
    )

    assert CompressionMetric(1000, 600, 0, 0.02, 1.0).compression_ratio == 0.6
    assert CompressionMetric(0, 0, 0, 0.02, 1.0).compression_ratio == 0
    assert PerformanceMetric(0.05, 500, 1.0).additional_data == {}
    metric = MemoryUsageMetric(1024, 100, 10.0, 512, 50, 256.5, 1.0, 2.0)
    assert metric.additional_data == {} and metric.warning_threshold_reached is False
    monitor = CachePerformanceMonitor(
        memory_warning_threshold_bytes=25 * 2**20, memory_critical_threshold_bytes=50 * 2**20
    )
    assert (monitor.memory_warning_threshold_bytes, monitor.memory_critical_threshold_bytes) == (
        25 * 2**20,
        50 * 2**20,
    )
    assert CachePerformanceMonitor().memory_critical_threshold_bytes == 100 * 2**20
    empty = monitor.get_invalidation_frequency_stats()
    assert empty["no_invalidations"] is True and empty["warning_threshold_per_hour"] == 50
    monitor.record_invalidation_event("p", 5, 0.01)
    (event,) = monitor.invalidation_events
    assert isinstance(event, InvalidationMetric) and event.pattern == "p"
    assert monitor._get_invalidations_in_last_hour() == 1
