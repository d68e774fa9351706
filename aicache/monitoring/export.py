"""Export a window of the monitoring history as JSON or CSV, streamed.

The rows are the rollups that cover the window (the same coarsest cover ``stats`` reads, so
nothing is counted twice) and the raw events inside it (slow operations, invalidations, memory
snapshots). Rows are read from the database in chunks (``QuerySet.iterator``) and written out as
they come, so memory stays flat however long the window: ``GET export/`` hands the generator to a
``StreamingHttpResponse`` and ``aicache_export`` writes it to a file.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from typing import Any

import orjson

from aicache.monitoring import stats
from aicache.monitoring.models import InvalidationEvent, MemorySnapshot, SlowOperation

CHUNK_ROWS = 1000
FLUSH_BYTES = 64 * 1024
FORMATS = ("json", "csv")

ROLLUP_FIELDS = (
    "period_start",
    "resolution",
    "kind",
    "operation",
    "tier",
    "outcome",
    "count",
    "total_duration",
    "min_duration",
    "max_duration",
    "text_length",
    "text_length_max",
    "bytes_in",
    "bytes_out",
    "sketch",
    "ratio_sketch",
)
SLOW_FIELDS = ("timestamp", "action", "operation", "tier", "source", "duration", "text_length", "cache_hit")
INVALIDATION_FIELDS = (
    "timestamp",
    "pattern",
    "keys_invalidated",
    "duration",
    "invalidation_type",
    "operation_context",
    "status",
    "reason",
)
MEMORY_FIELDS = (
    "timestamp",
    "source",
    "memory_entries",
    "memory_bytes",
    "memory_max_entries",
    "memory_max_bytes",
    "process_rss_bytes",
    "redis_used_bytes",
    "redis_key_count",
    "redis_keyspace_hits",
    "redis_keyspace_misses",
)
SECTIONS = ("rollups", "slow_operations", "invalidations", "memory_snapshots")
CSV_COLUMNS = (
    "record",
    *dict.fromkeys((*ROLLUP_FIELDS, *SLOW_FIELDS, *INVALIDATION_FIELDS, *MEMORY_FIELDS)),
    "process",
)


def _sections(w: stats.Window) -> Iterator[tuple[str, tuple[str, ...], Iterator[tuple]]]:
    in_window = {"timestamp__gte": w.since, "timestamp__lt": w.until}
    slow = SlowOperation.objects.filter(**in_window)
    invalidations = InvalidationEvent.objects.filter(**in_window)
    if w.operation:
        slow = slow.filter(operation=w.operation)
        invalidations = invalidations.filter(pattern=w.operation)
    if w.tier:
        slow = slow.filter(tier=w.tier)
    sources = (
        ("rollups", ROLLUP_FIELDS, stats.rollups(w).order_by("period_start", "id")),
        ("slow_operations", (*SLOW_FIELDS, "process"), slow.order_by("timestamp", "id")),
        ("invalidations", (*INVALIDATION_FIELDS, "process"), invalidations.order_by("timestamp", "id")),
        (
            "memory_snapshots",
            (*MEMORY_FIELDS, "process"),
            MemorySnapshot.objects.filter(**in_window).order_by("timestamp", "id"),
        ),
    )
    for name, fields, qs in sources:
        yield name, fields, qs.values_list(*fields).iterator(chunk_size=CHUNK_ROWS)


def _plain(value: Any) -> Any:
    return value.isoformat() if hasattr(value, "isoformat") else value


def export_json(w: stats.Window) -> Iterator[bytes]:
    """``{"window": {...}, "rollups": [...], "slow_operations": [...], "invalidations": [...],
    "memory_snapshots": [...]}``, in chunks of about FLUSH_BYTES."""
    head = {
        "since": w.since.isoformat(),
        "until": w.until.isoformat(),
        "operation": w.operation,
        "tier": w.tier,
    }
    buf = bytearray(b'{"window":' + orjson.dumps(head))
    for name, fields, rows in _sections(w):
        buf += b',"' + name.encode() + b'":['
        first = True
        for row in rows:
            if not first:
                buf += b","
            first = False
            buf += orjson.dumps(dict(zip(fields, row, strict=True)))
            if len(buf) >= FLUSH_BYTES:
                yield bytes(buf)
                buf.clear()
        buf += b"]"
    buf += b"}"
    yield bytes(buf)


def export_csv(w: stats.Window) -> Iterator[bytes]:
    """One table: a ``record`` column (rollup, slow_operation, invalidation, memory_snapshot) and
    the union of the fields; sketches are JSON objects in their cell."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    record_names = dict(
        zip(SECTIONS, ("rollup", "slow_operation", "invalidation", "memory_snapshot"), strict=True)
    )
    for name, fields, rows in _sections(w):
        for row in rows:
            values = dict(zip(fields, row, strict=True))
            writer.writerow(
                [record_names[name]]
                + [_cell(values.get(column)) if column in values else "" for column in CSV_COLUMNS[1:]]
            )
            if out.tell() >= FLUSH_BYTES:
                yield out.getvalue().encode()
                out.seek(0)
                out.truncate()
    yield out.getvalue().encode()


def _cell(value: Any) -> Any:
    if isinstance(value, dict):
        return orjson.dumps(value).decode()
    if value is None:
        return ""
    return _plain(value)


def export(w: stats.Window, fmt: str) -> Iterator[bytes]:
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {list(FORMATS)}, got {fmt!r}")
    return export_json(w) if fmt == "json" else export_csv(w)
