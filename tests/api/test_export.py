"""GET export/: JSON and CSV content, streamed, with memory that stays flat for long windows."""

import csv
import datetime as dt
import io
import json
import tracemalloc

import pytest
from django.http import StreamingHttpResponse
from django.utils import timezone

from aicache.monitoring import export, stats
from aicache.monitoring.models import InvalidationEvent
from tests.factories import (
    InvalidationEventFactory,
    MemorySnapshotFactory,
    SlowOperationFactory,
    rollup_everywhere,
)

pytestmark = [pytest.mark.django_db, pytest.mark.history]  # rerun on PostgreSQL by make test


@pytest.fixture
def history():
    now = timezone.now()
    rollup_everywhere(period_start=now - dt.timedelta(minutes=5), count=7)
    rollup_everywhere(period_start=now - dt.timedelta(minutes=5), outcome="miss", count=3)
    SlowOperationFactory(timestamp=now - dt.timedelta(minutes=4))
    InvalidationEventFactory(timestamp=now - dt.timedelta(minutes=3), operation_context='via=api, "quoted"')
    MemorySnapshotFactory(timestamp=now - dt.timedelta(minutes=2))
    InvalidationEventFactory(timestamp=now - dt.timedelta(days=2))  # outside 24h


def _body(response):
    assert isinstance(response, StreamingHttpResponse)
    return b"".join(response.streaming_content)


def test_json_export_holds_the_window(staff, history):
    response = staff.get("/api/aicache/export/", {"format": "json", "last": "24h"})
    assert response.status_code == 200 and response["Content-Type"] == "application/json"
    assert response["Content-Disposition"].startswith('attachment; filename="aicache-export-')
    data = json.loads(_body(response))
    # the rollups covering the window once (minute or hour rows, by where the clock stands), never
    # all three resolutions
    assert sorted(r["count"] for r in data["rollups"]) == [3, 7]
    assert len({r["resolution"] for r in data["rollups"]}) == 1
    assert len(data["slow_operations"]) == 1 and data["slow_operations"][0]["duration"] == 0.08
    (event,) = data["invalidations"]
    assert event["operation_context"] == 'via=api, "quoted"' and event["keys_invalidated"] == 12
    assert len(data["memory_snapshots"]) == 1
    assert data["window"]["operation"] is None


def test_csv_export_is_one_table(staff, history):
    response = staff.get("/api/aicache/export/", {"format": "csv", "last": "24h"})
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(_body(response).decode())))
    assert [r["record"] for r in rows] == [
        "rollup",
        "rollup",
        "slow_operation",
        "invalidation",
        "memory_snapshot",
    ]
    inval = rows[3]
    assert inval["operation_context"] == 'via=api, "quoted"' and inval["keys_invalidated"] == "12"
    assert json.loads(rows[0]["sketch"])  # sketches are JSON in their cell
    assert rows[0]["pattern"] == ""  # columns of other records stay empty


def test_export_filters_by_operation(staff, history):
    InvalidationEventFactory(pattern="qa", timestamp=timezone.now() - dt.timedelta(minutes=1))
    data = json.loads(_body(staff.get("/api/aicache/export/", {"operation": "qa"})))
    assert [e["pattern"] for e in data["invalidations"]] == ["qa"] and data["rollups"] == []


def _add_events(n, start):
    now = timezone.now()
    InvalidationEvent.objects.bulk_create(
        [
            InvalidationEvent(
                timestamp=now - dt.timedelta(seconds=(start + i) * 60),
                pattern=f"operation_{i % 50}",
                keys_invalidated=i,
                duration=0.001,
                invalidation_type="operation",
                operation_context="via=command user=ops reason=" + "x" * 100,
            )
            for i in range(n)
        ],
        batch_size=900,
    )


def _stream_peak(fmt):
    tracemalloc.start()
    try:
        total, chunks, biggest = 0, 0, 0
        for chunk in export.export(stats.window(last="30d"), fmt):
            total, chunks, biggest = total + len(chunk), chunks + 1, max(biggest, len(chunk))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    return total, chunks, biggest, peak


@pytest.mark.parametrize("fmt", ["json", "csv"])
def test_export_streams_in_chunks_with_flat_memory(fmt):
    """Memory does not grow with the window's size: exporting 4x as many rows (3,000 -> 12,000,
    several database chunks each) peaks at about the same traced memory, in ~64 KB pieces."""
    _add_events(3_000, 0)
    small_total, _, _, small_peak = _stream_peak(fmt)
    _add_events(9_000, 3_000)
    total, chunks, biggest, peak = _stream_peak(fmt)
    assert total > 3.5 * small_total and chunks > 25
    assert biggest < 2 * export.FLUSH_BYTES
    assert peak < 1.5 * small_peak, (small_peak, peak)
    assert peak < 3_000_000, peak  # about one chunk of rows, whatever the window
