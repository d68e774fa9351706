"""The stats functions the dashboard added to aicache.monitoring.stats, on factory history."""

import pytest

from aicache.monitoring import sketch, stats

from .conftest import MEMORY_HIT, MISS, REDIS_HIT

pytestmark = pytest.mark.django_db


def test_operations_split_reads_per_operation(history):
    rows = stats.operations(stats.window(last="24h"))
    assert [r["operation"] for r in rows] == ["summarize", "qa"]  # busiest first
    summarize, qa = rows
    assert summarize == {
        "operation": "summarize",
        "reads": 160,
        "hits": 120,
        "memory_hits": 90,
        "misses": 40,
        "writes": 0,
        "hit_rate": 75.0,
    }
    assert (qa["reads"], qa["hits"], qa["memory_hits"], qa["hit_rate"]) == (40, 10, 0, 25.0)
    recent = stats.operations(stats.window(last="1h", operation="summarize"))
    assert [(r["operation"], r["reads"]) for r in recent] == [("summarize", 90)]


def test_latency_by_tier_is_what_the_latency_card_shows(history):
    by_tier = stats.latency_by_tier(stats.window(last="24h"))
    assert set(by_tier) == {"small", "medium"}
    value = {v: sketch.bucket_value(sketch.bucket_of(v)) for v in (MEMORY_HIT, REDIS_HIT, MISS)}
    assert by_tier["medium"] == {
        "count": 30,
        "p50": value[REDIS_HIT],
        "p95": value[REDIS_HIT],
        "p99": value[REDIS_HIT],
    }
    small = by_tier["small"]
    # 90 memory hits, 70 misses, 10 Redis hits: ranks 85, 162 and 169 of 170
    assert (small["count"], small["p50"], small["p95"]) == (170, value[MEMORY_HIT], value[REDIS_HIT])
    assert stats.latency_by_tier(stats.window(last="1h", operation="nothing")) == {}
