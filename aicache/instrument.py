"""How the cache reports to monitoring: the sink interface, and the timing written once.

The core never imports the monitoring ORM. It reports through a monitor object built from the
``MONITOR_CLASS`` setting (``aicache.monitoring.recorder.CachePerformanceMonitor`` by default;
``None`` gives :class:`NullMonitor`). The decorators below time the backend's steps and turn their
results into records, so no method of the backend carries timing code of its own.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from time import perf_counter
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

from django.utils.module_loading import import_string

if TYPE_CHECKING:
    from aicache.conf import CacheConfig

F = TypeVar("F", bound=Callable[..., Any])


class Monitor(Protocol):
    def record_lookup(
        self,
        operation_type: str,
        tier: str,
        source: str,
        duration: float,
        keygen: float | None,
        text_length: int,
    ) -> None: ...
    def record_key_generation_time(
        self, duration: float, text_length: int, operation_type: str = ""
    ) -> None: ...
    def record_cache_operation_time(
        self,
        operation: str,
        duration: float,
        cache_hit: bool,
        text_length: int = 0,
        additional_data: dict | None = None,
        **labels: Any,  # operation_type, tier, source (str); success (bool) for non-get actions
    ) -> None: ...
    def record_compression_ratio(
        self, original_size: int, compressed_size: int, compression_time: float, operation_type: str = ""
    ) -> None: ...
    def record_invalidation_event(
        self,
        pattern: str,
        keys_invalidated: int,
        duration: float,
        invalidation_type: str = "manual",
        operation_context: str = "",
        additional_data: dict | None = None,
        **status: str,
    ) -> None: ...
    def record_memory_usage(
        self, memory_entries: int, memory_bytes: int, *args: Any, **kwargs: Any
    ) -> None: ...
    def count(self, name: str, n: int = 1) -> None: ...
    def record_saving(
        self,
        operation_type: str,
        model: str,
        compute_seconds: float,
        prompt_tokens: int,
        completion_tokens: int,
        hit_seconds: float,
    ) -> None: ...
    def summary(self) -> dict[str, Any]: ...


class NullMonitor:
    """Monitoring off: every record is a no-op, and the summary is all zeros."""

    def _noop(self, *args: Any, **kwargs: Any) -> None:
        return None

    record_lookup = record_key_generation_time = record_cache_operation_time = _noop
    record_compression_ratio = record_invalidation_event = record_memory_usage = count = _noop
    record_saving = _noop

    def summary(self) -> dict[str, Any]:
        """``get_performance_summary()``'s keys with nothing recorded. The recorder's
        ``summary()`` returns the same keys (durations in seconds; ``_ms`` keys in
        milliseconds; ``since``: unix seconds of the window's start, or None)."""
        return {
            "errors": {},
            "hit_ratio": 0.0,
            "total_operations": 0,
            "memory_tier_hit_share": 0.0,
            "avg_get_latency_by_tier": {},
            "avg_operation_latency": 0.0,
            "avg_get_latency_ms_by_tier": {},
            "avg_operation_latency_ms": 0.0,
            "compression_savings_percent": 0.0,
            "compression_bytes_saved": 0,
            "since": None,
        }


def build_monitor(config: CacheConfig, name: str, memory: Any) -> Any:
    """The monitor of one cache in this process. A monitor that exports (the default one) gets
    ``attach(memory, config)`` so that it can sample the memory tier and ship its figures."""
    if not config.monitor_class:
        return NullMonitor()
    monitor = import_string(config.monitor_class)(**config.monitor_options, name=name)
    attach = getattr(monitor, "attach", None)
    if attach is not None:
        attach(memory, config)
    return monitor


def timed_lookup(method: F) -> F:
    """Report a lookup (and, the first time, its key generation) as one get record."""

    @functools.wraps(method)
    def wrapper(self: Any, req: Any) -> Any:
        started = perf_counter()
        hit = method(self, req)
        self._record(req, hit["cache_source"] if hit is not None else "", perf_counter() - started)
        return hit

    return wrapper  # type: ignore[return-value]


def timed_store(method: F) -> F:
    """Report a write: the set (success or not), its compression, and a pending key generation."""

    @functools.wraps(method)
    def wrapper(self: Any, req: Any, payload: bytes) -> Any:
        started = perf_counter()
        stored = method(self, req, payload)
        duration = perf_counter() - started
        monitor = self._state.monitor
        if req.keygen_seconds is not None:
            monitor.record_key_generation_time(req.keygen_seconds, req.text_length, req.operation)
            req.keygen_seconds = None
        # cache_hit is a read's figure; a write reports whether it succeeded apart
        monitor.record_cache_operation_time(
            "set",
            duration,
            False,
            req.text_length,
            operation_type=req.operation,
            tier=req.tier,
            success=stored.written,
        )
        encoded = stored.encoded
        if encoded.compression_used:
            monitor.record_compression_ratio(
                encoded.payload_size, encoded.stored_size, encoded.compression_seconds, req.operation
            )
        return stored.entry

    return wrapper  # type: ignore[return-value]


def timed_invalidation(invalidation_type: str, describe: Callable[..., tuple[str, str]]) -> Callable[[F], F]:
    """Report an invalidation: keys removed, duration, status, and the pattern and context that
    ``describe(*args, **kwargs)`` reads from the call.

    Input errors propagate before anything is recorded; a Redis fault during the call marks it
    ``failed`` with the fault as reason.
    """

    def decorate(method: F) -> F:
        @functools.wraps(method)
        def wrapper(self: Any, *args: Any, **kwargs: Any) -> int:
            state = self._state
            faults_before = state.thread_faults()
            started = perf_counter()
            removed = method(self, *args, **kwargs)
            duration = perf_counter() - started
            fault = state.thread_last_fault() if state.thread_faults() != faults_before else ""
            pattern, context = describe(*args, **kwargs)
            state.monitor.record_invalidation_event(
                pattern,
                removed,
                duration,
                invalidation_type,
                context,
                status="failed" if fault else "success",
                reason=fault,
            )
            return removed

        return wrapper  # type: ignore[return-value]

    return decorate
