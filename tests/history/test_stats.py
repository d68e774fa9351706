"""Stats from the database equal the in-process figures for the same records (percentiles within
the sketch's 1 %), in the recorder's result shapes."""

import datetime as dt
import itertools
import random

import pytest
from django.utils import timezone

from aicache.monitoring import stats
from aicache.monitoring.summaries import percentile
from tests.factories import (
    IngestionBatchFactory,
    InvalidationEventFactory,
    MemorySnapshotFactory,
    SlowOperationFactory,
    rollup_everywhere,
)

pytestmark = pytest.mark.django_db


def scripted(monitor, seed=7, n=3000):
    """A known sequence of reads, writes, compressions and invalidations; returns raw durations."""
    rng = random.Random(seed)
    gets = {"small": [], "medium": []}
    for i in range(n):
        tier = "small" if i % 3 else "medium"
        source = rng.choice(["memory", "redis", ""]) if tier == "small" else rng.choice(["redis", ""])
        duration = rng.lognormvariate(-9 if source == "memory" else -7, 0.6)
        gets[tier].append(duration)
        monitor.record_lookup(
            "summarize" if i % 2 else "qa", tier, source, duration, duration / 3, 100 + i % 900
        )
        if i % 10 == 0:
            monitor.record_cache_operation_time(
                "set", duration * 4, True, 400, operation_type="qa", tier=tier
            )
            monitor.record_compression_ratio(5000, 1500 + i % 700, 0.0001 + i * 1e-8, "qa")
    for i in range(12):
        monitor.record_invalidation_event(
            "summarize" if i < 8 else "qa:", 3 + i, 0.001 * (i + 1), "operation"
        )
    return gets


def test_db_stats_equal_in_process_stats(pipeline):
    scripted(pipeline.monitor)
    local = pipeline.monitor.get_performance_stats()
    pipeline.flush()
    db = stats.performance_stats(stats.window(last="1h"))
    for key in ("cache_hits", "cache_misses", "total_cache_operations"):
        assert db[key] == local[key], key
    assert db["cache_hit_rate"] == pytest.approx(local["cache_hit_rate"])
    for section, keys in {
        "key_generation": (
            "total_operations",
            "avg_duration",
            "min_duration",
            "max_duration",
            "avg_text_length",
            "max_text_length",
        ),
        "cache_operations": ("total_operations", "avg_duration", "min_duration", "max_duration"),
        "compression": (
            "total_operations",
            "total_bytes_processed",
            "total_bytes_saved",
            "overall_savings_percent",
            "avg_compression_time",
            "max_compression_time",
        ),
    }.items():
        for key in keys:
            assert db[section][key] == pytest.approx(local[section][key]), (section, key)
    for section in ("key_generation", "cache_operations"):
        for key in ("median_duration", "p95_duration"):
            assert db[section][key] == pytest.approx(local[section][key], rel=0.011), (section, key)
    for group in ("get", "set"):
        assert (
            db["cache_operations"]["by_operation_type"][group]["count"]
            == (local["cache_operations"]["by_operation_type"][group]["count"])
        )
    for tier, got in db["cache_operations"]["by_tier"].items():
        want = local["cache_operations"]["by_tier"][tier]
        assert got["count"] == want["count"]
        assert got["p95_duration"] == pytest.approx(want["p95_duration"], rel=0.011)
    comp_db, comp_local = db["compression"], local["compression"]
    assert comp_db["median_compression_ratio"] == pytest.approx(
        comp_local["median_compression_ratio"], rel=0.011
    )
    assert comp_db["best_compression_ratio"] == pytest.approx(comp_local["best_compression_ratio"], rel=0.011)
    assert comp_db["worst_compression_ratio"] == pytest.approx(
        comp_local["worst_compression_ratio"], rel=0.011
    )
    inval_db, inval_local = db["invalidation"], local["invalidation"]
    assert inval_db["total_invalidations"] == inval_local["total_invalidations"] == 12
    assert inval_db["total_keys_invalidated"] == inval_local["total_keys_invalidated"]
    assert inval_db["patterns"] == inval_local["patterns"]
    assert db["ingestion"] == {"batches": 1, "dropped_batches": 0, "dropped_records": 0}


def test_time_series_latency_percentiles_within_sketch_error(pipeline, monkeypatch):
    import time

    # All records in one minute (30 s past a minute, 3 minutes ago), so each interval has one point.
    at = (int(time.time()) // 60 - 3) * 60 + 30
    monkeypatch.setattr("aicache.monitoring.recorder.time.time", lambda: at)
    gets = scripted(pipeline.monitor, seed=11)
    pipeline.flush()
    for interval in ("minute", "hour", "day"):
        (point,) = stats.time_series(stats.window(last="24h"), interval)
        for tier, values in gets.items():
            values.sort()
            lat = point["latency_by_tier"][tier]
            for name, q in (("p50", 50), ("p95", 95), ("p99", 99)):
                assert lat[name] == pytest.approx(percentile(values, q), rel=0.0101), (interval, tier, name)


def test_filters_by_operation_and_tier(pipeline):
    scripted(pipeline.monitor, n=600)
    pipeline.flush()
    everything = stats.performance_stats(stats.window(last="24h"))
    qa = stats.performance_stats(stats.window(last="24h", operation="qa"))
    summarize = stats.performance_stats(stats.window(last="24h", operation="summarize"))
    assert qa["cache_hits"] + summarize["cache_hits"] == everything["cache_hits"]
    small = stats.performance_stats(stats.window(last="24h", tier="small"))
    assert set(small["cache_operations"]["by_tier"]) == {"small"}


def test_time_series_sums_to_the_window(pipeline):
    scripted(pipeline.monitor, n=900)
    pipeline.flush()
    w = stats.window(last="24h")
    total = stats.performance_stats(w)
    for interval in ("minute", "hour", "day"):
        points = stats.time_series(w, interval)
        assert sum(p["hits"] for p in points) == total["cache_hits"], interval
        assert sum(p["misses"] for p in points) == total["cache_misses"], interval
        assert sum(p["invalidations"] for p in points) == 12
        assert all({"p50", "p95", "p99"} <= set(lat) for p in points for lat in p["latency_by_tier"].values())
    with pytest.raises(ValueError, match="interval"):
        stats.time_series(w, "week")


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({}, "give last"),
        ({"last": "2h"}, "last must be one of"),
        ({"last": "1h", "since": timezone.now()}, "either last or since"),
        ({"since": timezone.now(), "until": timezone.now() - dt.timedelta(hours=1)}, "before"),
        ({"since": dt.datetime(2026, 1, 1)}, "timezone-aware"),
        ({"last": "1h", "operation": 5}, "operation"),
    ],
)
def test_bad_windows(kwargs, match):
    with pytest.raises(ValueError, match=match):
        stats.window(**kwargs)


@pytest.mark.parametrize("hours_ago,length_h", [(0.5, 0.2), (3.3, 2.9), (30, 26.5), (24 * 29.5, 24 * 29.2)])
def test_segments_cover_the_window_without_overlap(hours_ago, length_h):
    now = timezone.now()
    w = stats.window(
        since=now - dt.timedelta(hours=hours_ago), until=now - dt.timedelta(hours=hours_ago - length_h)
    )
    pieces = sorted((a, b) for _, a, b in stats.segments(w, now))
    for (_, b1), (a2, _) in itertools.pairwise(pieces):
        assert b1 <= a2, "overlap"
    assert pieces[0][0] <= w.since and pieces[-1][1] >= w.until - dt.timedelta(minutes=1)
    assert len(pieces) <= 8


def test_memory_invalidation_slow_and_ingestion_from_rows():
    now = timezone.now()
    MemorySnapshotFactory(timestamp=now - dt.timedelta(minutes=5), memory_bytes=10_000)
    MemorySnapshotFactory(timestamp=now - dt.timedelta(minutes=1), memory_bytes=60 * 1024 * 1024)
    MemorySnapshotFactory(
        source="redis",
        process="ai",
        memory_entries=None,
        memory_bytes=None,
        redis_used_bytes=2_000_000,
        redis_key_count=321,
    )
    for i in range(6):
        InvalidationEventFactory(pattern="summarize", keys_invalidated=0)
    rollup_everywhere(kind="get", outcome="hit_redis", count=100, total_duration=0.1, max_duration=0.09)
    SlowOperationFactory(duration=0.09)
    SlowOperationFactory(duration=0.0015)
    IngestionBatchFactory(dropped_batches=2, dropped_records=50)
    rollup_everywhere(kind="counter", operation="dropped_pending", tier="", outcome="", count=7)
    w = stats.window(last="1h")
    memory = stats.memory_usage(w)
    assert memory["total_samples"] == 2 and memory["peak_memory_bytes"] == 60 * 1024 * 1024
    assert memory["redis"]["live_entries"] == 321
    assert {x["type"] for x in stats.memory_warnings(w)} == {"high_memory_bytes"}
    issues = {r["id"] for r in stats.invalidation_recommendations(w)}
    assert issues == {"dominant_invalidation_pattern", "low_invalidation_efficiency"}
    slow = stats.slow_operations(w, threshold_multiplier=2.0)["cache_operations"]
    assert [round(s["times_slower"]) for s in slow] == [90]  # avg 1 ms; 1.5 ms is not 2x
    assert stats.ingestion(w) == {"batches": 1, "dropped_batches": 2, "dropped_records": 57}
    assert stats.performance_stats(w)["ingestion"]["dropped_records"] == 57


def test_rows_outside_the_window_are_ignored():
    from aicache.monitoring.ingest import ingest

    old = (timezone.now() - dt.timedelta(days=3)).timestamp()
    ingest(
        {
            "batch_id": "old",
            "rollups": [
                [old, "get", "qa", "small", "hit_redis", 5, 0.01, 0.001, 0.003, {"-600": 5}, 0, 0, 0, 0, {}]
            ],
        }
    )
    assert stats.performance_stats(stats.window(last="24h"))["cache_hits"] == 0
    assert stats.performance_stats(stats.window(last="7d"))["cache_hits"] == 5
    assert stats.performance_stats(stats.window(last="30d"))["cache_hits"] == 5
