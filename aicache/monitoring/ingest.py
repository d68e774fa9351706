"""Writing one monitoring batch into the database: validated, idempotent, additive.

A batch and its id are written in one transaction. If the id was seen before (a redelivery after
a worker died between commit and ack), nothing is written again. Rollups are merged, not
duplicated: each (period, resolution, kind, operation, tier, outcome) row is read under
``select_for_update`` and added to, or created; two workers inserting the same new row at once
make one of them fail on the unique constraint, and Celery retries that task, which then merges.
Each minute rollup is written at three resolutions (minute, hour, day).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from django.db import transaction
from django.db.models import Q

from aicache.monitoring import sketch as sk
from aicache.monitoring.models import (
    IngestionBatch,
    InvalidationEvent,
    MemorySnapshot,
    Resolution,
    Rollup,
    SlowOperation,
)

RESOLUTIONS = (Resolution.MINUTE, Resolution.HOUR, Resolution.DAY)
SeriesKey = tuple[dt.datetime, int, str, str, str, str]


class BadBatch(ValueError):
    """The payload is not a monitoring batch; it is rejected, not retried."""


def aligned(ts: float, resolution: int) -> dt.datetime:
    return dt.datetime.fromtimestamp(int(ts) // resolution * resolution, tz=dt.UTC)


def when(ts: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(ts, tz=dt.UTC)


@dataclass
class Agg:
    count: int = 0
    total: float = 0.0
    min: float | None = None
    max: float | None = None
    sketch: dict[int, int] = field(default_factory=dict)
    text_length: int = 0
    text_length_max: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    ratio_sketch: dict[int, int] = field(default_factory=dict)

    def add(self, count, total, mn, mx, sketch, text, text_max, b_in, b_out, ratios) -> None:
        self.count += count
        self.total += total
        if mn is not None:
            self.min = mn if self.min is None else min(self.min, mn)
        if mx is not None and count:
            self.max = mx if self.max is None else max(self.max, mx)
        sk.merge(self.sketch, sketch or {})
        self.text_length += text
        self.text_length_max = max(self.text_length_max, text_max)
        self.bytes_in += b_in
        self.bytes_out += b_out
        sk.merge(self.ratio_sketch, ratios or {})

    def add_row(self, row: Rollup) -> None:
        self.add(
            row.count,
            row.total_duration,
            row.min_duration,
            row.max_duration,
            row.sketch,
            row.text_length,
            row.text_length_max,
            row.bytes_in,
            row.bytes_out,
            row.ratio_sketch,
        )

    def fill(self, row: Rollup) -> Rollup:
        row.count, row.total_duration = self.count, self.total
        row.min_duration, row.max_duration = self.min, self.max
        row.sketch, row.ratio_sketch = self.sketch, self.ratio_sketch
        row.text_length, row.text_length_max = self.text_length, self.text_length_max
        row.bytes_in, row.bytes_out = self.bytes_in, self.bytes_out
        return row


FIELDS = [
    "count",
    "total_duration",
    "min_duration",
    "max_duration",
    "sketch",
    "text_length",
    "text_length_max",
    "bytes_in",
    "bytes_out",
    "ratio_sketch",
]


def _text(value: Any, limit: int) -> str:
    if not isinstance(value, str):
        raise BadBatch(f"expected a string, got {type(value).__name__}")
    return value[:limit]


def _count(value: Any) -> int | None:
    """A non-negative integer, or None; anything else makes the batch bad (not a database error
    that Celery would retry)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise BadBatch(f"expected a non-negative integer, got {value!r:.50}")
    return value


def series(rows: Iterable[list]) -> dict[SeriesKey, Agg]:
    """Validated rollup rows expanded to every resolution and summed per series."""
    out: dict[SeriesKey, Agg] = {}
    for row in rows:
        try:
            ts, kind, op, tier, outcome, count, total, mn, mx, sketch, text, text_max, b_in, b_out, ratios = (
                row
            )
            ts, count, total = float(ts), int(count), float(total)
            mn, mx = (None if v is None else float(v) for v in (mn, mx))
            parts = (_text(kind, 16), _text(op, 64), _text(tier, 128), _text(outcome, 32))
            numbers = (int(text), int(text_max), int(b_in), int(b_out))
            if count < 0 or not isinstance(sketch, dict) or not isinstance(ratios, dict):
                raise BadBatch("negative count or malformed sketch")
        except (TypeError, ValueError) as exc:
            raise BadBatch(f"bad rollup row {row!r:.200}: {exc}") from exc
        for resolution in RESOLUTIONS:
            key = (aligned(ts, resolution), int(resolution), *parts)
            out.setdefault(key, Agg()).add(count, total, mn, mx, sketch, *numbers, ratios)
    return out


def _merge_series(aggs: dict[SeriesKey, Agg]) -> tuple[int, int]:
    if not aggs:
        return 0, 0
    periods = {k[0] for k in aggs}
    kinds = {k[2] for k in aggs}
    existing = {
        (r.period_start, r.resolution, r.kind, r.operation, r.tier, r.outcome): r
        for r in Rollup.objects.select_for_update().filter(
            Q(period_start__in=periods) & Q(kind__in=kinds) & Q(resolution__in=[int(r) for r in RESOLUTIONS])
        )
    }
    updates, creates = [], []
    for key, agg in aggs.items():
        row = existing.get(key)
        if row is None:
            period, resolution, kind, op, tier, outcome = key
            creates.append(
                agg.fill(
                    Rollup(
                        period_start=period,
                        resolution=resolution,
                        kind=kind,
                        operation=op,
                        tier=tier,
                        outcome=outcome,
                    )
                )
            )
        else:
            merged = Agg()
            merged.add_row(row)
            merged.add(
                agg.count,
                agg.total,
                agg.min,
                agg.max,
                agg.sketch,
                agg.text_length,
                agg.text_length_max,
                agg.bytes_in,
                agg.bytes_out,
                agg.ratio_sketch,
            )
            updates.append(merged.fill(row))
    Rollup.objects.bulk_create(creates, batch_size=500)
    Rollup.objects.bulk_update(updates, FIELDS, batch_size=200)
    return len(creates), len(updates)


def ingest(payload: Any) -> dict[str, Any]:
    if (
        not isinstance(payload, dict)
        or not isinstance(payload.get("batch_id"), str)
        or not payload["batch_id"]
    ):
        raise BadBatch("a batch is a dict with a non-empty string batch_id")
    try:
        aggs = series(payload.get("rollups") or [])
        process = _text(payload.get("process", ""), 128)
        dropped = payload.get("dropped") or {}
        slow = [
            SlowOperation(
                timestamp=when(ts),
                action=_text(a, 16),
                operation=_text(op, 64),
                tier=_text(t, 32),
                source=_text(src, 16),
                duration=float(d),
                text_length=int(n),
                cache_hit=bool(hit),
                process=process,
            )
            for ts, a, op, t, src, d, n, hit in payload.get("slow") or []
        ]
        invalidations = [
            InvalidationEvent(
                timestamp=when(ts),
                pattern=_text(p, 300),
                keys_invalidated=int(k),
                duration=float(d),
                invalidation_type=_text(typ, 16),
                operation_context=_text(ctx, 300),
                status=_text(st, 16),
                reason=_text(why, 200),
                process=process,
            )
            for ts, p, k, d, typ, ctx, st, why in payload.get("invalidations") or []
        ]
        memory = [
            MemorySnapshot(
                timestamp=when(ts),
                source=MemorySnapshot.Source.PROCESS,
                process=process,
                memory_entries=_count(entries),
                memory_bytes=_count(size),
                memory_max_entries=_count(max_entries),
                memory_max_bytes=_count(max_size),
                redis_used_bytes=_count(redis_used),
                process_rss_bytes=_count(rss),
            )
            for ts, entries, size, max_entries, max_size, redis_used, rss in payload.get("memory") or []
        ]
        batch = IngestionBatch(
            batch_id=_text(payload["batch_id"], 64),
            process=process,
            sent_at=when(float(payload["sent_at"])) if payload.get("sent_at") else None,
            rollups=len(payload.get("rollups") or []),
            events=len(slow) + len(invalidations) + len(memory),
            dropped_batches=int(dropped.get("batches", 0)),
            dropped_records=int(dropped.get("records", 0)),
        )
    except (TypeError, ValueError) as exc:
        raise BadBatch(f"malformed batch: {exc}") from exc
    with transaction.atomic():
        if IngestionBatch.objects.filter(batch_id=batch.batch_id).exists():
            return {"batch_id": batch.batch_id, "duplicate": True}
        batch.save()
        created, updated = _merge_series(aggs)
        SlowOperation.objects.bulk_create(slow, batch_size=500)
        InvalidationEvent.objects.bulk_create(invalidations, batch_size=500)
        MemorySnapshot.objects.bulk_create(memory, batch_size=500)
    return {"batch_id": batch.batch_id, "duplicate": False, "created": created, "updated": updated}
