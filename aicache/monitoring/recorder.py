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
series and, past ``ROLLUP_PRUNE_AT`` rollups, only those of the last ``retention_hours`` (what it
lets go is counted as ``dropped_pending``;
``tests/unit/monitoring/test_bounds.py::test_standalone_monitor_memory_is_bounded``). Slow events
for the database are capped at ``SLOW_EVENTS_PER_MINUTE`` per minute and action (the rest are
counted as ``dropped_slow_events``), and a memory sample is shipped only when a figure moved by
more than ``MEMORY_CHANGE_RATIO`` or ``MEMORY_HEARTBEAT_SECONDS`` passed, so an idle process ships
nothing (``tests/history/test_bounds.py::test_idle_process_ships_nothing``). Folding itself is
``aicache.monitoring.rollups.Folding``.
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
from aicache.monitoring.rollups import (  # noqa: F401 - the limits, re-exported for readers
    _LOOKUP,
    MEMORY_CHANGE_RATIO,
    MEMORY_HEARTBEAT_SECONDS,
    ROLLUP_PRUNE_AT,
    SLOW_EVENTS_PER_MINUTE,
    Drained,
    Folding,
    Rollup,
    RollupKey,
)

logger = logging.getLogger("aicache.monitoring")
F = TypeVar("F", bound=Callable[..., Any])
MAX_PENDING = 100_000  # records waiting to be folded; beyond it new records are dropped and counted
SETTLE_AT = 4096  # pending records that make the recording thread fold them itself


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


class CachePerformanceMonitor(Folding, Readings):
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
        # (operation, model) -> [hits, compute seconds saved, hit seconds, prompt, completion tokens]
        self.saved: dict[tuple[str, str], list] = {}
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
            # Coerced here, where a wrong type is one dropped record (logged by never_raises), not a
            # poisoned batch that makes the next drain raise.
            (
                self._fold_keygen,
                time.time(),
                float(duration),
                int(text_length),
                str(operation_type),
                additional_data,
            )
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
                str(operation),
                float(duration),
                bool(cache_hit),
                int(text_length),
                str(operation_type),
                str(tier),
                str(source),
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
                int(original_size),
                int(compressed_size),
                float(compression_time),
                str(operation_type),
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
    def record_saving(
        self,
        operation_type: str,
        model: str,
        compute_seconds: float,
        prompt_tokens: int,
        completion_tokens: int,
        hit_seconds: float,
    ) -> None:
        """A hit on an entry whose computing cost is known: that cost was saved (aicache.savings)."""
        self._enqueue(
            (
                self._fold_saving,
                time.time(),
                str(operation_type),
                str(model),
                float(compute_seconds),
                int(prompt_tokens),
                int(completion_tokens),
                float(hit_seconds),
            )
        )

    @never_raises
    def count(self, name: str, n: int = 1) -> None:
        """A named event counter (errors, single-flight waits, coalesced callers, drops)."""
        self._enqueue((self._fold_count, name, n))

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
