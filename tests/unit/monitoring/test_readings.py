"""The monitor's readings against hand-computed figures: the summary, the retention window's edge,
slow operations, memory statistics (every field), the original's helpers and export."""

import pytest

from aicache.monitoring import readings
from aicache.monitoring.events import MemoryRecord
from aicache.monitoring.readings import memory_usage_stats
from aicache.monitoring.recorder import CachePerformanceMonitor
from aicache.state import ERROR_KINDS
from tests.unit.monitoring.conftest import T0

MIB = 1024 * 1024


def test_summary_of_nothing(clock):
    m = CachePerformanceMonitor()
    assert m.summary() == {
        "hit_ratio": 0.0,
        "total_operations": 0,
        "memory_tier_hit_share": 0.0,
        "avg_get_latency_by_tier": {},
        "avg_operation_latency": 0.0,
        "avg_get_latency_ms_by_tier": {},
        "avg_operation_latency_ms": 0.0,
        "compression_savings_percent": 0.0,
        "compression_bytes_saved": 0,
        "since": T0,
        "errors": dict.fromkeys(ERROR_KINDS, 0),
    }


def test_summary_figures(clock):
    m = CachePerformanceMonitor()
    clock.now += 5
    m.reset_stats()
    m.record_lookup("qa", "small", "memory", 0.002, None, 10)
    m.record_lookup("qa", "medium", "memory", 0.004, None, 10)  # memory hits in two tiers add up
    m.record_lookup("qa", "medium", "", 0.010, None, 10)
    m.count("error:redis_error:get", 2)
    m.count("error:redis_error:set", 3)  # one kind, two actions: summed
    m.count("error:custom_kind:get", 4)  # a kind of a custom backend: listed too
    m.count("error:unreachable:get:extra", 1)  # the kind is the second field, whatever follows
    s = m.summary()
    assert s["since"] == T0 + 5
    assert s["hit_ratio"] == pytest.approx(2 / 3)
    assert s["memory_tier_hit_share"] == 1.0
    assert s["avg_get_latency_by_tier"] == {"medium": pytest.approx(0.007), "small": pytest.approx(0.002)}
    assert s["avg_operation_latency"] == pytest.approx(0.016 / 3)
    assert s["errors"] == {
        **dict.fromkeys(ERROR_KINDS, 0),
        "redis_error": 5,
        "custom_kind": 4,
        "unreachable": 1,
    }


def test_hit_ratio_with_as_many_hits_as_misses(clock):
    m = CachePerformanceMonitor()
    m.record_lookup("qa", "small", "redis", 0.002, None, 10)
    m.record_lookup("qa", "small", "", 0.002, None, 10)
    assert m.summary()["hit_ratio"] == 0.5
    assert m.summary()["memory_tier_hit_share"] == 0.0


def test_the_retention_window_keeps_what_is_exactly_at_its_edge(clock):
    m = CachePerformanceMonitor(retention_hours=1)
    m.record_invalidation_event("qa", 1, 0.001, "operation")
    m.record_key_generation_time(0.001, 10)
    clock.now = T0 + 3600  # exactly retention_hours old: still in
    assert len(m.invalidation_events) == 1 and len(m.key_generation_times) == 1
    assert m._get_invalidations_in_last_hour() == 0  # the original's "last hour" is strict
    clock.now = T0 + 3600.5  # half a second older: out
    assert m.invalidation_events == [] and m.key_generation_times == []
    clock.now = T0 + 3599.5
    assert m._get_invalidations_in_last_hour() == 1


def test_recent_slow_operations_in_the_originals_shape(clock):
    m = CachePerformanceMonitor(cache_operation_threshold=10.0, key_generation_threshold=10.0)
    for d in (0.001, 0.001, 0.001, 0.009):  # mean 0.003: only 0.009 is above 2 x mean
        m.record_cache_operation_time("get", d, True, 7, operation_type="qa", tier="small", source="redis")
        m.record_key_generation_time(d, 7, "qa")
        m.record_compression_ratio(1000, 500, d, "qa")
    slow = m.get_recent_slow_operations()
    iso = readings.iso(T0)
    assert slow["cache_operations"] == [
        {
            "duration": 0.009,
            "operation_type": "get",
            "text_length": 7,
            "timestamp": iso,
            "ai_operation": "qa",
            "tier": "small",
            "source": "redis",
            "times_slower": pytest.approx(3.0),
        }
    ]
    assert slow["key_generation"] == [
        {
            "duration": 0.009,
            "text_length": 7,
            "operation_type": "qa",
            "timestamp": iso,
            "times_slower": pytest.approx(3.0),
        }
    ]
    assert slow["compression"] == [
        {
            "compression_time": 0.009,
            "original_size": 1000,
            "compression_ratio": 0.5,
            "operation_type": "qa",
            "timestamp": iso,
            "times_slower": pytest.approx(3.0),
        }
    ]
    assert m.get_recent_slow_operations(threshold_multiplier=3.0)["cache_operations"] == []


def _sample(entries, size, redis=None, max_bytes=1000, rss=2 * MIB, ts=T0):
    return MemoryRecord(ts, entries, size, 100, max_bytes, redis, rss)


def test_memory_statistics_every_field():
    samples = [_sample(1, 100), _sample(2, 100, redis=50), _sample(3, 300), _sample(4, 300, redis=1000)]
    stats = memory_usage_stats(samples, warning_bytes=1000)
    current = stats["current"]
    assert stats["total_samples"] == 4
    assert current["memory_entries"] == 4 and current["memory_bytes"] == 300
    assert current["memory_utilization_percent"] == 30.0
    assert current["memory_cache_entry_count"] == current["cache_entry_count"] == 4
    assert current["memory_cache_size_mb"] == 300 / MIB
    assert current["total_cache_size_mb"] == 1300 / MIB
    assert current["avg_entry_size_bytes"] == 75.0
    assert current["process_memory_mb"] == 2.0
    assert (stats["average_memory_bytes"], stats["peak_memory_bytes"], stats["min_memory_bytes"]) == (
        200,
        300,
        100,
    )
    assert stats["trend"] == "increasing"
    assert stats["thresholds"] == {
        "warning_threshold_mb": 1000 / MIB,
        "critical_threshold_mb": 2000 / MIB,  # twice the warning when not given
        "warning_threshold_reached": True,
        "critical_threshold_reached": False,
    }
    assert stats["trends"] == {
        "total_measurements": 4,
        "avg_total_cache_size_mb": (100 + 150 + 300 + 1300) / 4 / MIB,
        "max_total_cache_size_mb": 1300 / MIB,
        "avg_memory_cache_size_mb": 200 / MIB,
        "avg_entry_count": 2.5,
        "max_entry_count": 4,
    }


@pytest.mark.parametrize(
    ("sizes", "trend"),
    [
        ([100, 100, 111, 111], "increasing"),
        ([10, 10, 11, 11], "stable"),  # exactly +10 % (exact in binary floating point): not yet a trend
        ([100, 100, 90, 90], "stable"),  # exactly -10 %
        ([100, 100, 89, 89], "decreasing"),
        ([100, 300], "increasing"),
        ([500], "stable"),  # one sample: compared with itself
    ],
)
def test_memory_trend_compares_the_second_half_with_the_first(sizes, trend):
    assert memory_usage_stats([_sample(1, s) for s in sizes])["trend"] == trend


def test_memory_statistics_edges():
    assert memory_usage_stats([]) == {"total_samples": 0, "no_measurements": True}
    assert memory_usage_stats([], warning_bytes=MIB, critical_bytes=3 * MIB) == {
        "total_samples": 0,
        "no_measurements": True,
        "warning_threshold_mb": 1.0,
        "critical_threshold_mb": 3.0,
    }
    empty = memory_usage_stats([_sample(0, 0, max_bytes=0, rss=None)])
    assert empty["current"]["memory_utilization_percent"] == 0.0
    assert empty["current"]["avg_entry_size_bytes"] == 0.0
    assert empty["current"]["process_memory_mb"] == 0.0
    assert empty["thresholds"] == {"warning_threshold_reached": False, "critical_threshold_reached": False}
    at = memory_usage_stats([_sample(1, 2 * MIB)], warning_bytes=MIB, critical_bytes=2 * MIB)
    assert at["thresholds"]["warning_threshold_reached"] and at["thresholds"]["critical_threshold_reached"]
    exactly = memory_usage_stats([_sample(1, MIB)], warning_bytes=MIB)
    assert exactly["thresholds"]["warning_threshold_reached"]  # at the threshold counts
    below = memory_usage_stats([_sample(1, MIB - 1)], warning_bytes=MIB)
    assert not below["thresholds"]["warning_threshold_reached"]


def test_export_metrics_totals_and_shapes(clock):
    m = CachePerformanceMonitor()
    m.record_lookup("qa", "small", "memory", 0.001, 0.0001, 12)
    m.record_lookup("qa", "small", "", 0.002, 0.0001, 12)
    m.record_invalidation_event("qa", 3, 0.001, "operation", "ctx")
    m.record_compression_ratio(1000, 250, 0.001, "qa")
    m.record_memory_usage(2, 200, 100, 1000)
    out = m.export_metrics()
    assert (out["cache_hits"], out["cache_misses"], out["total_operations"]) == (1, 1, 2)
    assert (out["total_invalidations"], out["total_keys_invalidated"]) == (1, 3)
    assert out["totals"] == {
        "cache_hits": 1,
        "cache_misses": 1,
        "total_cache_operations": 2,
        "total_invalidations": 1,
        "total_keys_invalidated": 3,
        "counters": dict(m.counters),
    }
    assert out["export_timestamp"] == readings.iso(T0) and out["retention_hours"] == m.retention_hours
    assert [r["duration"] for r in out["key_generation_times"]] == [0.0001, 0.0001]
    assert [r["cache_hit"] for r in out["cache_operation_times"]] == [True, False]
    assert [r["compression_ratio"] for r in out["compression_ratios"]] == [0.25]
    assert out["invalidations"] == out["invalidation_events"] and len(out["invalidations"]) == 1
    assert out["memory_usage"] == out["memory_usage_measurements"] and len(out["memory_usage"]) == 1
    assert (
        len(out["key_generation"]) == 2 and len(out["cache_operations"]) == 2 and len(out["compression"]) == 1
    )


def test_the_monitors_critical_memory_threshold_is_used(clock):
    m = CachePerformanceMonitor(memory_warning_threshold_bytes=1000, memory_critical_threshold_bytes=1500)
    m.record_memory_usage(1, 1600, 100, 10_000)
    stats = m.get_memory_usage_stats()
    assert stats["thresholds"]["critical_threshold_mb"] == 1500 / MIB
    assert stats["thresholds"]["critical_threshold_reached"]
    (warning,) = m.get_memory_warnings()
    assert (warning["severity"], warning["type"], warning["value"]) == ("critical", "high_memory_bytes", 1600)


def test_invalidation_totals_count_beyond_the_kept_records(clock):
    m = CachePerformanceMonitor(max_measurements=2)
    for i in range(5):
        m.record_invalidation_event("qa", i + 1, 0.001, "operation")
    stats = m.get_invalidation_frequency_stats()
    assert len(m.invalidation_events) == 2
    assert (stats["total_invalidations"], stats["total_keys_invalidated"]) == (5, 15)


def test_the_originals_hit_rate_helper_is_in_percent(clock):
    m = CachePerformanceMonitor()
    for source in ("memory", "redis", "redis", ""):
        m.record_lookup("qa", "small", source, 0.001, None, 10)
    assert m._calculate_hit_rate() == 75.0
