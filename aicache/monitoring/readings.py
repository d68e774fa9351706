"""The read side of ``CachePerformanceMonitor``: the seed-compatible figures from its windows.

``Readings`` is mixed into the monitor; it reads the bounded windows (``_keygen``, ``_ops``,
``_compression``, ``_memory``, ``_invalidations``), the totals and the thresholds that the
recording side keeps, after settling whatever is pending (``_settle`` under ``_state_lock``).
"""

from __future__ import annotations

import time
from collections import deque
from typing import Any

from aicache.monitoring import recommendations, summaries
from aicache.monitoring.events import (
    CacheOperationRecord,
    CompressionRecord,
    KeyGenerationRecord,
    MemoryRecord,
    as_dict,
)


class Readings:
    def _window(self, items: deque) -> list:
        cutoff = time.time() - self.retention_hours * 3600
        with self._state_lock:
            self._settle()
            return [i for i in items if (i[0] if isinstance(i, tuple) else i.timestamp) >= cutoff]

    def _key_generation_records(self) -> list[KeyGenerationRecord]:
        return [KeyGenerationRecord(*t) for t in self._window(self._keygen)]

    def _operation_records(self) -> list[CacheOperationRecord]:
        return [CacheOperationRecord(*t) for t in self._window(self._ops)]

    def _compression_records(self) -> list[CompressionRecord]:
        return [CompressionRecord(*t) for t in self._window(self._compression)]

    def get_performance_stats(self) -> dict[str, Any]:
        with self._state_lock:
            return self._performance_stats()

    def _performance_stats(self) -> dict[str, Any]:
        self._settle()
        stats: dict[str, Any] = {
            "timestamp": time.time(),
            "retention_hours": self.retention_hours,
            "cache_hit_rate": summaries.hit_rate(self.cache_hits, self.cache_misses),
            "total_cache_operations": self.total_cache_operations,
            "cache_hits": self.cache_hits,
            "cache_misses": self.cache_misses,
        }
        keygen = self._key_generation_records()
        if keygen:
            lengths = [r.text_length for r in keygen]
            stats["key_generation"] = {
                **summaries.duration_summary((r.duration for r in keygen), self.key_generation_threshold),
                "avg_text_length": sum(lengths) / len(lengths),
                "max_text_length": max(lengths),
            }
        ops = self._operation_records()
        if ops:
            stats["cache_operations"] = {
                **summaries.duration_summary((r.duration for r in ops), self.cache_operation_threshold),
                "by_operation_type": summaries.grouped_summary((r.operation, r.duration) for r in ops),
                "by_tier": summaries.grouped_summary((r.tier, r.duration) for r in ops if r.tier),
            }
        compression = self._compression_records()
        if compression:
            stats["compression"] = summaries.compression_summary(
                [(r.original_size, r.compressed_size, r.compression_time) for r in compression]
            )
        memory = self.get_memory_usage_stats()
        if memory["total_samples"]:
            stats["memory_usage"] = memory
        if self._window(self._invalidations):
            stats["invalidation"] = self.get_invalidation_frequency_stats()
        return stats

    def summary(self) -> dict[str, Any]:
        """``AIResponseCache.get_performance_summary``'s figures, from one settle of the windows."""
        with self._state_lock:
            stats = self._performance_stats()
            ops = self._operation_records()
        by_tier: dict[str, list[float]] = {}
        memory_hits = hits = 0
        for r in ops:
            if r.operation == "get":
                by_tier.setdefault(r.tier, []).append(r.duration)
                hits += r.cache_hit
                memory_hits += r.source == "memory"
        compression = stats.get("compression", {})
        return {
            "hit_ratio": stats["cache_hit_rate"] / 100,
            "total_operations": stats["total_cache_operations"],
            "memory_tier_hit_share": memory_hits / hits if hits else 0.0,
            "avg_get_latency_by_tier": {t: sum(v) / len(v) for t, v in sorted(by_tier.items())},
            "avg_operation_latency": stats.get("cache_operations", {}).get("avg_duration", 0.0),
            "compression_savings_percent": compression.get("overall_savings_percent", 0.0),
            "compression_bytes_saved": compression.get("total_bytes_saved", 0),
        }

    def get_recent_slow_operations(self, threshold_multiplier: float = 2.0) -> dict[str, list[dict]]:
        return {
            "key_generation": summaries.slow_list(
                map(as_dict, self._key_generation_records()), threshold_multiplier
            ),
            "cache_operations": summaries.slow_list(
                map(as_dict, self._operation_records()), threshold_multiplier
            ),
            "compression": summaries.slow_list(
                ({**as_dict(r), "duration": r.compression_time} for r in self._compression_records()),
                threshold_multiplier,
            ),
        }

    def get_memory_usage_stats(self) -> dict[str, Any]:
        samples: list[MemoryRecord] = self._window(self._memory)
        return memory_usage_stats(samples)

    def get_memory_warnings(self) -> list[dict[str, Any]]:
        return recommendations.memory_warnings(
            self.get_memory_usage_stats().get("current"), self.memory_warning_threshold_bytes
        )

    def get_invalidation_frequency_stats(self) -> dict[str, Any]:
        return summaries.invalidation_frequency(
            [as_dict(r) for r in self._window(self._invalidations)],
            now=time.time(),
            window_hours=self.retention_hours,
            warning_per_hour=self.invalidation_rate_warning_per_hour,
            critical_per_hour=self.invalidation_rate_critical_per_hour,
            total_invalidations=self.total_invalidations,
            total_keys=self.total_keys_invalidated,
        )

    def get_invalidation_recommendations(self) -> list[dict[str, Any]]:
        return recommendations.invalidation_recommendations(self.get_invalidation_frequency_stats())

    def export_metrics(self) -> dict[str, Any]:
        with self._state_lock:
            self._settle()
            return self._export()

    def _export(self) -> dict[str, Any]:
        return {
            "export_timestamp": time.time(),
            "retention_hours": self.retention_hours,
            "totals": {
                "cache_hits": self.cache_hits,
                "cache_misses": self.cache_misses,
                "total_cache_operations": self.total_cache_operations,
                "total_invalidations": self.total_invalidations,
                "total_keys_invalidated": self.total_keys_invalidated,
                "counters": dict(self.counters),
            },
            "key_generation": [as_dict(r) for r in self._key_generation_records()],
            "cache_operations": [as_dict(r) for r in self._operation_records()],
            "compression": [as_dict(r) for r in self._compression_records()],
            "memory_usage": [as_dict(r) for r in self._window(self._memory)],
            "invalidations": [as_dict(r) for r in self._window(self._invalidations)],
        }


def memory_usage_stats(samples: list[MemoryRecord]) -> dict[str, Any]:
    if not samples:
        return {"total_samples": 0}
    current = samples[-1]
    sizes = [s.memory_bytes for s in samples]
    half = len(sizes) // 2
    first, second = sizes[:half] or sizes, sizes[half:]
    before, after = sum(first) / len(first), sum(second) / len(second)
    trend = "increasing" if after > before * 1.1 else "decreasing" if after < before * 0.9 else "stable"
    return {
        "total_samples": len(samples),
        "current": {
            **as_dict(current),
            "memory_utilization_percent": (
                current.memory_bytes / current.memory_max_bytes * 100 if current.memory_max_bytes else 0.0
            ),
        },
        "average_memory_bytes": sum(sizes) / len(sizes),
        "peak_memory_bytes": max(sizes),
        "min_memory_bytes": min(sizes),
        "trend": trend,
    }
