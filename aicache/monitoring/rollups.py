"""Per-minute rollups: what the monitor folds records into, and what it ships.

A rollup aggregates one (minute, kind, operation, tier, outcome): count, duration sum, min, max,
a mergeable latency sketch (``aicache.monitoring.sketch``), text-length and byte sums. ``Drained``
is what the exporter takes from a monitor each second. ``Folding`` is the monitor's half that turns
pending records into windows, totals, rollups and the raw events to export, off the hot path.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

from aicache.monitoring.events import CacheOperationRecord, InvalidationRecord, MemoryRecord
from aicache.monitoring.sketch import GAMMA, MIN_VALUE, ZERO_BUCKET, bucket_of

logger = logging.getLogger("aicache.monitoring")
SLOW_EVENTS_PER_MINUTE = 20  # slow operations kept for the database, per minute and action
MEMORY_CHANGE_RATIO = 0.05  # a memory sample is shipped when a figure moved more than this...
MEMORY_HEARTBEAT_SECONDS = 300.0  # ...or this long after the last shipped one
ROLLUP_PRUNE_AT = 2048  # undrained rollups beyond this: minutes older than the retention go
MAX_UNDRAINED_ROLLUPS = 20_000  # and beyond this, the oldest series go (counted as dropped)
MODEL_COLUMN = 128  # Rollup.tier holds the model name on "saved" rows

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


class Folding:
    """Folds a monitor's pending records (``CachePerformanceMonitor`` keeps the state)."""

    def _settle(self) -> None:
        """Fold pending records in. Callers hold ``self._state_lock``.

        Reads are most records, so they are folded inline here rather than through a handler,
        and a read whose entry the bounded windows would drop again in this same pass is not
        appended to them (the counters and rollups still count it)."""
        with self._lock:
            pending, self._pending = self._pending, []
            dropped, self.dropped = self.dropped, 0
        if pending:
            self._fold_batch(pending)
            self._bound_undrained()
        if dropped:
            self._fold_count("dropped_pending", dropped)

    def _bound_undrained(self) -> None:
        """What awaits export stays bounded when nobody drains it (a standalone monitor)."""
        lost = 0
        keep = self.max_measurements
        for series in (self._pending_invalidations, self._pending_memory, self._pending_slow):
            if len(series) > keep:
                lost += len(series) - keep
                del series[:-keep]
        if len(self._rollups) > ROLLUP_PRUNE_AT:
            cutoff = time.time() - self.retention_hours * 3600
            old = [key for key in self._rollups if key[0] < cutoff]
            for key in old:
                lost += self._rollups.pop(key).count
        if len(self._rollups) > MAX_UNDRAINED_ROLLUPS:
            # Many distinct operation names inside the retention: keep the newest series only, so
            # memory follows the cap, not the variety of names (nobody drains this monitor).
            for key in sorted(self._rollups, key=lambda k: k[0])[
                : len(self._rollups) - MAX_UNDRAINED_ROLLUPS
            ]:
                lost += self._rollups.pop(key).count
        if lost:
            self._fold_count("dropped_pending", lost)

    def _fold_batch(self, pending: list[tuple]) -> None:
        lookup = _LOOKUP
        op_fold, keygen_fold = self._fold_op, self._fold_keygen
        keep = self.max_measurements
        # how many records each window still has to take after the current one
        ops_left = sum(1 for item in pending if item[0] is lookup or item[0] == op_fold)
        keygen_left = sum(
            1 for item in pending if (item[0] is lookup and item[6] is not None) or item[0] == keygen_fold
        )
        rollups, ops, keygens = self._rollups, self._ops, self._keygen
        kg_threshold, op_threshold = self.key_generation_threshold, self.cache_operation_threshold
        slow_logged = self._slow_logged
        gets = self._gets
        hits = misses = total = coalesced = 0
        seconds = 0.0
        for item in pending:
            if item[0] is not lookup:
                if item[0] == op_fold:
                    ops_left -= 1
                elif item[0] == keygen_fold:
                    keygen_left -= 1
                item[0](*item[1:])
                continue
            _, now, op_type, tier, source, duration, keygen, text_length = item
            minute = int(now) // 60 * 60
            if keygen is not None:
                keygen_left -= 1
                if keygen_left < keep:
                    keygens.append((now, keygen, text_length, op_type, None))
                _add(rollups, (minute, "keygen", op_type, "", "ok"), keygen, text_length, 0, 0)
                if (keygen > kg_threshold) != slow_logged["key_generation"]:
                    self._note_slow("key_generation", keygen, kg_threshold, "key generation")
            ops_left -= 1
            if ops_left < keep:
                ops.append(
                    (now, "get", duration, bool(source), text_length, op_type, tier, source, None, True)
                )
            total += 1
            seconds += duration
            if source:
                hits += 1
                outcome = _HIT_OUTCOMES.get(source) or f"hit_{source}"
                if source == "coalesced":
                    coalesced += 1
            else:
                misses += 1
                outcome = "miss"
            agg = gets.get((tier, outcome))
            if agg is None:
                agg = gets[(tier, outcome)] = [0, 0.0]
            agg[0] += 1
            agg[1] += duration
            _add(rollups, (minute, "get", op_type, tier, outcome), duration, text_length, 0, 0)
            # A coalesced caller's duration is its wait for another caller's compute (an LLM call),
            # not a slow cache: it is measured in the rollups, never reported as a slow operation.
            slow = duration > op_threshold and source != "coalesced"
            if slow and self._keep_slow(now, "get"):
                self._pending_slow.append(
                    CacheOperationRecord(
                        now, "get", duration, bool(source), text_length, op_type, tier, source
                    )
                )
            if slow != slow_logged["cache_operation"] and source != "coalesced":
                self._note_slow("cache_operation", duration, op_threshold, "cache get")
        self._hits += hits
        self._misses += misses
        self._operations += total
        self._op_seconds += seconds
        if coalesced:
            # a caller that received another caller's computed value: a hit, and counted apart
            self._fold_count("single_flight_coalesced", coalesced)

    def _keep_slow(self, now: float, action: str) -> bool:
        """At most SLOW_EVENTS_PER_MINUTE slow events per minute and action go to the database,
        so a slow Redis grows the table with time, not with the request rate."""
        minute = int(now) // 60
        if minute != self._slow_minute:
            self._slow_minute, self._slow_counts = minute, {}
        seen = self._slow_counts.get(action, 0)
        self._slow_counts[action] = seen + 1
        if seen < SLOW_EVENTS_PER_MINUTE:
            return True
        self._fold_count("dropped_slow_events", 1)
        return False

    def _roll(
        self,
        now: float,
        kind: str,
        op: str,
        tier: str,
        outcome: str,
        duration: float,
        text_length: int = 0,
        bytes_in: int = 0,
        bytes_out: int = 0,
    ) -> None:
        _add(
            self._rollups,
            (int(now) // 60 * 60, kind, op, tier, outcome),
            duration,
            text_length,
            bytes_in,
            bytes_out,
        )

    def _note_slow(self, kind: str, duration: float, threshold: float, what: str) -> None:
        """Log once per crossing (below -> above), not on every slow call."""
        slow = duration > threshold
        if slow != self._slow_logged[kind]:
            self._slow_logged[kind] = slow
            if slow:
                logger.warning(
                    "aicache %s took %.1f ms (threshold %.1f ms)", what, duration * 1e3, threshold * 1e3
                )

    def _fold_keygen(self, now, duration, text_length, op_type, extra) -> None:
        self._keygen.append((now, duration, text_length, op_type, extra))
        self._roll(now, "keygen", op_type, "", "ok", duration, text_length)

    def _fold_op(
        self, now, operation, duration, hit, text_length, op_type, tier, source, extra, success
    ) -> None:
        self._ops.append((now, operation, duration, hit, text_length, op_type, tier, source, extra, success))
        self._operations += 1
        self._op_seconds += duration
        if operation == "get":
            if source == "coalesced":
                hit = True
                self._fold_count("single_flight_coalesced", 1)
            if hit:
                self._hits += 1
                outcome = _HIT_OUTCOMES.get(source) or (f"hit_{source}" if source else "hit")
            else:
                self._misses += 1
                outcome = "miss"
            agg = self._gets.setdefault((tier, outcome), [0, 0.0])
            agg[0] += 1
            agg[1] += duration
        else:
            outcome = "ok" if success else "error"
        self._roll(now, operation, op_type, tier, outcome, duration, text_length)
        if duration > self.cache_operation_threshold and self._keep_slow(now, operation):
            self._pending_slow.append(
                CacheOperationRecord(
                    now, operation, duration, hit, text_length, op_type, tier, source, extra, success
                )
            )

    def _fold_compression(self, now, original, compressed, seconds, op_type) -> None:
        self._compression.append((now, original, compressed, seconds, op_type))
        self._compressed[0] += original
        self._compressed[1] += compressed
        self._roll(now, "compress", op_type, "", "ok", seconds, 0, original, compressed)
        ratio = compressed / original if original else 1.0
        ratios = self._rollups[(int(now) // 60 * 60, "compress", op_type, "", "ok")].ratio_sketch
        b = bucket_of(ratio)
        ratios[b] = ratios.get(b, 0) + 1

    def _fold_memory(self, record: MemoryRecord) -> None:
        self._memory.append(record)
        last = self._last_shipped_memory
        if (
            last is None
            or record.timestamp - last.timestamp >= MEMORY_HEARTBEAT_SECONDS
            or _memory_moved(last, record)
        ):
            self._last_shipped_memory = record
            self._pending_memory.append(record)

    def _fold_invalidation(self, record: InvalidationRecord) -> None:
        self._invalidations.append(record)
        self._pending_invalidations.append(record)
        self._invalidation_count += 1
        self._keys_invalidated += record.keys_invalidated
        self._roll(
            record.timestamp,
            "invalidate",
            record.invalidation_type,
            "",
            record.status,
            record.duration,
            0,
            record.keys_invalidated,
        )

    def _fold_saving(self, now, op_type, model, compute_seconds, prompt, completion, hit_seconds) -> None:
        # kind "saved": duration = compute seconds saved, bytes_in/out = prompt/completion tokens;
        # kind "hit_cost": duration = what those hits cost. The tier column carries the model.
        model = model[:MODEL_COLUMN]
        self._roll(now, "saved", op_type, model, "ok", compute_seconds, 0, prompt, completion)
        self._roll(now, "hit_cost", op_type, model, "ok", hit_seconds)
        totals = self.saved.setdefault((op_type, model), [0, 0.0, 0.0, 0, 0])
        totals[0] += 1
        totals[1] += compute_seconds
        totals[2] += hit_seconds
        totals[3] += prompt
        totals[4] += completion

    def _fold_count(self, name: str, n: int) -> None:
        self.counters[name] = self.counters.get(name, 0) + n
        self._pending_counters[name] = self._pending_counters.get(name, 0) + n


def _memory_moved(last: MemoryRecord, new: MemoryRecord) -> bool:
    """Whether a memory sample differs from the last shipped one by more than a small threshold."""
    for a, b in (
        (last.memory_entries, new.memory_entries),
        (last.memory_bytes, new.memory_bytes),
        (last.process_rss_bytes, new.process_rss_bytes),
        (last.redis_used_bytes, new.redis_used_bytes),
    ):
        if (a is None) != (b is None):
            return True
        if a is not None and abs(b - a) > MEMORY_CHANGE_RATIO * max(a, 1):
            return True
    return (last.memory_max_entries, last.memory_max_bytes) != (new.memory_max_entries, new.memory_max_bytes)
