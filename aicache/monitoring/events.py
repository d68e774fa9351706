"""Typed monitoring records. Durations are seconds, sizes bytes, timestamps unix seconds.

The recorder keeps the most recent of each kind (bounded) for the seed-compatible read methods,
and converts them to plain dicts only at the edge (``export_metrics``, the API, the ORM).
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
    source: str = ""  # memory / redis / "" (miss or write)
    additional_data: dict[str, Any] | None = None


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


def as_dict(record: Any) -> dict[str, Any]:
    return asdict(record)
