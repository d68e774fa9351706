"""Typed monitoring records. Durations are seconds, sizes bytes, timestamps unix seconds.

The recorder keeps the most recent of each kind (bounded) for the seed-compatible read methods,
and converts them to plain dicts only at the edge (``export_metrics``, the API, the ORM).

``PerformanceMetric`` and ``CompressionMetric`` are the original ``CachePerformanceMonitor``'s
measurement objects, with its field names: what ``monitor.key_generation_times``,
``monitor.cache_operation_times`` and ``monitor.compression_ratios`` hold. For a cache operation
``operation_type`` is the cache action (``get``, ``set``...), as the original recorded it; the AI
operation, tier and source are kept beside it (``ai_operation``, ``tier``, ``source``).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class KeyGenerationRecord:
    timestamp: float
    duration: float
    text_length: int
    operation_type: str = ""
    additional_data: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class CacheOperationRecord:
    timestamp: float
    operation: str  # get / set / delete / invalidate / lock ...
    duration: float
    cache_hit: bool
    text_length: int = 0
    operation_type: str = ""  # the AI operation: summarize, qa, ...
    tier: str = ""
    source: str = ""  # memory / redis / coalesced / "" (miss or write)
    additional_data: dict[str, Any] | None = None
    success: bool = True  # for writes, deletes...: whether the action succeeded (a get: always)


@dataclass(frozen=True, slots=True)
class CompressionRecord:
    timestamp: float
    original_size: int
    compressed_size: int
    compression_time: float
    operation_type: str = ""

    @property
    def ratio(self) -> float:
        return self.compressed_size / self.original_size if self.original_size else 1.0


@dataclass(frozen=True, slots=True)
class MemoryRecord:
    timestamp: float
    memory_entries: int
    memory_bytes: int
    memory_max_entries: int = 0
    memory_max_bytes: int = 0
    redis_used_bytes: int | None = None
    process_rss_bytes: int | None = None


@dataclass(frozen=True, slots=True)
class InvalidationRecord:
    timestamp: float
    pattern: str
    keys_invalidated: int
    duration: float
    invalidation_type: str = "manual"  # pattern / operation / all / memory / manual
    operation_context: str = ""
    status: str = "success"  # success / failed
    reason: str = ""
    additional_data: dict[str, Any] | None = field(default=None)


@dataclass(frozen=True, slots=True)
class PerformanceMetric:
    """The original's measurement of a key generation or a cache operation."""

    duration: float
    text_length: int
    timestamp: float
    operation_type: str = ""
    additional_data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class CacheOperationMetric(PerformanceMetric):
    """A cache operation as the original measured it (``operation_type`` is ``get``, ``set``...),
    plus what this recorder knows besides."""

    cache_hit: bool = False
    success: bool = True
    ai_operation: str = ""
    tier: str = ""
    source: str = ""


@dataclass(frozen=True, slots=True)
class CompressionMetric:
    """The original's compression measurement (a ratio of 0 is computed from the sizes)."""

    original_size: int
    compressed_size: int
    compression_ratio: float
    compression_time: float
    timestamp: float
    operation_type: str = ""

    def __post_init__(self) -> None:
        if self.compression_ratio == 0 and self.original_size > 0:
            object.__setattr__(self, "compression_ratio", self.compressed_size / self.original_size)


@dataclass(frozen=True, slots=True)
class MemoryUsageMetric:
    """The original's memory measurement; ``from_record`` builds it from a :class:`MemoryRecord`."""

    total_cache_size_bytes: int
    cache_entry_count: int
    avg_entry_size_bytes: float
    memory_cache_size_bytes: int
    memory_cache_entry_count: int
    process_memory_mb: float
    timestamp: float
    cache_utilization_percent: float
    warning_threshold_reached: bool = False
    additional_data: dict[str, Any] = field(default_factory=dict)
    # this recorder's own names for the sample, beside the original's
    memory_entries: int = 0
    memory_bytes: int = 0
    memory_max_entries: int = 0
    memory_max_bytes: int = 0
    redis_used_bytes: int | None = None
    process_rss_bytes: int | None = None

    @classmethod
    def from_record(cls, record: MemoryRecord, warning_bytes: int) -> MemoryUsageMetric:
        total = record.memory_bytes + (record.redis_used_bytes or 0)
        entries = record.memory_entries
        return cls(
            total_cache_size_bytes=total,
            cache_entry_count=entries,
            avg_entry_size_bytes=record.memory_bytes / entries if entries else 0.0,
            memory_cache_size_bytes=record.memory_bytes,
            memory_cache_entry_count=entries,
            process_memory_mb=(record.process_rss_bytes or 0) / (1024 * 1024),
            timestamp=record.timestamp,
            cache_utilization_percent=total / warning_bytes * 100 if warning_bytes else 0.0,
            warning_threshold_reached=total >= warning_bytes,
            memory_entries=entries,
            memory_bytes=record.memory_bytes,
            memory_max_entries=record.memory_max_entries,
            memory_max_bytes=record.memory_max_bytes,
            redis_used_bytes=record.redis_used_bytes,
            process_rss_bytes=record.process_rss_bytes,
        )


#: The original's name for an invalidation measurement (same fields, plus status and reason).
InvalidationMetric = InvalidationRecord


def as_dict(record: Any) -> dict[str, Any]:
    return asdict(record)
