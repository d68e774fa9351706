"""One background thread per process that ships what the monitors recorded.

Every ``METRICS_EXPORT_SECONDS`` (the smallest of the caches that registered) it samples each
memory tier (at most once per that cache's ``MEMORY_SAMPLE_SECONDS``), drains each monitor, and
hands the drained figures to every sink: Prometheus instruments always, and whatever else
registered (the Celery flusher of the monitoring history). Sinks only merge in memory: the flusher
ships from its own thread, so the exporter lock is never held across network I/O and
:meth:`Exporter.flush_now`, which the ``/metrics`` view calls so that a scrape sees up-to-date
figures, never waits on the broker
(``tests/history/test_flusher.py::test_a_hung_broker_blocks_neither_exporter_nor_scrape``).
"""

from __future__ import annotations

import atexit
import logging
import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aicache.monitoring.recorder import CachePerformanceMonitor
from aicache.monitoring.rollups import Drained

logger = logging.getLogger("aicache.monitoring")

Sink = Callable[[CachePerformanceMonitor, Drained], None]


def process_rss_bytes() -> int:
    try:
        with open("/proc/self/statm", encoding="ascii") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # peak, where statm is missing


@dataclass
class _Watched:
    monitor: CachePerformanceMonitor
    memory: Any
    sample_seconds: float
    last_sample: float = 0.0


class Exporter:
    def __init__(self) -> None:
        self._watched: list[_Watched] = []
        self._sinks: list[Sink] = []
        self._lock = threading.Lock()  # one flush at a time
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self.interval: float | None = None  # METRICS_EXPORT_SECONDS: the smallest registered
        self.sink_failures = 0

    def register(self, monitor: CachePerformanceMonitor, memory: Any, config: Any) -> None:
        with self._lock:
            self._watched.append(_Watched(monitor, memory, config.memory_sample_seconds))
            seconds = config.metrics_export_seconds
            self.interval = seconds if self.interval is None else min(self.interval, seconds)
        self._ensure_thread()

    def add_sink(self, sink: Sink) -> None:
        with self._lock:
            if sink not in self._sinks:
                self._sinks.append(sink)

    def _ensure_thread(self) -> None:
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="aicache-exporter", daemon=True)
            self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval or 1.0):
            self.flush_now()

    def flush_now(self, force_memory_sample: bool = False, ship: bool = True) -> None:
        """Drain every monitor into every sink. Sinks merge in memory and never do I/O here;
        ``ship=False`` (the /metrics view, exit) hands sinks that ship over the network (they have
        ``collect``) the data without even waking their sender: the exporter thread does that."""
        with self._lock:
            now = time.monotonic()
            for watched in self._watched:
                if force_memory_sample or now - watched.last_sample >= watched.sample_seconds:
                    watched.last_sample = now
                    self._sample(watched)
                drained = watched.monitor.drain()
                for sink in self._sinks:
                    try:
                        if not ship and hasattr(sink, "collect"):
                            sink.collect(watched.monitor, drained)
                        else:
                            sink(watched.monitor, drained)
                    except Exception:
                        # Broad on purpose: sinks are plug-ins (Prometheus, the Celery flusher, a
                        # user's); one that breaks must not stop the others or kill this thread.
                        self.sink_failures += 1
                        logger.exception("aicache monitoring sink %r failed", sink)

    @staticmethod
    def _sample(watched: _Watched) -> None:
        stats = watched.memory.stats()
        watched.monitor.record_memory_usage(
            stats.entries, stats.bytes, stats.max_entries, stats.max_bytes, None, process_rss_bytes()
        )

    def stop(self) -> None:
        self._stop.set()


exporter = Exporter()


def _after_fork() -> None:
    """A forked child has no exporter thread and its own monitors: start from nothing."""
    global exporter
    sinks = exporter._sinks
    exporter = Exporter()
    exporter._sinks = [sink for sink in sinks if getattr(sink, "fork_safe", True)]


def get_exporter() -> Exporter:
    return exporter


os.register_at_fork(after_in_child=_after_fork)
atexit.register(lambda: exporter.flush_now(ship=False))
