"""Cleanup and compaction: figures unchanged inside retention, what is outside removed."""

import datetime as dt
from io import StringIO

import pytest
from django.core.management import call_command
from django.utils import timezone

from aicache.monitoring import maintenance, stats
from aicache.monitoring.ingest import ingest
from aicache.monitoring.models import (
    IngestionBatch,
    InvalidationEvent,
    MemorySnapshot,
    Resolution,
    Rollup,
    SlowOperation,
)
from tests.factories import (
    IngestionBatchFactory,
    InvalidationEventFactory,
    MemorySnapshotFactory,
    SlowOperationFactory,
)

pytestmark = pytest.mark.django_db


def history(hours_back: list[float]) -> None:
    now = timezone.now()
    rows = []
    for i, h in enumerate(hours_back):
        ts = (now - dt.timedelta(hours=h)).timestamp()
        rows.append(
            [
                ts,
                "get",
                "qa",
                "small",
                "hit_redis",
                10 + i,
                0.01 * (i + 1),
                0.0005,
                0.004,
                {"-700": 5 + i, "-500": 5},
                1000,
                200,
                0,
                0,
                {},
            ]
        )
    ingest({"batch_id": "hist", "rollups": rows})


def test_compaction_keeps_figures_and_drops_old_minutes():
    history([0.2, 5, 23.5, 30, 47, 70])
    windows = [
        stats.window(since=_hour(timezone.now() - dt.timedelta(hours=h)), until=_hour(timezone.now()))
        for h in (48, 72, 24 * 10)
    ]
    before = [stats.performance_stats(w) for w in windows]
    minutes_before = Rollup.objects.filter(resolution=Resolution.MINUTE).count()
    assert maintenance.compact() == {"minute_rollups_folded": 3}  # the 30, 47 and 70 h old minutes
    assert Rollup.objects.filter(resolution=Resolution.MINUTE).count() == minutes_before - 3
    after = [stats.performance_stats(w) for w in windows]
    for b, a in zip(before, after):
        for key in ("cache_hits", "total_cache_operations"):
            assert a[key] == b[key]
        assert a["cache_operations"]["p95_duration"] == b["cache_operations"]["p95_duration"]
        assert a["cache_operations"]["avg_duration"] == pytest.approx(b["cache_operations"]["avg_duration"])
    assert maintenance.compact() == {"minute_rollups_folded": 0}


def _hour(t):
    return t.replace(minute=0, second=0, microsecond=0)


def test_cleanup_removes_only_what_is_outside_retention(settings):
    settings.AICACHE = {
        **settings.AICACHE,
        "RETENTION_RAW_DAYS": 7,
        "RETENTION_ROLLUP_DAYS": 90,
        "CLEANUP_BATCH_SIZE": 3,
    }
    now = timezone.now()
    for days in (1, 6.9, 7.1, 20):
        at = now - dt.timedelta(days=days)
        SlowOperationFactory(timestamp=at)
        InvalidationEventFactory(timestamp=at)
        MemorySnapshotFactory(timestamp=at)
        batch = IngestionBatchFactory()
        IngestionBatch.objects.filter(pk=batch.pk).update(received_at=at)
    history([24 * 10, 24 * 89, 24 * 91, 24 * 120])
    result = maintenance.cleanup()
    assert result["slow_operations"] == result["invalidation_events"] == result["memory_snapshots"] == 2
    assert result["ingestion_batches"] == 2
    for model in (SlowOperation, InvalidationEvent, MemorySnapshot):
        assert model.objects.count() == 2
    oldest = Rollup.objects.order_by("period_start").first().period_start
    assert oldest >= now - dt.timedelta(days=90, hours=1)
    assert result["rollups"] > 0
    assert stats.performance_stats(stats.window(since=now - dt.timedelta(days=89.9)))["cache_hits"] > 0
    assert maintenance.cleanup()["rollups"] == 0


def test_migrations_are_complete():
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
def test_migrations_apply_from_zero():
    call_command("migrate", "aicache_monitoring", "zero", stdout=StringIO())
    call_command("migrate", "aicache_monitoring", stdout=StringIO())
    assert Rollup.objects.count() == 0
