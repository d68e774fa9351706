"""Ingestion: validated, idempotent per batch id, additive per series, three resolutions."""

import datetime as dt
import time

import pytest

from aicache.monitoring.ingest import BadBatch, ingest
from aicache.monitoring.models import IngestionBatch, InvalidationEvent, MemorySnapshot, Rollup, SlowOperation
from tests.factories import rollup_row

pytestmark = pytest.mark.django_db
T0 = 1_795_000_020.0  # a whole minute (2026-11-18, 7 minutes past an hour)
START = dt.datetime.fromtimestamp(T0, tz=dt.UTC)


def batch(batch_id="b1", **extra):
    rollups = [rollup_row(period_start=START, count=2)]
    return {"batch_id": batch_id, "process": "h:1", "sent_at": T0, "rollups": rollups, **extra}


def test_batch_written_at_three_resolutions():
    ingest(
        batch(
            slow=[[T0, "get", "qa", "small", "redis", 0.09, 300, True]],
            invalidations=[[T0, "qa", 4, 0.002, "operation", "ctx", "success", ""]],
            memory=[[T0, 5, 500, 100, 1000, None, 123456]],
        )
    )
    rows = Rollup.objects.order_by("resolution")
    assert [(r.resolution, r.count) for r in rows] == [(60, 2), (3600, 2), (86400, 2)]
    assert rows[0].period_start == START
    assert rows[1].period_start == START.replace(minute=0)
    assert rows[2].period_start == START.replace(hour=0, minute=0)
    assert SlowOperation.objects.get().duration == 0.09
    assert InvalidationEvent.objects.get().operation_context == "ctx"
    assert MemorySnapshot.objects.get().process_rss_bytes == 123456
    assert IngestionBatch.objects.get().events == 3


def test_duplicate_delivery_counted_once():
    assert ingest(batch("same"))["duplicate"] is False
    assert ingest(batch("same"))["duplicate"] is True
    assert Rollup.objects.get(resolution=60).count == 2
    assert IngestionBatch.objects.count() == 1


def test_two_processes_same_minute_are_merged():
    first = rollup_row(
        period_start=START,
        count=2,
        total_duration=0.004,
        min_duration=0.001,
        max_duration=0.003,
        sketch={"-600": 2},
        text_length=200,
        text_length_max=120,
    )
    ingest({"batch_id": "a", "process": "h:1", "rollups": [first]})
    ingest(
        {
            "batch_id": "b",
            "process": "h:2",
            "rollups": [
                rollup_row(
                    period_start=START + dt.timedelta(seconds=30),
                    count=3,
                    total_duration=0.03,
                    min_duration=0.0005,
                    max_duration=0.02,
                    sketch={"-600": 1, "-390": 2},
                    text_length=900,
                    text_length_max=500,
                )
            ],
        }
    )
    minute = Rollup.objects.get(resolution=60)
    assert (minute.count, minute.min_duration, minute.max_duration) == (5, 0.0005, 0.02)
    assert minute.total_duration == pytest.approx(0.034)
    assert minute.sketch == {"-600": 3, "-390": 2}
    assert (minute.text_length, minute.text_length_max) == (1100, 500)
    assert Rollup.objects.count() == 3  # one row per resolution, merged


@pytest.mark.parametrize(
    "payload",
    [
        None,
        [],
        {"rollups": []},
        {"batch_id": ""},
        {"batch_id": 7},
        {"batch_id": "x", "rollups": [["not", "a", "row"]]},
        {"batch_id": "x", "rollups": [rollup_row(count=-1)]},
        {"batch_id": "x", "rollups": [rollup_row(sketch=[1, 2])]},
        {"batch_id": "x", "rollups": [rollup_row(kind=5)]},
        {"batch_id": "x", "slow": [[T0, "get"]]},
        {"batch_id": "x", "sent_at": "yesterday"},
        {"batch_id": "x", "memory": [[T0, "lots", 500, 100, 1000, None, 1]]},
        {"batch_id": "x", "rollups": [rollup_row(min_duration="fast")]},
        {"batch_id": "x", "memory": [[T0, 5, -1, 100, 1000, None, 1]]},
    ],
)
def test_bad_batches_are_rejected_and_write_nothing(payload):
    with pytest.raises(BadBatch):
        ingest(payload)
    assert not Rollup.objects.exists() and not IngestionBatch.objects.exists()


def test_empty_batch_is_recorded():
    assert ingest({"batch_id": "empty", "dropped": {"batches": 2, "records": 40}})["duplicate"] is False
    recorded = IngestionBatch.objects.get()
    assert (recorded.dropped_records, recorded.process, recorded.sent_at) == (40, "", None)


def test_now_aligned_rows():
    now = time.time()
    ingest(
        {"batch_id": "now", "rollups": [rollup_row(period_start=dt.datetime.fromtimestamp(now, tz=dt.UTC))]}
    )
    minute = Rollup.objects.get(resolution=60)
    assert minute.period_start.second == 0 and abs(minute.period_start.timestamp() - now) < 60


def test_runs_on_the_configured_database():
    import os

    from django.db import connection

    expected = "postgresql" if os.environ.get("AICACHE_TEST_DATABASE_URL") else "sqlite"
    assert connection.vendor == expected


def test_ingest_reports_rows_created_then_updated_and_truncates_long_texts():
    first = ingest(
        batch("c1", invalidations=[[T0, "p" * 400, 1, 0.001, "pattern", "c" * 400, "failed", "r" * 250]])
    )
    assert first == {"batch_id": "c1", "duplicate": False, "created": 3, "updated": 0}
    assert ingest(batch("c2")) == {"batch_id": "c2", "duplicate": False, "created": 0, "updated": 3}
    assert ingest(batch("c2")) == {"batch_id": "c2", "duplicate": True}
    # a batch with no rollups (a quiet minute's counters) creates and updates no rollup row
    assert ingest(batch("c3", rollups=[], counters={"single_flight_waits": 1})) == {
        "batch_id": "c3",
        "duplicate": False,
        "created": 0,
        "updated": 0,
    }
    event = InvalidationEvent.objects.get()
    assert (len(event.pattern), len(event.operation_context), len(event.reason)) == (300, 300, 200)
