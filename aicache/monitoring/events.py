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
    """The original's compression measurement."""

    original_size: int
    compressed_size: int
    compression_ratio: float
    compression_time: float
    timestamp: float
    operation_type: str = ""


def as_dict(record: Any) -> dict[str, Any]:
    return asdict(record)
