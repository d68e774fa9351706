"""The read endpoints over factory-made history: the figures the API returns are the real stats."""

import datetime as dt

import pytest
from django.utils import timezone

from aicache.monitoring import sketch
from aicache.monitoring.models import MemorySnapshot
from tests.factories import (
    IngestionBatchFactory,
    InvalidationEventFactory,
    MemorySnapshotFactory,
    SlowOperationFactory,
    rollup_everywhere,
)

pytestmark = [pytest.mark.django_db, pytest.mark.history]  # rerun on PostgreSQL by make test


def _get_rollup(tier, outcome, count, seconds, minutes_ago=10, operation="summarize"):
    at = timezone.now() - dt.timedelta(minutes=minutes_ago)
    rollup_everywhere(
        period_start=at,
        kind="get",
        operation=operation,
        tier=tier,
        outcome=outcome,
        count=count,
        total_duration=count * seconds,
        min_duration=seconds,
        max_duration=seconds,
        sketch={str(sketch.bucket_of(seconds)): count},
    )


@pytest.fixture
def history():
    _get_rollup("small", "hit_memory", 90, 0.00001)
    _get_rollup("small", "miss", 10, 0.002)
    _get_rollup("medium", "hit_redis", 50, 0.0005, operation="qa")
    IngestionBatchFactory()


def test_stats_figures_and_percentiles_by_tier(staff, history):
    data = staff.get("/api/aicache/stats/", {"last": "1h"}).json()
    assert data["source"] == "database"
    assert (data["cache_hits"], data["cache_misses"]) == (140, 10)
    assert data["cache_hit_rate"] == pytest.approx(140 / 150 * 100)
    small, medium = data["latency_by_tier"]["small"], data["latency_by_tier"]["medium"]
    assert small["count"] == 100 and medium["count"] == 50
    assert small["p50"] == pytest.approx(0.00001, rel=0.01)
    assert small["p95"] == pytest.approx(0.002, rel=0.01)  # rank 95 of 100 lies in the misses
    assert small["p99"] == pytest.approx(0.002, rel=0.01)
    assert medium["p50"] == pytest.approx(0.0005, rel=0.01)
    assert data["cache_operations"]["by_tier"]["small"]["count"] == 100
    assert data["ingestion"]["batches"] == 1
    assert data["saved"]["hits"] == 0 and data["saved"]["pricing_coverage_ratio"] is None


def test_stats_saved_block(staff, history, settings):
    """Savings rows (kind saved / hit_cost, the model in the tier column) become the saved block;
    a model without a price shows tokens and no money."""
    settings.AICACHE = {
        **settings.AICACHE,
        "MODEL_PRICES": {"gpt-4o": {"prompt_per_1k": 2.5, "completion_per_1k": 10.0, "currency": "USD"}},
    }
    at = timezone.now() - dt.timedelta(minutes=10)
    for model, hits, prompt, completion in (("gpt-4o", 4, 400, 100), ("local", 2, 60, 40)):
        rollup_everywhere(
            period_start=at,
            kind="saved",
            operation="qa",
            tier=model,
            outcome="ok",
            count=hits,
            total_duration=hits * 0.8,
            bytes_in=prompt,
            bytes_out=completion,
        )
        rollup_everywhere(
            period_start=at,
            kind="hit_cost",
            operation="qa",
            tier=model,
            outcome="ok",
            count=hits,
            total_duration=hits * 0.001,
        )
    saved = staff.get("/api/aicache/stats/", {"last": "1h"}).json()["saved"]
    assert saved["hits"] == 6
    assert saved["compute_seconds"] == pytest.approx(4.8)
    assert saved["net_seconds"] == pytest.approx(4.8 - 0.006)
    assert saved["tokens"] == {"prompt": 460, "completion": 140, "total": 600}
    assert saved["cost"] == {"USD": pytest.approx(400 * 2.5 / 1000 + 100 * 10 / 1000)}
    assert saved["pricing_coverage_ratio"] == pytest.approx(500 / 600)
    assert saved["by_model"]["local"]["cost"] == {}  # tokens, but no money: never a made-up zero
    assert saved["by_model"]["local"]["tokens"]["total"] == 100
    assert data_has_no_saved_rows_in_cache_figures(staff)


def data_has_no_saved_rows_in_cache_figures(staff):
    data = staff.get("/api/aicache/stats/", {"last": "1h"}).json()
    return data["total_cache_operations"] == 150 and data["cache_hits"] == 140


def test_stats_filters_by_operation_and_tier(staff, history):
    qa = staff.get("/api/aicache/stats/", {"last": "1h", "operation": "qa"}).json()
    assert (qa["cache_hits"], qa["cache_misses"]) == (50, 0) and list(qa["latency_by_tier"]) == ["medium"]
    small = staff.get("/api/aicache/stats/", {"last": "1h", "tier": "small"}).json()
    assert (small["cache_hits"], small["cache_misses"]) == (90, 10)


def test_stats_since_until_window(staff, history):
    now = timezone.now()
    early = staff.get(
        "/api/aicache/stats/",
        {
            "since": (now - dt.timedelta(hours=3)).isoformat(),
            "until": (now - dt.timedelta(hours=2)).isoformat(),
        },
    ).json()
    assert early["cache_hits"] == 0 and early["latency_by_tier"] == {}


def test_stats_defaults_to_the_last_day(staff, history):
    data = staff.get("/api/aicache/stats/").json()
    since = dt.datetime.fromisoformat(data["window"]["since"])
    until = dt.datetime.fromisoformat(data["window"]["until"])
    assert until - since == dt.timedelta(days=1) and data["cache_hits"] == 140


def test_time_series_by_minute(staff, history):
    data = staff.get("/api/aicache/stats/timeseries/", {"last": "1h", "interval": "minute"}).json()
    assert data["interval"] == "minute"
    (point,) = data["points"]
    assert (point["operations"], point["hits"], point["misses"]) == (150, 140, 10)
    assert point["latency_by_tier"]["medium"]["p50"] == pytest.approx(0.0005, rel=0.01)


def test_slow_operations(staff, history):
    SlowOperationFactory(duration=0.5, operation="qa", tier="medium")
    SlowOperationFactory(duration=0.0005)  # under 2x the window's average: not listed
    data = staff.get("/api/aicache/slow-operations/", {"last": "1h", "threshold_multiplier": 2}).json()
    (slow,) = data["cache_operations"]
    avg = (90 * 0.00001 + 10 * 0.002 + 50 * 0.0005) / 150
    assert slow["duration"] == 0.5 and slow["operation_type"] == "qa"
    assert slow["times_slower"] == pytest.approx(0.5 / avg)


@pytest.fixture
def events():
    now = timezone.now()
    made = []
    for i in range(7):
        made.append(
            InvalidationEventFactory(
                timestamp=now - dt.timedelta(minutes=i + 1),
                pattern="summarize" if i % 2 == 0 else "qa*",
                invalidation_type="operation" if i % 2 == 0 else "pattern",
                status="failed" if i == 3 else "success",
                operation_context=f"via=api user=Alice{i} reason=r",
                keys_invalidated=i,
            )
        )
    InvalidationEventFactory(timestamp=now - dt.timedelta(days=3))  # outside the last day
    return made


def test_invalidations_are_paginated_newest_first(staff, events):
    first = staff.get("/api/aicache/invalidations/", {"page_size": 3}).json()
    assert first["count"] == 7 and first["previous"] is None
    assert [r["keys_invalidated"] for r in first["results"]] == [0, 1, 2]
    assert "page=2" in first["next"] and "page_size=3" in first["next"]
    last = staff.get("/api/aicache/invalidations/", {"page_size": 3, "page": 3}).json()
    assert [r["keys_invalidated"] for r in last["results"]] == [6] and last["next"] is None
    assert "page=2" in last["previous"]
    beyond = staff.get("/api/aicache/invalidations/", {"page_size": 3, "page": 9}).json()
    assert beyond["results"] == [] and beyond["count"] == 7
    assert set(first["results"][0]) == {
        "id",
        "timestamp",
        "pattern",
        "keys_invalidated",
        "duration",
        "invalidation_type",
        "operation_context",
        "status",
        "reason",
        "process",
    }


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"type": "pattern"}, [1, 3, 5]),
        ({"status": "failed"}, [3]),
        ({"operation": "summarize"}, [0, 2, 4, 6]),
        ({"context": "alice2"}, [2]),
        ({"last": "7d", "type": "operation", "status": "success"}, [0, 2, 4, 6, 12]),
    ],
)
def test_invalidations_filters(staff, events, params, expected):
    rows = staff.get("/api/aicache/invalidations/", params).json()["results"]
    assert [r["keys_invalidated"] for r in rows] == expected


def test_invalidation_stats_and_recommendations(staff, events):
    data = staff.get("/api/aicache/invalidations/stats/").json()
    assert data["total_invalidations"] == 7 and data["total_keys_invalidated"] == 21
    assert data["rates"]["last_hour"] == 7
    assert data["patterns"]["invalidation_types"] == {"operation": 4, "pattern": 3}
    assert list(data["patterns"]["most_common_patterns"].items()) == [("summarize", 4), ("qa*", 3)]
    recs = staff.get("/api/aicache/invalidations/recommendations/").json()["recommendations"]
    assert [(r["id"], r["issue"]) for r in recs] == [
        ("dominant_invalidation_pattern", "Dominant invalidation pattern")
    ]


def test_memory_latest_per_process_and_redis_with_warnings(staff, settings):
    settings.AICACHE = {**settings.AICACHE, "MEMORY_WARNING_THRESHOLD_BYTES": 100_000}
    now = timezone.now()
    MemorySnapshotFactory(process="a:1", timestamp=now - dt.timedelta(minutes=5), memory_bytes=1)
    MemorySnapshotFactory(process="a:1", timestamp=now - dt.timedelta(minutes=1), memory_bytes=150_000)
    MemorySnapshotFactory(process="b:2", timestamp=now - dt.timedelta(minutes=2), memory_bytes=2_000)
    MemorySnapshotFactory(
        source=MemorySnapshot.Source.REDIS,
        process="ai",
        timestamp=now - dt.timedelta(minutes=1),
        redis_used_bytes=5_000,
        redis_key_count=42,
        memory_entries=None,
        memory_bytes=None,
        memory_max_entries=None,
        memory_max_bytes=None,
        process_rss_bytes=None,
    )
    data = staff.get("/api/aicache/memory/").json()
    assert {(p["process"], p["memory_bytes"]) for p in data["processes"]} == {
        ("a:1", 150_000),
        ("b:2", 2_000),
    }
    (redis,) = data["redis"]
    assert (redis["cache"], redis["live_entries"], redis["used_bytes"]) == ("ai", 42, 5_000)
    assert data["usage"]["total_samples"] == 3
    assert [w["type"] for w in data["warnings"]] == ["high_memory_bytes"]


def test_invalidations_filter_by_the_newer_types(staff, db):
    InvalidationEventFactory(invalidation_type="tags")
    InvalidationEventFactory(invalidation_type="keys")
    for kind in ("tags", "keys"):
        data = staff.get("/api/aicache/invalidations/", {"type": kind, "last": "24h"}).json()
        assert [e["invalidation_type"] for e in data["results"]] == [kind]
