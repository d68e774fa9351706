"""The read side of ``CachePerformanceMonitor``: the seed-compatible figures from its windows.

``Readings`` is mixed into the monitor; it reads the bounded windows (``_keygen``, ``_ops``,
``_compression``, ``_memory``, ``_invalidations``), the totals and the thresholds that the
recording side keeps, after settling whatever is pending (``_settle`` under ``_state_lock``).
"""

from __future__ import annotations

import time
from collections import deque
from datetime import datetime
from typing import Any

from aicache.monitoring import recommendations, summaries
from aicache.monitoring.events import (
    CacheOperationMetric,
    CacheOperationRecord,
    CompressionMetric,
    CompressionRecord,
    InvalidationRecord,
    KeyGenerationRecord,
    MemoryRecord,
    MemoryUsageMetric,
    PerformanceMetric,
    as_dict,
)
from aicache.state import ERROR_KINDS


def iso(ts: float) -> str:
    """A unix timestamp as the original wrote it: ``datetime.fromtimestamp(ts).isoformat()``."""
    return datetime.fromtimestamp(ts).isoformat()


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

    # ------------------------------------------------------------------ the original's attributes
    @property
    def key_generation_times(self) -> list[PerformanceMetric]:
        return [
            PerformanceMetric(
                r.duration, r.text_length, r.timestamp, r.operation_type, r.additional_data or {}
            )
            for r in self._key_generation_records()
        ]

    @property
    def cache_operation_times(self) -> list[CacheOperationMetric]:
        return [
            CacheOperationMetric(
                r.duration,
                r.text_length,
                r.timestamp,
                r.operation,
                r.additional_data or {},
                r.cache_hit,
                r.success,
                r.operation_type,
                r.tier,
                r.source,
            )
            for r in self._operation_records()
        ]

    @property
    def compression_ratios(self) -> list[CompressionMetric]:
        return [
            CompressionMetric(
                r.original_size, r.compressed_size, r.ratio, r.compression_time, r.timestamp, r.operation_type
            )
            for r in self._compression_records()
        ]

    @property
    def invalidation_events(self) -> list[InvalidationRecord]:
        return self._window(self._invalidations)

    @property
    def memory_usage_measurements(self) -> list[MemoryUsageMetric]:
        """The kept memory samples as the original's ``MemoryUsageMetric`` (with our fields too)."""
        warning = self.memory_warning_threshold_bytes
        return [MemoryUsageMetric.from_record(r, warning) for r in self._window(self._memory)]

    def get_performance_stats(self) -> dict[str, Any]:
        with self._state_lock:
            return self._performance_stats()

    def _performance_stats(self) -> dict[str, Any]:
        self._settle()
        stats: dict[str, Any] = {
            "timestamp": time.time(),
            "retention_hours": self.retention_hours,
            "cache_hit_rate": summaries.hit_rate(self._hits, self._misses),
            "total_cache_operations": self._operations,
            "cache_hits": self._hits,
            "cache_misses": self._misses,
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
        """``AIResponseCache.get_performance_summary``'s figures, every one of them from the same
        window: everything recorded since this monitor started or was last reset."""
        with self._state_lock:
            self._settle()
            hits, misses, operations = self._hits, self._misses, self._operations
            gets = {key: tuple(v) for key, v in self._gets.items()}
            op_seconds = self._op_seconds
            processed, stored = self._compressed
            since = self._reset_at
            errors: dict[str, int] = dict.fromkeys(ERROR_KINDS, 0)
            for name, n in self.counters.items():  # "error:<kind>:<action>", reset with the rest
                if name.startswith("error:"):
                    kind = name.split(":", 2)[1]
                    errors[kind] = errors.get(kind, 0) + n
        by_tier: dict[str, list[float]] = {}
        memory_hits = 0
        for (tier, outcome), (n, seconds) in gets.items():
            acc = by_tier.setdefault(tier, [0, 0.0])
            acc[0] += n
            acc[1] += seconds
            if outcome == "hit_memory":
                memory_hits += n
        latency = {tier: seconds / n for tier, (n, seconds) in sorted(by_tier.items()) if n}
        avg_op = op_seconds / operations if operations else 0.0
        saved = processed - stored
        return {
            "hit_ratio": hits / (hits + misses) if hits + misses else 0.0,
            "total_operations": operations,
            "memory_tier_hit_share": memory_hits / hits if hits else 0.0,
            "avg_get_latency_by_tier": latency,
            "avg_operation_latency": avg_op,
            "avg_get_latency_ms_by_tier": {tier: summaries.ms(v) for tier, v in latency.items()},
            "avg_operation_latency_ms": summaries.ms(avg_op),
            "compression_savings_percent": saved / processed * 100 if processed else 0.0,
            "compression_bytes_saved": saved,
            "since": since,
            "errors": errors,
        }

    def get_recent_slow_operations(self, threshold_multiplier: float = 2.0) -> dict[str, list[dict]]:
        """The original's shape: per kind, the kept measurements slower than
        ``threshold_multiplier`` x the mean of their kind, oldest first, timestamps as ISO strings."""
        keygen = [
            {
                "duration": r.duration,
                "text_length": r.text_length,
                "operation_type": r.operation_type,
                "timestamp": iso(r.timestamp),
            }
            for r in self._key_generation_records()
        ]
        ops = [
            {
                "duration": r.duration,
                "operation_type": r.operation,
                "text_length": r.text_length,
                "timestamp": iso(r.timestamp),
                "ai_operation": r.operation_type,
                "tier": r.tier,
                "source": r.source,
            }
            for r in self._operation_records()
        ]
        compression = [
            {
                "compression_time": r.compression_time,
                "original_size": r.original_size,
                "compression_ratio": r.ratio,
                "operation_type": r.operation_type,
                "timestamp": iso(r.timestamp),
            }
            for r in self._compression_records()
        ]
        return {
            "key_generation": summaries.slower_than_mean(keygen, "duration", threshold_multiplier),
            "cache_operations": summaries.slower_than_mean(ops, "duration", threshold_multiplier),
            "compression": summaries.slower_than_mean(compression, "compression_time", threshold_multiplier),
        }

    def _calculate_hit_rate(self) -> float:
        """The original's helper: hit rate in percent (over reads, see README)."""
        return self.get_performance_stats()["cache_hit_rate"]

    def _get_invalidations_in_last_hour(self) -> int:
        """The original's helper: invalidations recorded in the last hour."""
        cutoff = time.time() - 3600
        return sum(1 for r in self.invalidation_events if r.timestamp > cutoff)

    def get_memory_usage_stats(self) -> dict[str, Any]:
        samples: list[MemoryRecord] = self._window(self._memory)
        return memory_usage_stats(
            samples, self.memory_warning_threshold_bytes, self.memory_critical_threshold_bytes
        )

    def get_memory_warnings(self) -> list[dict[str, Any]]:
        return recommendations.memory_warnings(
            self.get_memory_usage_stats().get("current"),
            self.memory_warning_threshold_bytes,
            self.memory_critical_threshold_bytes,
        )

    def get_invalidation_frequency_stats(self) -> dict[str, Any]:
        return summaries.invalidation_frequency(
            [as_dict(r) for r in self._window(self._invalidations)],
            now=time.time(),
            window_hours=self.retention_hours,
            warning_per_hour=self.invalidation_rate_warning_per_hour,
            critical_per_hour=self.invalidation_rate_critical_per_hour,
            total_invalidations=self._settled("_invalidation_count"),
            total_keys=self._settled("_keys_invalidated"),
        )

    def get_invalidation_recommendations(self) -> list[dict[str, Any]]:
        return recommendations.invalidation_recommendations(self.get_invalidation_frequency_stats())

    def export_metrics(self) -> dict[str, Any]:
        """Every kept measurement as plain dicts, in the original's keys (``key_generation_times``,
        ``cache_operation_times``, ``compression_ratios``, ``invalidation_events``,
        ``memory_usage_measurements``, the counters, ``export_timestamp`` as an ISO string), with
        the richer sections of this recorder beside them."""
        with self._state_lock:
            self._settle()
            keygen = self.key_generation_times
            ops = self._operation_records()
            compression = self.compression_ratios
            invalidations = self.invalidation_events
            memory = self.memory_usage_measurements
            out = {
                "key_generation_times": [as_dict(m) for m in keygen],
                "cache_operation_times": [as_dict(m) for m in self.cache_operation_times],
                "compression_ratios": [as_dict(m) for m in compression],
                "invalidation_events": [as_dict(r) for r in invalidations],
                "memory_usage_measurements": [as_dict(r) for r in memory],
                "cache_hits": self._hits,
                "cache_misses": self._misses,
                "total_operations": self._operations,
                "total_invalidations": self._invalidation_count,
                "total_keys_invalidated": self._keys_invalidated,
                "export_timestamp": iso(time.time()),
                "retention_hours": self.retention_hours,
                "totals": {
                    "cache_hits": self._hits,
                    "cache_misses": self._misses,
                    "total_cache_operations": self._operations,
                    "total_invalidations": self._invalidation_count,
                    "total_keys_invalidated": self._keys_invalidated,
                    "counters": dict(self.counters),
                },
            }
        out["key_generation"] = [as_dict(r) for r in self._key_generation_records()]
        out["cache_operations"] = [as_dict(r) for r in ops]
        out["compression"] = [as_dict(r) for r in self._compression_records()]
        out["memory_usage"] = out["memory_usage_measurements"]
        out["invalidations"] = out["invalidation_events"]
        return out


def memory_usage_stats(
    samples: list[MemoryRecord], warning_bytes: int | None = None, critical_bytes: int | None = None
) -> dict[str, Any]:
    mib = 1024 * 1024
    thresholds: dict[str, Any] = {}
    if warning_bytes is not None:
        critical = critical_bytes if critical_bytes is not None else 2 * warning_bytes
        thresholds = {"warning_threshold_mb": warning_bytes / mib, "critical_threshold_mb": critical / mib}
    if not samples:
        return {"total_samples": 0, "no_measurements": True, **thresholds}
    current = samples[-1]
    sizes = [s.memory_bytes for s in samples]
    half = len(sizes) // 2
    first, second = sizes[:half] or sizes, sizes[half:]
    before, after = sum(first) / len(first), sum(second) / len(second)
    trend = "increasing" if after > before * 1.1 else "decreasing" if after < before * 0.9 else "stable"
    totals = [s.memory_bytes + (s.redis_used_bytes or 0) for s in samples]
    entries = [s.memory_entries for s in samples]
    return {
        "total_samples": len(samples),
        "current": {
            **as_dict(current),
            "memory_utilization_percent": (
                current.memory_bytes / current.memory_max_bytes * 100 if current.memory_max_bytes else 0.0
            ),
            # the original's names for the same figures
            "memory_cache_entry_count": current.memory_entries,
            "cache_entry_count": current.memory_entries,
            "memory_cache_size_mb": current.memory_bytes / mib,
            "total_cache_size_mb": totals[-1] / mib,
            "avg_entry_size_bytes": current.memory_bytes / current.memory_entries
            if current.memory_entries
            else 0.0,
            "process_memory_mb": (current.process_rss_bytes or 0) / mib,
        },
        "average_memory_bytes": sum(sizes) / len(sizes),
        "peak_memory_bytes": max(sizes),
        "min_memory_bytes": min(sizes),
        "trend": trend,
        "thresholds": {
            **thresholds,
            "warning_threshold_reached": warning_bytes is not None and totals[-1] >= warning_bytes,
            "critical_threshold_reached": bool(thresholds)
            and totals[-1] >= thresholds["critical_threshold_mb"] * mib,
        },
        "trends": {
            "total_measurements": len(samples),
            "avg_total_cache_size_mb": sum(totals) / len(totals) / mib,
            "max_total_cache_size_mb": max(totals) / mib,
            "avg_memory_cache_size_mb": sum(sizes) / len(sizes) / mib,
            "avg_entry_count": sum(entries) / len(entries),
            "max_entry_count": max(entries),
        },
    }
