"""Per-minute rollups: what the monitor folds records into, and what it ships.

A rollup aggregates one (minute, kind, operation, tier, outcome): count, duration sum, min, max,
a mergeable latency sketch (``aicache.monitoring.sketch``), text-length and byte sums. ``Drained``
is what the exporter takes from a monitor each second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from aicache.monitoring.events import CacheOperationRecord, InvalidationRecord, MemoryRecord
from aicache.monitoring.sketch import GAMMA, MIN_VALUE, ZERO_BUCKET

_INV_LOG_GAMMA = 1 / math.log(GAMMA)
_log, _ceil = math.log, math.ceil


@dataclass(slots=True)
class Rollup:
    """Aggregates of one (minute, kind, operation, tier, outcome)."""

    count: int = 0
    total: float = 0.0
    min: float = float("inf")
    max: float = 0.0
    sketch: dict[int, int] = field(default_factory=dict)
    text_length: int = 0
    text_length_max: int = 0
    bytes_in: int = 0
    bytes_out: int = 0
    ratio_sketch: dict[int, int] = field(default_factory=dict)  # compression ratios (compress rows)


RollupKey = tuple[int, str, str, str, str]  # (minute start, kind, operation, tier, outcome)
# "coalesced": the caller received another caller's computed value (single flight): a hit
_HIT_OUTCOMES = {"memory": "hit_memory", "redis": "hit_redis", "coalesced": "hit_coalesced"}
_LOOKUP = object()  # tags a read record: folded inline by _fold_batch


def _add(
    rollups: dict, key: RollupKey, duration: float, text_length: int, bytes_in: int, bytes_out: int
) -> None:
    """``Rollup.add`` inlined with ``bucket_of``: this runs once per record, so calls count."""
    r = rollups.get(key)
    if r is None:
        r = rollups[key] = Rollup()
    r.count += 1
    r.total += duration
    if duration < r.min:
        r.min = duration
    if duration > r.max:
        r.max = duration
    b = _ceil(_log(duration) * _INV_LOG_GAMMA) if duration > MIN_VALUE else ZERO_BUCKET
    sketch = r.sketch
    sketch[b] = sketch.get(b, 0) + 1
    if text_length:
        r.text_length += text_length
        if text_length > r.text_length_max:
            r.text_length_max = text_length
    if bytes_in:
        r.bytes_in += bytes_in
    if bytes_out:
        r.bytes_out += bytes_out


@dataclass
class Drained:
    """What accumulated since the previous drain: the unit of export."""

    rollups: dict[RollupKey, Rollup]
    invalidations: list[InvalidationRecord]
    memory: list[MemoryRecord]
    slow: list[CacheOperationRecord]
    counters: dict[str, int]
