"""Per-process state of a cache, shared by all threads: memory tier, circuit breaker, counters.

Django builds one backend instance per thread; everything here must exist once per process and
cache instead. A forked child (gunicorn preload, Celery prefork) starts with a fresh registry: a
copied memory tier could not be kept coherent, and a copied lock could be held forever.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from aicache.coherence import Coherence
from aicache.instrument import NullMonitor
from aicache.memory import MemoryTier


class CircuitBreaker:
    """Stops calling a dead Redis: opens after ``failures`` consecutive errors, for ``reset``
    seconds; then lets calls through again (half-open) and closes on the first success."""

    def __init__(self, failures: int, reset: float) -> None:
        self.threshold = failures
        self.reset = reset
        self._failures = 0
        self._open_until = 0.0
        self._lock = threading.Lock()
        self.opened = 0  # how many times it opened (for monitoring)

    def allow(self) -> bool:
        return self._open_until <= time.monotonic()

    def success(self) -> None:
        if self._failures:
            with self._lock:
                self._failures = 0
                self._open_until = 0.0

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._failures >= self.threshold:
                if self._open_until <= time.monotonic():
                    self.opened += 1
                self._open_until = time.monotonic() + self.reset


class ProcessState:
    """What one process keeps per cache: shared by every thread's backend instance."""

    def __init__(
        self, memory: MemoryTier, breaker: CircuitBreaker, coherence: Coherence, monitor: Any
    ) -> None:
        self.memory = memory
        self.breaker = breaker
        self.coherence = coherence
        self.monitor = monitor
        self._errors: dict[str, int] = {}
        self._counters: dict[str, int] = {}
        self._local = threading.local()
        self._last_logged: dict[str, float] = {}
        self._lock = threading.Lock()

    def count_error(self, kind: str, action: str = "") -> None:
        with self._lock:
            self._errors[kind] = self._errors.get(kind, 0) + 1
        self._local.faults = getattr(self._local, "faults", 0) + 1
        self._local.last = kind
        self.monitor.count(f"error:{kind}:{action}")

    def thread_faults(self) -> int:
        """Faults counted by the calling thread (to tell whether one call met a fault)."""
        return getattr(self._local, "faults", 0)

    def thread_last_fault(self) -> str:
        return getattr(self._local, "last", "")

    def error_snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._errors)

    def count(self, kind: str, n: int = 1) -> None:
        with self._lock:
            self._counters[kind] = self._counters.get(kind, 0) + n
        self.monitor.count(kind, n)

    def counter_snapshot(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)

    def should_log(self, kind: str, every: float) -> bool:
        """Rate limit for warnings that could otherwise repeat on every request."""
        now = time.monotonic()
        with self._lock:
            last = self._last_logged.get(kind)
            if last is not None and now - last < every:
                return False
            self._last_logged[kind] = now
            return True


_registry: dict[tuple[Any, ...], ProcessState] = {}
_registry_lock = threading.Lock()
_generation = 0  # bumped by every reset, so holders of a stale state notice


def generation() -> int:
    return _generation


def get_process_state(
    identity: tuple[Any, ...],
    max_entries: int,
    max_bytes: int,
    failures: int,
    reset: float,
    coherence_mode: str = "local",
    monitor_factory: Any = None,
) -> ProcessState:
    """The one :class:`ProcessState` for ``identity`` (server + key prefix) in this process."""
    state = _registry.get(identity)
    if state is None:
        with _registry_lock:
            state = _registry.get(identity)
            if state is None:
                memory = MemoryTier(max_entries, max_bytes)
                state = ProcessState(
                    memory,
                    CircuitBreaker(failures, reset),
                    Coherence(memory, str(identity[-1]), coherence_mode),
                    monitor_factory(memory) if monitor_factory else NullMonitor(),
                )
                _registry[identity] = state
    return state


def reset_process_state() -> None:
    """Forget every tier and breaker (tests; and a forked child, whose copy is stale)."""
    global _registry_lock, _generation
    _registry_lock = threading.Lock()  # another thread may have held it at fork time
    for state in _registry.values():
        state.coherence.stop()  # in a forked child the thread is gone already; harmless
    _registry.clear()
    _generation += 1


os.register_at_fork(after_in_child=reset_process_state)
