import datetime as dt

import pytest
from django.contrib.auth.models import Permission
from django.utils import timezone

from aicache.monitoring import sketch
from tests.factories import (
    IngestionBatchFactory,
    InvalidationEventFactory,
    MemorySnapshotFactory,
    SlowOperationFactory,
    rollup_everywhere,
)


def view_permissions() -> list[Permission]:
    return list(
        Permission.objects.filter(content_type__app_label="aicache_monitoring", codename__startswith="view_")
    )


@pytest.fixture
def staff(django_user_model):
    """Staff who may view the monitoring models, but not invalidate."""
    user = django_user_model.objects.create_user("viewer", password="pw", is_staff=True)
    user.user_permissions.add(*view_permissions())
    return user


@pytest.fixture
def operator(django_user_model):
    """Staff who may view and invalidate."""
    user = django_user_model.objects.create_user("operator", password="pw", is_staff=True)
    user.user_permissions.add(*view_permissions(), Permission.objects.get(codename="invalidate_cache"))
    return user


MEMORY_HIT, REDIS_HIT, MISS = 5e-6, 4e-4, 3e-4  # seconds, one latency per outcome


def timed(seconds: float, n: int) -> dict:
    """Rollup fields for ``n`` reads that each took ``seconds``."""
    return {
        "count": n,
        "sketch": {str(sketch.bucket_of(seconds)): n},
        "total_duration": seconds * n,
        "min_duration": seconds,
        "max_duration": seconds,
    }


PRICES = {"gpt-4o": {"prompt_per_1k": 0.0025, "completion_per_1k": 0.01, "currency": "USD"}}


@pytest.fixture
def history(db):
    """Factory history with known figures, ten minutes and two hours ago, two operations.

    Reads in the last 24h: summarize 90 memory hits (small tier) + 30 Redis hits (medium tier) +
    40 misses (small): hit rate 75 %; qa 10 Redis hits (small) + 30 misses (small): 25 %;
    overall 130 hits, 70 misses: 65 %, 90 of the hits from the memory tier. In the last hour
    only the recent minute counts: 90 hits, 40 misses. Costed hits (savings): see below."""
    now = timezone.now()
    recent, earlier = now - dt.timedelta(minutes=10), now - dt.timedelta(hours=2)
    for at, memory, redis_hits, misses in ((recent, 60, 20, 10), (earlier, 30, 10, 30)):
        rollup_everywhere(at, outcome="hit_memory", **timed(MEMORY_HIT, memory))
        rollup_everywhere(at, outcome="hit_redis", tier="medium", **timed(REDIS_HIT, redis_hits))
        rollup_everywhere(at, outcome="miss", **timed(MISS, misses))
    rollup_everywhere(recent, operation="qa", outcome="hit_redis", **timed(REDIS_HIT, 10))
    rollup_everywhere(recent, operation="qa", outcome="miss", **timed(MISS, 30))
    rollup_everywhere(
        recent,
        kind="compress",
        outcome="ok",
        count=4,
        bytes_in=40_000,
        bytes_out=10_000,
        ratio_sketch={"0": 4},
    )
    rollup_everywhere(recent, kind="invalidate", operation="summarize", outcome="ok", count=2)
    # costed hits: 20 of summarize answered by gpt-4o (priced in tests), 5 of qa by a local model
    # (no price): 16 s and 2 s of compute saved, the hits took 0.002 s
    rollup_everywhere(
        recent,
        kind="saved",
        operation="summarize",
        tier="gpt-4o",
        outcome="ok",
        count=20,
        total_duration=16.0,
        bytes_in=10_000,
        bytes_out=2_000,
    )
    rollup_everywhere(
        recent,
        kind="hit_cost",
        operation="summarize",
        tier="gpt-4o",
        outcome="ok",
        count=20,
        total_duration=0.002,
    )
    rollup_everywhere(
        recent,
        kind="saved",
        operation="qa",
        tier="local",
        outcome="ok",
        count=5,
        total_duration=2.0,
        bytes_in=1_500,
        bytes_out=500,
    )
    InvalidationEventFactory(timestamp=recent, pattern="summarize", keys_invalidated=12)
    InvalidationEventFactory(
        timestamp=recent, pattern="summ*", invalidation_type="pattern", keys_invalidated=3
    )
    SlowOperationFactory(timestamp=recent, duration=0.25)
    MemorySnapshotFactory(timestamp=recent, memory_bytes=2 * 1024 * 1024)
    MemorySnapshotFactory(
        timestamp=recent,
        source="redis",
        process="",
        memory_entries=None,
        memory_bytes=None,
        memory_max_entries=None,
        memory_max_bytes=None,
        process_rss_bytes=None,
        redis_used_bytes=5 * 1024 * 1024,
        redis_key_count=42,
    )
    IngestionBatchFactory(dropped_batches=1, dropped_records=7)
    return now


def pytest_collection_modifyitems(items):
    """The cockpit reads the monitoring history: its database tests also run on PostgreSQL."""
    for item in items:
        if "tests/admin/" in str(item.fspath) and "test_charts_and_settings" not in str(item.fspath):
            item.add_marker(pytest.mark.history)
