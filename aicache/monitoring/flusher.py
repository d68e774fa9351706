"""Ships drained monitoring data to the database through Celery, from its own sender thread.

Each process merges what its monitors drain into one pending batch and, every ``FLUSH_INTERVAL``
seconds or when the batch holds ``FLUSH_MAX_ROLLUPS`` rollups, seals it with a fresh batch id into
a bounded outbox (``FLUSH_BUFFER_BATCHES``; beyond it the oldest batches are dropped and counted, in
the next batch that gets through, in ``/metrics`` and in the stats) and wakes the sender thread,
which publishes one ``ingest_batch`` task per batch. Only that thread talks to the broker, and it
holds no lock while it does: the exporter, a ``/metrics`` scrape and the cache never wait on the
broker (``tests/history/test_flusher.py::test_a_hung_broker_blocks_neither_exporter_nor_scrape``).
At exit one bounded attempt is made (``EXIT_BUDGET_SECONDS`` in all;
``tests/integration/test_history_pipeline.py::test_process_exit_never_waits_on_the_broker``).

With no broker configured, or a transport that cannot be imported, history is off for the
process, with one warning (and the system check ``aicache.W010``), instead of a hang at every exit.

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
EXIT_BUDGET_SECONDS = 1.0
# what a failed publish may raise: broker unreachable or refusing, or its client library missing
DELIVERY_ERRORS = (KombuError, RedisError, OSError, ImportError)


def broker_problem() -> str | None:
    """Why this process cannot ship history through Celery, or None if it can. Looks at the
    Celery app that ``ingest_batch`` would use; imports the broker's transport, connects to
    nothing."""
    try:
        from celery import current_app
        from kombu import Connection
    except ImportError as exc:
        return f"Celery cannot be imported ({exc})"
    app_conf = current_app.conf
    if app_conf.task_always_eager:
        return None
    url = app_conf.broker_url
    if not url:
        return "no Celery broker is configured (no Celery app with a broker URL)"
    try:
        Connection(url).transport  # noqa: B018 - resolves and imports the transport and its client
    except ImportError as exc:
        return f"the Celery broker transport cannot be imported ({exc})"
    except (KeyError, ValueError, KombuError) as exc:
        return f"the Celery broker URL is not usable ({exc!r})"
    return None


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
    """An exporter sink. ``send`` publishes a payload and raises if the broker cannot take it.

    ``collect`` (any thread) only merges under a short lock; ``flush`` (the sender thread, or a
    caller that wants to wait) sends the outbox holding no lock but the one that keeps sends in
    order."""

    fork_safe = False  # holds this process's pending data: a forked child builds its own

    def __init__(self, interval: float, max_rollups: int, buffer_batches: int, send: Any = None) -> None:
        self.interval = interval
        self.max_rollups = max_rollups
        self.buffer_batches = buffer_batches
        self._send = send or _send_with_celery
        self._lock = threading.Lock()  # pending data and the outbox: held for merges only
        self._send_lock = threading.Lock()  # one sender at a time, batches in order
        self._reset_pending()
        self._outbox: deque[dict] = deque()
        self._last_flush = time.monotonic()
        self.dropped_batches = 0  # not yet reported in a delivered batch
        self.dropped_records = 0
        self.sent = 0
        self.failures = 0
        self.in_flight = False  # a publish is under way (tests stage a hung broker with it)
        self._monitor: CachePerformanceMonitor | None = None
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def _reset_pending(self) -> None:
        self._rollups: dict[tuple, Rollup] = {}
        self._slow: list[list] = []
        self._invalidations: list[list] = []
        self._memory: list[list] = []

    def __call__(self, monitor: CachePerformanceMonitor, drained: Drained) -> None:
        """Exporter sink: collect; when a batch is due, seal it and wake the sender thread."""
        if self.collect(monitor, drained):
            self.seal()
            self._kick()

    def collect(self, monitor: CachePerformanceMonitor, drained: Drained) -> bool:
        """Merge a drained batch into the pending one; True when it is due to be sent."""
        enabled = getattr(monitor, "history_enabled", None)
        if not (aicache_settings.HISTORY_ENABLED if enabled is None else enabled):
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

    def _payload(self) -> dict | None:
        """The pending data as one batch (None when there is nothing: no empty batches)."""
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

    def seal(self) -> None:
        """Move what is pending into the outbox as one batch. The outbox keeps FLUSH_BUFFER_BATCHES
        batches that the broker refused, plus the newest one until it has been tried."""
        with self._lock:
            self._last_flush = time.monotonic()
            payload = self._payload()
            if payload is not None:
                self._outbox.append(payload)
            self._trim(self.buffer_batches + 1)

    def _trim(self, keep: int) -> None:
        """Drop (and count) the oldest batches beyond ``keep``. Callers hold ``self._lock``."""
        while len(self._outbox) > keep:
            lost = self._outbox.popleft()
            self._count_drop(1, sum(len(lost[k]) for k in ("rollups", "slow", "invalidations", "memory")))

    def flush(self, timeout: float | None = None) -> bool:
        """Seal what is pending and send the outbox from this thread, oldest first; keep what the
        broker refuses. With ``timeout``, give up (False) if another send holds the line longer."""
        self.seal()
        if not self._send_lock.acquire(timeout=-1 if timeout is None else max(timeout, 0.0)):
            return False
        try:
            while True:
                with self._lock:
                    if not self._outbox:
                        return True
                    batch = self._outbox[0]
                    batch["dropped"] = {"batches": self.dropped_batches, "records": self.dropped_records}
                self.in_flight = True
                try:
                    self._send(batch)
                except DELIVERY_ERRORS as exc:
                    self.failures += 1
                    with self._lock:
                        self._trim(self.buffer_batches)
                    if self.failures == 1 or self.failures % 100 == 0:
                        logger.warning(
                            "aicache: monitoring batch not delivered (%s); %d waiting", exc, len(self._outbox)
                        )
                    return False
                finally:
                    self.in_flight = False
                with self._lock:
                    if self._outbox and self._outbox[0] is batch:
                        self._outbox.popleft()
                    self.sent += 1
                    self.dropped_batches = self.dropped_records = 0
        finally:
            self._send_lock.release()

    def _kick(self) -> None:
        """Wake the sender thread (started on first use)."""
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="aicache-history", daemon=True)
            self._thread.start()
        self._wake.set()

    def _run(self) -> None:
        while True:
            self._wake.wait()
            self._wake.clear()
            try:
                self.flush()
            except Exception:
                # Broad on purpose: a sender that raised something unforeseen (a custom send, a
                # serializer) must log and live on, or history would stop without a word.
                self.failures += 1
                logger.exception("aicache: monitoring sender failed; it keeps running")

    def flush_at_exit(self, budget: float = EXIT_BUDGET_SECONDS) -> bool:
        """One bounded attempt to send what is left: at most ``budget`` seconds in all, however
        the broker behaves (the send runs on a daemon thread that is abandoned if it hangs)."""
        done = threading.Event()

        def attempt() -> None:
            if self.flush(timeout=budget):
                done.set()

        sender = threading.Thread(target=attempt, name="aicache-history-exit", daemon=True)
        sender.start()
        sender.join(budget)
        return done.is_set()

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


_warned: set[str] = set()


def install(config: Any) -> CeleryFlusher | None:
    """Add the process's flusher to the exporter (once per process; again after a fork). With no
    usable broker, history stays off for this process, with one warning."""
    global _flusher
    from aicache.monitoring.exporter import get_exporter

    with _flusher_lock:
        if _flusher is None:
            problem = broker_problem()
            if problem is not None:
                if problem not in _warned:
                    _warned.add(problem)
                    logger.warning("aicache: monitoring history is off in this process: %s.", problem)
                return None
            _flusher = CeleryFlusher(
                config["FLUSH_INTERVAL"], config["FLUSH_MAX_ROLLUPS"], config["FLUSH_BUFFER_BATCHES"]
            )
        get_exporter().add_sink(_flusher)
        return _flusher


def get_flusher() -> CeleryFlusher | None:
    return _flusher


def _at_exit() -> None:
    """Collect what the monitors hold and make one bounded attempt to ship it."""
    from aicache.monitoring.exporter import get_exporter

    if _flusher is not None:
        get_exporter().flush_now(ship=False)
        if not _flusher.flush_at_exit() and _flusher.waiting:
            logger.warning(
                "aicache: %d monitoring batch(es) not delivered at exit (broker unreachable or slow)",
                _flusher.waiting,
            )


def _after_fork() -> None:
    global _flusher, _flusher_lock
    _flusher, _flusher_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_after_fork)
atexit.register(_at_exit)
