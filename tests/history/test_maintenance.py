"""Cleanup and compaction: figures unchanged inside retention, what is outside removed."""

import datetime as dt
from io import StringIO

import pytest
from celery.schedules import crontab
from django.core.management import call_command
from django.utils import timezone

from aicache.monitoring import maintenance, stats
from aicache.monitoring.celery import BEAT_SCHEDULE
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
    rollup_row,
)

pytestmark = pytest.mark.django_db


def history(hours_back: list[float]) -> None:
    now = timezone.now()
    rows = [
        rollup_row(
            period_start=now - dt.timedelta(hours=h),
            operation="qa",
            outcome="hit_redis",
            count=10 + i,
            total_duration=0.01 * (i + 1),
            sketch={"-700": 5 + i, "-500": 5},  # sketches differ per row: compaction must merge them
        )
        for i, h in enumerate(hours_back)
    ]
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


def test_minute_rollup_hours_sets_what_compact_folds_and_where_windows_widen(settings):
    """MINUTE_ROLLUP_HOURS (2 here, 24 by default): compact folds the minute rows older than that,
    and a window's edge older than that is widened to its whole hour, read from the hour rows."""
    settings.AICACHE = {**settings.AICACHE, "MINUTE_ROLLUP_HOURS": 2}
    now = timezone.now()
    old = _hour(now - dt.timedelta(hours=4.5)) + dt.timedelta(minutes=10)  # 4h20m to 5h20m ago
    recent = now - dt.timedelta(hours=1)
    ingest(
        {
            "batch_id": "minutes",
            "rollups": [rollup_row(period_start=old, count=2), rollup_row(period_start=recent, count=1)],
        }
    )
    assert maintenance.compact() == {"minute_rollups_folded": 1}  # the old minute; kept under 24 h
    assert list(Rollup.objects.filter(resolution=Resolution.MINUTE).values_list("count", flat=True)) == [1]
    # from the minute after the old one: at minute precision only the recent read is in the window;
    # the edge is older than 2 h, so it widens to the old minute's hour, which holds its 2 reads
    w = stats.window(since=old + dt.timedelta(minutes=1), until=now)
    assert stats.performance_stats(w)["cache_hits"] == 3


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


def test_beat_schedule_is_readmes():
    """README, Beat jobs: snapshot_redis every 60 s, compact hourly at :07, cleanup hourly at :17,
    train_dictionaries hourly."""
    schedule = {entry["task"]: entry["schedule"] for entry in BEAT_SCHEDULE.values()}
    assert schedule["aicache.monitoring.snapshot_redis"] == 60.0
    assert schedule["aicache.monitoring.compact"] == crontab(minute=7, hour="*")
    assert schedule["aicache.monitoring.cleanup"] == crontab(minute=17, hour="*")
    dictionaries = schedule["aicache.monitoring.train_dictionaries"]
    assert len(dictionaries.minute) == 1 and dictionaries.hour == set(range(24))
    assert set(schedule) == {
        "aicache.monitoring.snapshot_redis",
        "aicache.monitoring.compact",
        "aicache.monitoring.cleanup",
        "aicache.monitoring.train_dictionaries",
    }


def test_migrations_are_complete():
    call_command("makemigrations", "--check", "--dry-run", stdout=StringIO())


@pytest.mark.django_db(transaction=True)
def test_migrations_apply_from_zero():
    call_command("migrate", "aicache_monitoring", "zero", stdout=StringIO())
    call_command("migrate", "aicache_monitoring", stdout=StringIO())
    assert Rollup.objects.count() == 0
