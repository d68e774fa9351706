"""CachePerformanceMonitor's figures against hand-computed values."""

import logging
import time

import pytest

from aicache.monitoring.recorder import CachePerformanceMonitor
from tests.helpers import FakeClock, run_threads


@pytest.fixture
def monitor():
    return CachePerformanceMonitor(retention_hours=1, max_measurements=1000)


def test_hit_rate_counts_reads_only(monitor):
    for hit in (True, True, True, False):
        monitor.record_cache_operation_time("get", 0.001, hit)
    for _ in range(6):
        monitor.record_cache_operation_time("set", 0.002, True)  # writes never count
    stats = monitor.get_performance_stats()
    assert stats["cache_hits"] == 3 and stats["cache_misses"] == 1
    assert stats["cache_hit_rate"] == 75.0
    assert stats["total_cache_operations"] == 10


def test_empty_monitor_shape(monitor):
    stats = monitor.get_performance_stats()
    assert stats["cache_hit_rate"] == 0.0 and stats["total_cache_operations"] == 0
    assert {"key_generation", "cache_operations", "compression", "memory_usage", "invalidation"}.isdisjoint(
        stats
    )
    assert stats["retention_hours"] == 1 and abs(stats["timestamp"] - time.time()) < 5


def test_key_generation_figures(monitor):
    durations = [0.001, 0.002, 0.003, 0.004, 0.2]  # one over the 0.1 s threshold
    for d, n in zip(durations, [100, 200, 300, 400, 1000]):
        monitor.record_key_generation_time(d, n, "summarize")
    kg = monitor.get_performance_stats()["key_generation"]
    assert kg["total_operations"] == 5
    assert kg["avg_duration"] == pytest.approx(0.042)
    assert kg["median_duration"] == 0.003
    assert kg["min_duration"] == 0.001 and kg["max_duration"] == 0.2
    assert kg["p95_duration"] == 0.2  # nearest rank: ceil(0.95 * 5) = 5th
    assert kg["avg_text_length"] == 400 and kg["max_text_length"] == 1000
    assert kg["slow_operations"] == 1


def test_cache_operation_figures_by_type_and_tier(monitor):
    # 20 gets (1..20 ms) on small, 2 sets (30, 70 ms) on medium
    for i in range(1, 21):
        monitor.record_cache_operation_time("get", i / 1000, i % 2 == 0, operation_type="qa", tier="small")
    monitor.record_cache_operation_time("set", 0.03, True, operation_type="qa", tier="medium")
    monitor.record_cache_operation_time("set", 0.07, True, operation_type="qa", tier="medium")
    ops = monitor.get_performance_stats()["cache_operations"]
    assert ops["total_operations"] == 22
    assert ops["median_duration"] == pytest.approx(0.0115)
    assert ops["p95_duration"] == 0.03  # sorted 22 values, ceil(20.9) = 21st = 30 ms
    assert ops["slow_operations"] == 1  # only 70 ms is over 50 ms
    get = ops["by_operation_type"]["get"]
    assert get == {
        "count": 20,
        "avg_duration": pytest.approx(0.0105),
        "max_duration": 0.02,
        "p95_duration": 0.019,
    }
    assert ops["by_operation_type"]["set"]["count"] == 2
    assert ops["by_tier"]["medium"] == {
        "count": 2,
        "avg_duration": pytest.approx(0.05),
        "max_duration": 0.07,
        "p95_duration": 0.07,
    }


def test_compression_figures(monitor):
    monitor.record_compression_ratio(1000, 400, 0.001)
    monitor.record_compression_ratio(2000, 600, 0.003)
    monitor.record_compression_ratio(1000, 800, 0.002)
    c = monitor.get_performance_stats()["compression"]
    assert c["total_operations"] == 3
    assert c["avg_compression_ratio"] == pytest.approx((0.4 + 0.3 + 0.8) / 3)
    assert c["median_compression_ratio"] == 0.4
    assert c["best_compression_ratio"] == 0.3 and c["worst_compression_ratio"] == 0.8
    assert c["avg_compression_time"] == pytest.approx(0.002) and c["max_compression_time"] == 0.003
    assert c["total_bytes_processed"] == 4000 and c["total_bytes_saved"] == 2200
    assert c["overall_savings_percent"] == pytest.approx(55.0)


def test_recent_slow_operations(monitor):
    for d in (0.001, 0.001, 0.001, 0.001, 0.016):  # avg 0.004: 0.016 is 4x
        monitor.record_cache_operation_time("get", d, True)
    slow = monitor.get_recent_slow_operations(threshold_multiplier=2.0)
    assert [round(s["times_slower"], 3) for s in slow["cache_operations"]] == [4.0]
    assert slow["key_generation"] == [] and slow["compression"] == []
    assert monitor.get_recent_slow_operations(threshold_multiplier=5.0)["cache_operations"] == []


def test_memory_usage_and_warnings(monitor):
    assert monitor.get_memory_usage_stats() == {
        "total_samples": 0,
        "no_measurements": True,  # the original's empty shape
        "warning_threshold_mb": monitor.memory_warning_threshold_bytes / 1024 / 1024,
        "critical_threshold_mb": monitor.memory_critical_threshold_bytes / 1024 / 1024,
    }
    assert monitor.get_memory_warnings() == []
    monitor.record_memory_usage(10, 1000, 100, 10_000)
    monitor.record_memory_usage(20, 3000, 100, 10_000, redis_used_bytes=10, process_rss_bytes=5)
    mem = monitor.get_memory_usage_stats()
    assert mem["total_samples"] == 2 and mem["peak_memory_bytes"] == 3000 and mem["min_memory_bytes"] == 1000
    assert mem["average_memory_bytes"] == 2000 and mem["trend"] == "increasing"
    assert mem["current"]["memory_entries"] == 20 and mem["current"]["memory_utilization_percent"] == 30.0
    assert monitor.get_memory_warnings() == []
    small = CachePerformanceMonitor(memory_warning_threshold_bytes=2000)
    small.record_memory_usage(99, 2500, 100, 10_000, redis_used_bytes=5000)
    warnings = {w["type"]: w["severity"] for w in small.get_memory_warnings()}
    assert warnings == {
        "high_memory_bytes": "warning",
        "high_redis_used_bytes": "critical",
        "memory_tier_full": "info",
    }


def test_invalidation_frequency(monitor):
    monitor.record_invalidation_event("summarize", 10, 0.002, "operation", "deploy")
    monitor.record_invalidation_event("summarize", 30, 0.004, "operation")
    monitor.record_invalidation_event("qa:", 2, 0.003, "pattern")
    freq = monitor.get_invalidation_frequency_stats()
    assert freq["total_invalidations"] == 3 and freq["total_keys_invalidated"] == 42
    assert freq["rates"] == {"last_hour": 3, "last_24_hours": 3, "average_per_hour": 3.0}
    assert freq["thresholds"] == {
        "warning_per_hour": 50,
        "critical_per_hour": 100,
        "current_alert_level": "normal",
    }
    assert freq["patterns"]["most_common_patterns"] == {"summarize": 2, "qa:": 1}
    assert freq["patterns"]["invalidation_types"] == {"operation": 2, "pattern": 1}
    assert freq["efficiency"]["avg_keys_per_invalidation"] == 14.0
    assert (
        freq["efficiency"]["avg_duration"] == pytest.approx(0.003)
        and freq["efficiency"]["max_duration"] == 0.004
    )
    assert monitor.get_performance_stats()["invalidation"]["total_invalidations"] == 3


def _issues(monitor):
    return {r["id"]: r["severity"] for r in monitor.get_invalidation_recommendations()}


def test_recommendation_high_frequency():
    m = CachePerformanceMonitor(invalidation_rate_warning_per_hour=3, invalidation_rate_critical_per_hour=5)
    for i in range(2):
        m.record_invalidation_event(f"p{i}", 5, 0.001)
    assert "high_invalidation_frequency" not in _issues(m)
    m.record_invalidation_event("p9", 5, 0.001)
    assert _issues(m)["high_invalidation_frequency"] == "warning"
    for i in range(2):
        m.record_invalidation_event(f"q{i}", 5, 0.001)
    assert _issues(m)["high_invalidation_frequency"] == "critical"


def test_recommendation_dominant_pattern(monitor):
    for pattern in ("summarize", "summarize", "summarize", "qa"):
        monitor.record_invalidation_event(pattern, 5, 0.001)
    assert "dominant_invalidation_pattern" in _issues(monitor)  # 3 of 4: more than half (original)
    for pattern in ("qa", "sentiment"):
        monitor.record_invalidation_event(pattern, 5, 0.001)
    assert "dominant_invalidation_pattern" not in _issues(monitor)  # 3 of 6 is not more than half
    monitor.record_invalidation_event("summarize", 5, 0.001)  # 4 of 7
    rec = [
        r for r in monitor.get_invalidation_recommendations() if r["id"] == "dominant_invalidation_pattern"
    ]
    assert rec and "summarize" in rec[0]["message"] and rec[0]["suggestions"]


def test_recommendation_low_efficiency_and_high_impact(monitor):
    monitor.record_invalidation_event("a", 0, 0.001)
    monitor.record_invalidation_event("b", 1, 0.001)
    assert _issues(monitor) == {"low_invalidation_efficiency": "info"}
    monitor.record_invalidation_event("c", 2, 0.001)
    assert _issues(monitor) == {}
    big = CachePerformanceMonitor()
    big.record_invalidation_event("p1", 101, 0.01, "all")
    big.record_invalidation_event("p2", 101, 0.01, "all")  # two patterns: neither dominates
    assert _issues(big) == {"high_invalidation_impact": "warning"}
    big.record_invalidation_event("p3", 98, 0.01, "all")  # 100 keys on average: not above 100
    assert _issues(big) == {}


def test_max_measurements_bounds_each_kind():
    m = CachePerformanceMonitor(max_measurements=5)
    for i in range(12):
        m.record_cache_operation_time("get", i / 1000, True)
        m.record_key_generation_time(i / 1000, 10)
    stats = m.get_performance_stats()
    assert stats["cache_operations"]["total_operations"] == 5
    assert stats["cache_operations"]["min_duration"] == 0.007  # the 5 most recent
    assert stats["key_generation"]["total_operations"] == 5
    assert stats["cache_hits"] == 12  # totals are counters, not windowed


def test_retention_drops_old_measurements(monkeypatch):
    m = CachePerformanceMonitor(retention_hours=1)
    real = time.time
    monkeypatch.setattr(time, "time", lambda: real() - 2 * 3600)
    m.record_cache_operation_time("get", 0.5, True)
    m.record_invalidation_event("old", 1, 0.1)
    monkeypatch.setattr(time, "time", real)
    m.record_cache_operation_time("get", 0.001, True)
    stats = m.get_performance_stats()
    assert (
        stats["cache_operations"]["total_operations"] == 1
        and stats["cache_operations"]["max_duration"] == 0.001
    )
    assert "invalidation" not in stats
    assert stats["cache_hits"] == 2


def test_reset_stats_zeroes_totals(monitor):
    monitor.record_cache_operation_time("get", 0.001, True)
    monitor.record_invalidation_event("x", 3, 0.001)
    monitor.count("single_flight_coalesced", 4)
    monitor.reset_stats()
    stats = monitor.get_performance_stats()
    assert (stats["cache_hits"], stats["cache_misses"], stats["total_cache_operations"]) == (0, 0, 0)
    assert monitor.get_invalidation_frequency_stats()["total_invalidations"] == 0
    assert monitor.export_metrics()["totals"]["counters"] == {}
    assert monitor.drain().counters == {"single_flight_coalesced": 4}  # still exported once


def test_export_metrics_plain_dicts(monitor):
    monitor.record_key_generation_time(0.001, 50, "qa")
    monitor.record_cache_operation_time("get", 0.002, False, 50, {"k": 1}, operation_type="qa", tier="small")
    monitor.record_compression_ratio(100, 50, 0.0001)
    monitor.record_invalidation_event("qa", 1, 0.001, "operation", "ctx")
    out = monitor.export_metrics()
    assert out["totals"]["cache_misses"] == 1 and out["totals"]["total_invalidations"] == 1
    assert out["cache_operations"][0]["additional_data"] == {"k": 1}
    assert out["key_generation"][0]["operation_type"] == "qa"
    assert out["invalidations"][0]["operation_context"] == "ctx"
    assert out["compression"][0]["compressed_size"] == 50
    assert isinstance(out["export_timestamp"], str)


def test_threads_recording_keep_totals_exact(monitor):
    def work():
        for i in range(2000):
            monitor.record_lookup("qa", "small", "memory" if i % 2 else "", 1e-6, 1e-7, 100)
            monitor.count("single_flight_waits")

    run_threads(lambda i: work(), 8)
    stats = monitor.get_performance_stats()
    assert stats["cache_hits"] == 8000 and stats["cache_misses"] == 8000
    assert monitor.export_metrics()["totals"]["counters"]["single_flight_waits"] == 16000
    drained = monitor.drain()
    assert sum(r.count for k, r in drained.rollups.items() if k[1] == "get") == 16000


def test_slow_warning_once_per_crossing(monitor, caplog):
    """Logged when recorded, in the original's words, once per crossing into slowness."""
    with caplog.at_level(logging.WARNING, logger="aicache.monitoring"):
        for d in (0.2, 0.3, 0.4, 0.001, 0.2, 0.3):
            monitor.record_cache_operation_time("get", d, True)
        monitor.get_performance_stats()
    slow = [r.message for r in caplog.records if "Slow cache get" in r.message]
    assert slow == ["Slow cache get: 0.200s (hit: True, text_length: 0)"] * 2  # the original's text


@pytest.mark.parametrize(
    "kwargs", [{"retention_hours": 0}, {"max_measurements": -1}, {"cache_operation_threshold": "x"}]
)
def test_bad_constructor_arguments(kwargs):
    with pytest.raises(ValueError):
        CachePerformanceMonitor(**kwargs)


def test_defaults_come_from_settings(settings):
    settings.AICACHE = {"MONITOR_RETENTION_HOURS": 6, "CACHE_OPERATION_THRESHOLD": 0.2}
    m = CachePerformanceMonitor()
    assert m.retention_hours == 6 and m.cache_operation_threshold == 0.2
    assert CachePerformanceMonitor(retention_hours=2).retention_hours == 2


def test_a_wrongly_typed_record_is_dropped_not_poisoning_the_drain(caplog):
    """Review finding: record_compression_ratio(1000, 300, "oops") made drain() raise and lose
    every other record of that drain."""
    from aicache.monitoring import CachePerformanceMonitor

    monitor = CachePerformanceMonitor()
    monitor.record_cache_operation_time("get", 0.001, True, 10)
    monitor.record_compression_ratio(1000, 300, "oops")
    monitor.record_key_generation_time("slow", 10)
    monitor.record_cache_operation_time("get", 0.002, False, 10)
    drained = monitor.drain()
    assert sum(r.count for key, r in drained.rollups.items() if key[1] == "get") == 2
    assert monitor.cache_hits == 1 and monitor.cache_misses == 1


def test_invalidation_rate_alerts_in_the_original_words(monitor, caplog):
    monitor.invalidation_rate_warning_per_hour, monitor.invalidation_rate_critical_per_hour = 2, 4
    with caplog.at_level(logging.WARNING, logger="aicache.monitoring"):
        for i in range(6):
            monitor.record_invalidation_event(f"p{i}", 1, 0.01)
    messages = [(r.levelname, r.message) for r in caplog.records if "invalidation rate" in r.message]
    assert messages == [
        ("WARNING", "High invalidation rate: 2 invalidations in last hour (>2 threshold)"),
        ("ERROR", "Critical invalidation rate: 4 invalidations in last hour (>4 threshold)"),
    ]


def test_approximate_size_is_the_originals_recursive_getsizeof():
    import sys

    from aicache.monitoring.recorder import approximate_size

    inner = {"b": "x"}
    listed = [1, inner]
    outer = {"a": listed, "c": 2.5}
    expected = (
        sys.getsizeof(outer)
        + sys.getsizeof("a")
        + (
            sys.getsizeof(listed)
            + sys.getsizeof(1)
            + sys.getsizeof(inner)
            + sys.getsizeof("b")
            + sys.getsizeof("x")
        )
        + sys.getsizeof("c")
        + sys.getsizeof(2.5)
    )
    assert approximate_size(outer) == expected
    assert approximate_size("plain") == sys.getsizeof("plain")
    m = CachePerformanceMonitor()
    record = m.record_memory_usage(outer)  # the original's form: a memory cache dict
    assert (record.memory_entries, record.memory_bytes) == (2, expected)


def test_memory_and_invalidation_history_is_bounded_by_max_measurements():
    m = CachePerformanceMonitor(retention_hours=1, max_measurements=5)
    for i in range(12):
        m.record_memory_usage(i, i * 100, 100, 10_000)
        m.record_invalidation_event(f"op{i}", i, 0.001, "operation")
    assert len(m.export_metrics()["invalidations"]) == 5
    assert [r["pattern"] for r in m.export_metrics()["invalidations"]] == [f"op{i}" for i in range(7, 12)]
    assert m.get_memory_usage_stats()["current"]["memory_entries"] == 11
    assert m.get_memory_usage_stats()["total_samples"] == 5


def test_an_invalidation_exactly_one_hour_old_no_longer_counts_towards_the_rate(monkeypatch, caplog):
    from aicache.monitoring import recorder

    clock = FakeClock(1_795_000_000.0)
    monkeypatch.setattr(recorder, "time", clock)
    m = CachePerformanceMonitor(invalidation_rate_warning_per_hour=2, invalidation_rate_critical_per_hour=50)
    with caplog.at_level(logging.WARNING, logger="aicache.monitoring"):
        m.record_invalidation_event("a", 1, 0.001, "operation")
        clock.now += 3600  # the first is now exactly an hour old: out of the window
        m.record_invalidation_event("b", 1, 0.001, "operation")
        assert not [r for r in caplog.records if "invalidation rate" in r.message.lower()]
        clock.now += 1  # two within the hour: the warning, once
        m.record_invalidation_event("c", 1, 0.001, "operation")
    assert len([r for r in caplog.records if "invalidation rate" in r.message.lower()]) == 1


RECORD_CALLS = {
    "record_lookup": ("qa", "small", "memory", 1e-6, None, 10),
    "record_key_generation_time": (0.0001, 10),
    "record_cache_operation_time": ("get", 0.001, True),
    "record_compression_ratio": (1000, 400, 0.001),
    "record_memory_usage": (1, 100, 10, 1000),
    "record_invalidation_event": ("qa", 3, 0.001, "operation"),
    "record_saving": ("qa", "gpt-4o", 1.5, 100, 20, 0.001),
    "count": ("single_flight_waits",),
}


def test_the_record_calls_cover_every_record_method():
    public = {name for name in dir(CachePerformanceMonitor) if name.startswith("record_")} | {"count"}
    assert set(RECORD_CALLS) == public


def _enqueue_raises(m, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("recorder bug")

    monkeypatch.setattr(m, "_enqueue", broken)


def _lock_missing(m, monkeypatch):
    monkeypatch.setattr(m, "_lock", None)  # every step that takes it fails


@pytest.mark.parametrize("breakage", [_enqueue_raises, _lock_missing], ids=["enqueue_raises", "lock_missing"])
@pytest.mark.parametrize("name", sorted(RECORD_CALLS))
def test_a_broken_recorder_logs_once_counts_and_never_raises(name, breakage, caplog, monkeypatch):
    """README: a broken recorder logs once and never raises into the cache path, whichever record
    method the cache called; each failure is counted in ``failures``."""
    m = CachePerformanceMonitor()
    breakage(m, monkeypatch)
    with caplog.at_level(logging.ERROR, logger="aicache.monitoring"):
        results = [getattr(m, name)(*RECORD_CALLS[name]) for _ in range(3)]
    assert results == [None, None, None]
    assert m.failures == 3
    logged = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert logged == ["aicache monitoring failed to record; the cache keeps working"]


def test_the_cache_keeps_answering_with_a_broken_recorder(ai_cache, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("recorder bug")

    monkeypatch.setattr(ai_cache.monitor, "_enqueue", broken)
    text = "A broken recorder never breaks the caller's request. " * 3
    ai_cache.cache_response(text, "qa", None, {"a": 1})
    assert ai_cache.get_cached_response(text, "qa")["a"] == 1
    assert ai_cache.get_or_compute(text + "?", "qa", lambda: {"b": 2})["b"] == 2
    assert ai_cache.invalidate_by_operation("qa") == 2
    assert ai_cache.monitor.failures >= 4
