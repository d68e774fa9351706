"""``CachePerformanceMonitor``: the in-process recorder every cache action reports to.

Recording is O(1) under one lock and never raises into the cache path. Each record goes two ways:

- into bounded deques of recent measurements (``max_measurements`` per kind, ``retention_hours``),
  from which the seed-compatible read methods compute their figures;
- into per-minute rollups keyed by (minute, kind, operation, tier, outcome) holding count, sum,
  min, max, a mergeable latency sketch and byte/length sums. ``drain()`` hands them to the
  exporter thread (Prometheus, and the database via Celery), so nothing heavier than a dict update
  happens on the request path.

Hot-path records are kept as tuples (a frozen dataclass costs about a microsecond to build); the
typed records of ``aicache.monitoring.events`` are made when someone reads.

Bounded without an exporter too: every ``SETTLE_AT`` pending records the recording thread folds
them itself, and a monitor nobody drains keeps at most ``max_measurements`` of each exported
series and its rollups for ``retention_hours`` (the excess is counted as ``dropped_pending``;
``tests/unit/monitoring/test_bounds.py::test_standalone_monitor_memory_is_bounded``). Slow events
for the database are capped at ``SLOW_EVENTS_PER_MINUTE`` per minute and action (the rest are
counted as ``dropped_slow_events``), and a memory sample is shipped only when a figure moved by
more than ``MEMORY_CHANGE_RATIO`` or ``MEMORY_HEARTBEAT_SECONDS`` passed, so an idle process ships
nothing (``test_bounds.py::test_idle_process_ships_nothing``).
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any, TypeVar

from aicache import conf
from aicache.monitoring.events import (
    CacheOperationRecord,
    InvalidationRecord,
    MemoryRecord,
)
from aicache.monitoring.readings import Readings
from aicache.monitoring.rollups import _HIT_OUTCOMES, _LOOKUP, Drained, Rollup, RollupKey, _add
from aicache.monitoring.sketch import bucket_of

logger = logging.getLogger("aicache.monitoring")
F = TypeVar("F", bound=Callable[..., Any])
MAX_PENDING = 100_000  # records waiting to be folded; beyond it new records are dropped and counted
SETTLE_AT = 4096  # pending records that make the recording thread fold them itself
SLOW_EVENTS_PER_MINUTE = 20  # slow operations kept for the database, per minute and action
MEMORY_CHANGE_RATIO = 0.05  # a memory sample is shipped when a figure moved more than this...
MEMORY_HEARTBEAT_SECONDS = 300.0  # ...or this long after the last shipped one
ROLLUP_PRUNE_AT = 2048  # undrained rollups beyond this: minutes older than the retention go


def never_raises(method: F) -> F:
    """The monitoring fail-open boundary: a broken recorder logs once and the cache keeps working."""

    @functools.wraps(method)
    def wrapper(self: CachePerformanceMonitor, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except Exception:
            # Deliberately broad: this is the monitoring's one fail-open boundary. Whatever broke
            # in here, the cache call that reported must go on.
            self.failures += 1
            if not self._failure_logged:
                self._failure_logged = True
                logger.exception("aicache monitoring failed to record; the cache keeps working")
            return None

    return wrapper  # type: ignore[return-value]


class CachePerformanceMonitor(Readings):
    def __init__(
        self,
        retention_hours: float | None = None,
        max_measurements: int | None = None,
        key_generation_threshold: float | None = None,
        cache_operation_threshold: float | None = None,
        invalidation_rate_warning_per_hour: float | None = None,
        invalidation_rate_critical_per_hour: float | None = None,
        memory_warning_threshold_bytes: int | None = None,
        name: str = "",
    ) -> None:
        """Every keyword defaults to its aicache setting (MONITOR_RETENTION_HOURS, ...)."""
        given = {
            "MONITOR_RETENTION_HOURS": retention_hours,
            "MONITOR_MAX_MEASUREMENTS": max_measurements,
            "KEY_GENERATION_THRESHOLD": key_generation_threshold,
            "CACHE_OPERATION_THRESHOLD": cache_operation_threshold,
            "INVALIDATION_RATE_WARNING_PER_HOUR": invalidation_rate_warning_per_hour,
            "INVALIDATION_RATE_CRITICAL_PER_HOUR": invalidation_rate_critical_per_hour,
            "MEMORY_WARNING_THRESHOLD_BYTES": memory_warning_threshold_bytes,
        }
        raw = {**conf.merged(), **{k: v for k, v in given.items() if v is not None}}
        if problems := [p for p in conf.validate_monitoring(raw) if p.setting in given]:
            raise ValueError("; ".join(p.message for p in problems))
        self.retention_hours = raw["MONITOR_RETENTION_HOURS"]
        self.max_measurements = raw["MONITOR_MAX_MEASUREMENTS"]
        self.key_generation_threshold = raw["KEY_GENERATION_THRESHOLD"]
        self.cache_operation_threshold = raw["CACHE_OPERATION_THRESHOLD"]
        self.invalidation_rate_warning_per_hour = raw["INVALIDATION_RATE_WARNING_PER_HOUR"]
        self.invalidation_rate_critical_per_hour = raw["INVALIDATION_RATE_CRITICAL_PER_HOUR"]
        self.memory_warning_threshold_bytes = raw["MEMORY_WARNING_THRESHOLD_BYTES"]
        self.name = name
        self.failures = 0
        self._failure_logged = False
        self._lock = threading.Lock()  # guards the pending list only: held for an append
        self._state_lock = threading.RLock()  # guards everything folded
        self._pending: list[tuple] = []
        self.dropped = 0
        self.history_enabled: bool | None = None  # set by attach(): this cache's HISTORY_ENABLED
        self._slow_logged = {"key_generation": False, "cache_operation": False}
        self._slow_minute = -1
        self._slow_counts: dict[str, int] = {}
        self._last_shipped_memory: MemoryRecord | None = None
        self._new_series()
        self._reset_locked()

    def _new_series(self) -> None:
        self._rollups: dict[RollupKey, Rollup] = {}
        self._pending_invalidations: list[InvalidationRecord] = []
        self._pending_memory: list[MemoryRecord] = []
        self._pending_slow: list[CacheOperationRecord] = []
        self._pending_counters: dict[str, int] = {}

    def _reset_locked(self) -> None:
        n = self.max_measurements
        self._keygen: deque[tuple] = deque(maxlen=n)
        self._ops: deque[tuple] = deque(maxlen=n)
        self._compression: deque[tuple] = deque(maxlen=n)
        self._memory: deque[MemoryRecord] = deque(maxlen=n)
        self._invalidations: deque[InvalidationRecord] = deque(maxlen=n)
        self._hits = self._misses = self._operations = 0
        self._invalidation_count = self._keys_invalidated = 0
        self.counters: dict[str, int] = {}
        # Since the start or the last reset, for summary(): every figure from the same window.
        self._reset_at = time.time()
        self._gets: dict[tuple[str, str], list] = {}  # (tier, outcome) -> [count, seconds]
        self._op_seconds = 0.0
        self._compressed = [0, 0]  # bytes in, bytes out

    # ------------------------------------------------------------------ the original's counters
    # Read as attributes, as in the original; each read folds what is pending first.
    def _settled(self, name: str) -> int:
        with self._state_lock:
            self._settle()
            return getattr(self, name)

    cache_hits = property(lambda self: self._settled("_hits"))
    cache_misses = property(lambda self: self._settled("_misses"))
    total_operations = property(lambda self: self._settled("_operations"))
    total_cache_operations = total_operations
    total_invalidations = property(lambda self: self._settled("_invalidation_count"))
    total_keys_invalidated = property(lambda self: self._settled("_keys_invalidated"))

    # ------------------------------------------------------------------ recording (hot path)
    # A record method only timestamps its arguments and appends them, with the handler that will
    # fold them in, to a pending list under a short lock. Folding (deques, counters, rollups,
    # sketches) happens in _settle(): on the exporter thread every second, or when someone reads.

    def _enqueue(self, item: tuple) -> None:
        with self._lock:
            pending = self._pending
            if len(pending) < MAX_PENDING:
                pending.append(item)
                if len(pending) < SETTLE_AT:
                    return
            else:
                self.dropped += 1
        # Nobody drained in time (a standalone monitor, or a burst): fold here, unless a reader
        # or the exporter is folding right now.
        if self._state_lock.acquire(blocking=False):
            try:
                self._settle()
            finally:
                self._state_lock.release()

    @never_raises
    def record_lookup(
        self,
        operation_type: str,
        tier: str,
        source: str,
        duration: float,
        keygen: float | None,
        text_length: int,
    ) -> None:
        """A get and its key generation in one record (the backend's hot path)."""
        self._enqueue((_LOOKUP, time.time(), operation_type, tier, source, duration, keygen, text_length))

    @never_raises
    def record_key_generation_time(
        self, duration: float, text_length: int, operation_type: str = "", additional_data: dict | None = None
    ) -> None:
        self._enqueue(
            (self._fold_keygen, time.time(), duration, text_length, operation_type, additional_data)
        )

    @never_raises
    def record_cache_operation_time(
        self,
        operation: str,
        duration: float,
        cache_hit: bool,
        text_length: int = 0,
        additional_data: dict | None = None,
        *,
        operation_type: str = "",
        tier: str = "",
        source: str = "",
        success: bool = True,
    ) -> None:
        """One cache action; only a ``get`` counts towards hits and misses (``cache_hit``).
        ``success`` says whether the action worked (a write that Redis refused: False)."""
        self._enqueue(
            (
                self._fold_op,
                time.time(),
                operation,
                duration,
                bool(cache_hit),
                text_length,
                operation_type,
                tier,
                source,
                additional_data,
                bool(success),
            )
        )

    @never_raises
    def record_compression_ratio(
        self, original_size: int, compressed_size: int, compression_time: float, operation_type: str = ""
    ) -> None:
        self._enqueue(
            (
                self._fold_compression,
                time.time(),
                original_size,
                compressed_size,
                compression_time,
                operation_type,
            )
        )

    @never_raises
    def record_memory_usage(
        self,
        memory_entries: int,
        memory_bytes: int,
        memory_max_entries: int = 0,
        memory_max_bytes: int = 0,
        redis_used_bytes: int | None = None,
        process_rss_bytes: int | None = None,
    ) -> None:
        record = MemoryRecord(
            time.time(),
            memory_entries,
            memory_bytes,
            memory_max_entries,
            memory_max_bytes,
            redis_used_bytes,
            process_rss_bytes,
        )
        self._enqueue((self._fold_memory, record))

    @never_raises
    def record_invalidation_event(
        self,
        pattern: str,
        keys_invalidated: int,
        duration: float,
        invalidation_type: str = "manual",
        operation_context: str = "",
        additional_data: dict | None = None,
        *,
        status: str = "success",
        reason: str = "",
    ) -> None:
        record = InvalidationRecord(
            time.time(),
            pattern,
            keys_invalidated,
            duration,
            invalidation_type,
            operation_context,
            status,
            reason,
            additional_data,
        )
        self._enqueue((self._fold_invalidation, record))

    @never_raises
    def count(self, name: str, n: int = 1) -> None:
        """A named event counter (errors, single-flight waits, coalesced callers, drops)."""
        self._enqueue((self._fold_count, name, n))

    # ------------------------------------------------------------------ folding (off the hot path)
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
            if duration > op_threshold and self._keep_slow(now, "get"):
                self._pending_slow.append(
                    CacheOperationRecord(
                        now, "get", duration, bool(source), text_length, op_type, tier, source
                    )
                )
            if (duration > op_threshold) != slow_logged["cache_operation"]:
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
        self._note_slow("key_generation", duration, self.key_generation_threshold, "key generation")

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
        self._note_slow("cache_operation", duration, self.cache_operation_threshold, f"cache {operation}")

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

    def _fold_count(self, name: str, n: int) -> None:
        self.counters[name] = self.counters.get(name, 0) + n
        self._pending_counters[name] = self._pending_counters.get(name, 0) + n

    # ------------------------------------------------------------------ export
    def attach(self, memory: Any, config: Any) -> None:
        """Called by the cache that owns this monitor: export from the background thread, and
        ship history through Celery when the monitoring app is installed and HISTORY_ENABLED."""
        from django.apps import apps

        from aicache.monitoring.exporter import get_exporter

        self.history_enabled = bool(getattr(config, "history_enabled", conf.merged()["HISTORY_ENABLED"]))
        if self.history_enabled and apps.is_installed("aicache.monitoring"):
            from aicache.monitoring import flusher

            flusher.install(conf.merged())
        get_exporter().register(self, memory, config)

    def drain(self) -> Drained:
        with self._state_lock:
            self._settle()
            out = Drained(
                self._rollups,
                self._pending_invalidations,
                self._pending_memory,
                self._pending_slow,
                self._pending_counters,
            )
            self._new_series()
        return out

    def reset_stats(self) -> None:
        """Zero the totals and forget the recent measurements (what awaits export is kept)."""
        with self._state_lock:
            self._settle()
            self._reset_locked()


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
