"""Ships drained monitoring data to the database through Celery, from the exporter thread.

Each process merges what its monitors drain into one pending batch and, every ``FLUSH_INTERVAL``
seconds or when the batch holds ``FLUSH_MAX_ROLLUPS`` rollups, seals it with a fresh batch id and
publishes one ``ingest_batch`` task. If the broker cannot take it, the batch waits in a bounded
outbox (``FLUSH_BUFFER_BATCHES``); beyond that the oldest batches are dropped, and the drop is
counted (in the next batch that gets through, in ``/metrics`` and in the stats). Nothing here runs
on a request thread, and a broker outage costs the cache nothing.

Payload (compact, JSON-serialisable)::

    {"batch_id", "process", "sent_at",
     "rollups": [[minute_ts, kind, operation, tier, outcome, count, total, min, max, sketch,
                  text_length, text_length_max, bytes_in, bytes_out, ratio_sketch], ...],
     "slow": [[ts, action, operation, tier, source, duration, text_length, cache_hit], ...],
     "invalidations": [[ts, pattern, keys, duration, type, context, status, reason], ...],
     "memory": [[ts, entries, bytes, max_entries, max_bytes, redis_used, rss], ...],
     "dropped": {"batches": n, "records": n}}
"""

from __future__ import annotations

import atexit
import logging
import os
import socket
import threading
import time
import uuid
from collections import deque
from typing import Any

from kombu.exceptions import KombuError
from redis.exceptions import RedisError

from aicache.conf import aicache_settings
from aicache.monitoring.recorder import CachePerformanceMonitor
from aicache.monitoring.rollups import Drained, Rollup
from aicache.monitoring.sketch import merge

logger = logging.getLogger("aicache.monitoring")


def process_name() -> str:
    return f"{socket.gethostname()}:{os.getpid()}"


def _merge_rollup(into: Rollup, other: Rollup) -> None:
    into.count += other.count
    into.total += other.total
    into.min = min(into.min, other.min)
    into.max = max(into.max, other.max)
    merge(into.sketch, other.sketch)
    into.text_length += other.text_length
    into.text_length_max = max(into.text_length_max, other.text_length_max)
    into.bytes_in += other.bytes_in
    into.bytes_out += other.bytes_out
    merge(into.ratio_sketch, other.ratio_sketch)


class CeleryFlusher:
    """An exporter sink. ``send`` publishes a payload and raises if the broker cannot take it."""

    fork_safe = False  # holds this process's pending data: a forked child builds its own

    def __init__(self, interval: float, max_rollups: int, buffer_batches: int, send: Any = None) -> None:
        self.interval = interval
        self.max_rollups = max_rollups
        self.buffer_batches = buffer_batches
        self._send = send or _send_with_celery
        self._lock = threading.Lock()
        self._reset_pending()
        self._outbox: deque[dict] = deque()
        self._last_flush = time.monotonic()
        self.dropped_batches = 0  # not yet reported in a delivered batch
        self.dropped_records = 0
        self.sent = 0
        self.failures = 0
        self._monitor: CachePerformanceMonitor | None = None

    def _reset_pending(self) -> None:
        self._rollups: dict[tuple, Rollup] = {}
        self._slow: list[list] = []
        self._invalidations: list[list] = []
        self._memory: list[list] = []

    def __call__(self, monitor: CachePerformanceMonitor, drained: Drained) -> None:
        """Exporter sink: collect, and send when a batch is due."""
        if self.collect(monitor, drained):
            self.flush()

    def collect(self, monitor: CachePerformanceMonitor, drained: Drained) -> bool:
        """Merge a drained batch into the pending one; True when it is due to be sent."""
        if not aicache_settings.HISTORY_ENABLED:
            return False
        with self._lock:
            self._monitor = monitor
            for key, rollup in drained.rollups.items():
                mine = self._rollups.get(key)
                if mine is None:
                    self._rollups[key] = rollup
                else:
                    _merge_rollup(mine, rollup)
            for name, n in drained.counters.items():
                key = (int(time.time()) // 60 * 60, "counter", name[:64], "", "")
                self._rollups.setdefault(key, Rollup()).count += n
            self._slow.extend(
                [
                    r.timestamp,
                    r.operation,
                    r.operation_type,
                    r.tier,
                    r.source,
                    r.duration,
                    r.text_length,
                    r.cache_hit,
                ]
                for r in drained.slow
            )
            self._invalidations.extend(
                [
                    r.timestamp,
                    r.pattern[:300],
                    r.keys_invalidated,
                    r.duration,
                    r.invalidation_type,
                    r.operation_context[:300],
                    r.status,
                    r.reason[:200],
                ]
                for r in drained.invalidations
            )
            self._memory.extend(
                [
                    r.timestamp,
                    r.memory_entries,
                    r.memory_bytes,
                    r.memory_max_entries,
                    r.memory_max_bytes,
                    r.redis_used_bytes,
                    r.process_rss_bytes,
                ]
                for r in drained.memory
            )
            return (
                time.monotonic() - self._last_flush >= self.interval or len(self._rollups) >= self.max_rollups
            )

    def _seal(self) -> dict | None:
        if not (self._rollups or self._slow or self._invalidations or self._memory):
            return None
        payload = {
            "batch_id": uuid.uuid4().hex,
            "process": process_name(),
            "sent_at": time.time(),
            "rollups": [
                [
                    k[0],
                    k[1],
                    k[2],
                    k[3],
                    k[4],
                    r.count,
                    r.total,
                    r.min if r.count else None,
                    r.max,
                    r.sketch,
                    r.text_length,
                    r.text_length_max,
                    r.bytes_in,
                    r.bytes_out,
                    r.ratio_sketch,
                ]
                for k, r in self._rollups.items()
            ],
            "slow": self._slow,
            "invalidations": self._invalidations,
            "memory": self._memory,
        }
        self._reset_pending()
        return payload

    def flush(self) -> None:
        """Seal what is pending and send the outbox, oldest first; keep what the broker refuses,
        dropping (and counting) the oldest batches beyond FLUSH_BUFFER_BATCHES."""
        with self._lock:
            self._last_flush = time.monotonic()
            payload = self._seal()
            if payload is not None:
                self._outbox.append(payload)
            while self._outbox:
                batch = self._outbox[0]
                batch["dropped"] = {"batches": self.dropped_batches, "records": self.dropped_records}
                try:
                    self._send(batch)
                except (KombuError, RedisError, OSError) as exc:  # broker unreachable or refusing
                    self.failures += 1
                    if self.failures == 1 or self.failures % 100 == 0:
                        logger.warning(
                            "aicache: monitoring batch not delivered (%s); %d waiting", exc, len(self._outbox)
                        )
                    break
                self._outbox.popleft()
                self.sent += 1
                self.dropped_batches = self.dropped_records = 0
            while len(self._outbox) > self.buffer_batches:
                lost = self._outbox.popleft()
                self._count_drop(1, sum(len(lost[k]) for k in ("rollups", "slow", "invalidations", "memory")))

    def _count_drop(self, batches: int, records: int) -> None:
        self.dropped_batches += batches
        self.dropped_records += records
        if self._monitor is not None:
            self._monitor.count("dropped_batches", batches)
            self._monitor.count("dropped_records", records)

    @property
    def waiting(self) -> int:
        return len(self._outbox)


def _send_with_celery(payload: dict) -> None:
    from aicache.monitoring.tasks import ingest_batch

    ingest_batch.apply_async(args=[payload], retry=False)


_flusher: CeleryFlusher | None = None
_flusher_lock = threading.Lock()


def install(config: Any) -> CeleryFlusher:
    """Add the process's flusher to the exporter (once per process; again after a fork)."""
    global _flusher
    from aicache.monitoring.exporter import get_exporter

    with _flusher_lock:
        if _flusher is None:
            _flusher = CeleryFlusher(
                config["FLUSH_INTERVAL"], config["FLUSH_MAX_ROLLUPS"], config["FLUSH_BUFFER_BATCHES"]
            )
        get_exporter().add_sink(_flusher)
        return _flusher


def get_flusher() -> CeleryFlusher | None:
    return _flusher


def _at_exit() -> None:
    from aicache.monitoring.exporter import get_exporter

    if _flusher is not None:
        get_exporter().flush_now()
        _flusher.flush()


def _after_fork() -> None:
    global _flusher, _flusher_lock
    _flusher, _flusher_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_after_fork)
atexit.register(_at_exit)
