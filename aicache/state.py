"""Per-process state of a cache, shared by all threads: memory tier, coherence listener, circuit
breaker, in-process flights, counters.

Django builds one backend instance per thread; everything here must exist once per process and
cache instead. A forked child (gunicorn preload, Celery prefork) starts with a fresh registry: a
copied memory tier could not be kept coherent, and a copied lock could be held forever.
"""

from __future__ import annotations

import os
import threading
import time
from typing import Any

from aicache.coherence import CoherentTier
from aicache.instrument import NullMonitor
from aicache.listener import Listener
from aicache.memory import MemoryTier
from aicache.namespace import Namespace
from aicache.singleflight import Flights

#: The faults ``error_counts()`` always reports (README's API table).
ERROR_KINDS = (
    "unreachable",
    "redis_error",
    "corrupt_entry",
    "forged_entry",
    "unknown_dictionary",
    "circuit_open",
)


class CircuitBreaker:
    """Stops calling a dead Redis: opens after ``failures`` consecutive unreachable errors, for
    ``reset`` seconds; then admits exactly one probe call (half-open) while every other caller is
    refused, and closes on the probe's success or re-opens on its failure
    (test_single_flight.py::test_half_open_breaker_admits_one_probe,
    test_memory.py::test_circuit_breaker_opens_at_the_threshold_and_probes_once)."""

    def __init__(self, failures: int, reset: float) -> None:
        self.threshold = failures
        self.reset = reset
        self._failures = 0
        self._open_until = 0.0
        self._probing = False
        self._lock = threading.Lock()
        self.opened = 0  # how many times it opened (for monitoring)

    @property
    def state(self) -> str:
        if self._open_until == 0.0:
            return "closed"
        return "half-open" if self._probing or self._open_until <= time.monotonic() else "open"

    def allow(self) -> bool:
        if self._open_until == 0.0:  # closed: the hot path is one attribute read
            return True
        with self._lock:
            if self._open_until == 0.0:
                return True
            if self._probing or self._open_until > time.monotonic():
                return False
            self._probing = True  # this caller is the probe; the rest wait for its outcome
            return True

    def would_allow(self) -> bool:
        """What :meth:`allow` would answer, without taking the half-open probe."""
        return self._open_until == 0.0 or (not self._probing and self._open_until <= time.monotonic())

    def success(self) -> None:
        if self._failures or self._open_until:
            with self._lock:
                self._failures = 0
                self._open_until = 0.0
                self._probing = False

    def failure(self) -> None:
        with self._lock:
            self._failures += 1
            if self._probing or self._failures >= self.threshold:
                if self._open_until == 0.0 or self._probing:
                    self.opened += 1
                self._open_until = time.monotonic() + self.reset
                self._probing = False

    def release(self) -> None:
        """The probe ended without a verdict (not a Redis error): let the next caller probe."""
        if self._probing:
            with self._lock:
                self._probing = False


class ProcessState:
    """What one process keeps per cache: shared by every thread's backend instance."""

    def __init__(
        self,
        memory: MemoryTier,
        breaker: CircuitBreaker,
        coherence: CoherentTier,
        monitor: Any,
        listener: Listener | None = None,
    ) -> None:
        self.memory = memory
        self.breaker = breaker
        self.coherence = coherence
        self.listener = listener
        self.monitor = monitor
        self.flights = Flights()
        self.redis_version: tuple[int, ...] | None = None
        self._errors: dict[str, int] = {}
        self._counters: dict[str, int] = {}
        self._local = threading.local()
        self._last_logged: dict[str, float] = {}
        self._lock = threading.Lock()

    def begin_call(self) -> None:
        """A public call starts: it has met no Redis fault yet."""
        self._local.unreachable = False

    def call_unreachable(self) -> bool:
        """True once this thread's current call met an unreachable Redis: the rest of the call
        skips Redis, so one call never waits longer than one socket timeout."""
        return getattr(self._local, "unreachable", False)

    def mark_unreachable(self) -> None:
        self._local.unreachable = True

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
        """Every fault kind, zero when none happened, so callers can index any of them."""
        with self._lock:
            return {**dict.fromkeys(ERROR_KINDS, 0), **self._errors}

    def count(self, kind: str, n: int = 1, report: bool = True) -> None:
        """Count in this process; ``report`` also tells the monitor (unless it counts it itself)."""
        with self._lock:
            self._counters[kind] = self._counters.get(kind, 0) + n
        if report:
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


def get_process_state(identity: tuple[Any, ...], config: Any, monitor_factory: Any = None) -> ProcessState:
    """The one :class:`ProcessState` for ``identity`` (server + key prefix) in this process."""
    state = _registry.get(identity)
    if state is None:
        with _registry_lock:
            state = _registry.get(identity)
            if state is None:
                memory = MemoryTier(config.memory_cache_size, config.memory_cache_max_bytes)
                tier = CoherentTier(memory, config.key_prefix, config.memory_coherence)
                listener = None
                if config.memory_coherence == "tracking":
                    listener = Listener(
                        tier,
                        Namespace(config.key_prefix),
                        config.coherence_probe_seconds,
                        config.coherence_liveness_seconds,
                    )
                state = ProcessState(
                    memory,
                    CircuitBreaker(config.circuit_breaker_failures, config.circuit_breaker_reset_seconds),
                    tier,
                    monitor_factory(memory) if monitor_factory else NullMonitor(),
                    listener,
                )
                _registry[identity] = state
    return state


def reset_process_state() -> None:
    """Forget every tier and breaker (tests; and a forked child, whose copy is stale)."""
    global _registry_lock, _generation
    _registry_lock = threading.Lock()  # another thread may have held it at fork time
    for state in _registry.values():
        if state.listener is not None:
            state.listener.stop()  # in a forked child the thread is gone already; harmless
    _registry.clear()
    _generation += 1


os.register_at_fork(after_in_child=reset_process_state)
