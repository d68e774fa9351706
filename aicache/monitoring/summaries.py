"""The seed-compatible result shapes, computed from plain sequences.

The in-process recorder and the database stats (``aicache.monitoring.stats``) both build their
answers here, so the two surfaces cannot drift apart. Percentiles use the nearest-rank method on
sorted values (p95 of n values is the ``ceil(0.95 n)``-th smallest); medians are
``statistics.median``.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

EMPTY_SUMMARY: dict[str, Any] = {
    "hit_ratio": 0.0,
    "total_operations": 0,
    "memory_tier_hit_share": 0.0,
    "avg_get_latency_by_tier": {},
    "avg_operation_latency": 0.0,
    "compression_savings_percent": 0.0,
    "compression_bytes_saved": 0,
}


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of already sorted values (q in 0..100)."""
    if not sorted_values:
        raise ValueError("percentile of no values")
    rank = max(1, math.ceil(q / 100 * len(sorted_values)))
    return sorted_values[rank - 1]


def duration_summary(durations: Iterable[float], threshold: float | None = None) -> dict[str, Any]:
    values = sorted(durations)
    if not values:
        return {"total_operations": 0}
    out = {
        "total_operations": len(values),
        "avg_duration": sum(values) / len(values),
        "median_duration": statistics.median(values),
        "min_duration": values[0],
        "max_duration": values[-1],
        "p95_duration": percentile(values, 95),
    }
    if threshold is not None:
        out["slow_operations"] = sum(1 for v in values if v > threshold)
    return out


def sketch_summary(
    count: int,
    total: float,
    mn: float | None,
    mx: float | None,
    buckets: dict[int, int],
    threshold: float | None = None,
) -> dict[str, Any]:
    """``duration_summary``'s shape from aggregates: exact count, average, min and max; median and
    p95 from the merged sketch (within its 1 %); slow operations counted from sketch buckets."""
    from aicache.monitoring import sketch

    if not count:
        return {"total_operations": 0}
    median, p95 = sketch.quantiles(buckets, (0.5, 0.95))
    out = {
        "total_operations": count,
        "avg_duration": total / count,
        "median_duration": median,
        "min_duration": mn,
        "max_duration": mx,
        "p95_duration": p95,
    }
    if threshold is not None:
        out["slow_operations"] = sum(c for i, c in buckets.items() if sketch.bucket_value(i) > threshold)
    return out


def grouped_summary(pairs: Iterable[tuple[str, float]]) -> dict[str, dict[str, Any]]:
    """``{group: {count, avg_duration, max_duration, p95_duration}}`` from (group, duration)."""
    groups: dict[str, list[float]] = {}
    for group, duration in pairs:
        groups.setdefault(group, []).append(duration)
    out = {}
    for group, values in sorted(groups.items()):
        values.sort()
        out[group] = {
            "count": len(values),
            "avg_duration": sum(values) / len(values),
            "max_duration": values[-1],
            "p95_duration": percentile(values, 95),
        }
    return out


def compression_summary(records: Sequence[tuple[int, int, float]]) -> dict[str, Any]:
    """From (original_size, compressed_size, compression_time) triples."""
    if not records:
        return {"total_operations": 0}
    ratios = sorted(c / o if o else 1.0 for o, c, _ in records)
    times = [t for _, _, t in records]
    processed = sum(o for o, _, _ in records)
    stored = sum(c for _, c, _ in records)
    return {
        "total_operations": len(records),
        "avg_compression_ratio": sum(ratios) / len(ratios),
        "median_compression_ratio": statistics.median(ratios),
        "best_compression_ratio": ratios[0],
        "worst_compression_ratio": ratios[-1],
        "avg_compression_time": sum(times) / len(times),
        "max_compression_time": max(times),
        "total_bytes_processed": processed,
        "total_bytes_saved": processed - stored,
        "overall_savings_percent": (processed - stored) / processed * 100 if processed else 0.0,
    }


def hit_rate(hits: int, misses: int) -> float:
    """Percent of reads that hit: hits / (hits + misses); writes never count."""
    reads = hits + misses
    return hits / reads * 100 if reads else 0.0


def slow_list(rows: Iterable[dict[str, Any]], threshold_multiplier: float, limit: int = 50) -> list[dict]:
    """Rows (each with a ``duration``) slower than ``threshold_multiplier`` x their average."""
    rows = list(rows)
    if not rows:
        return []
    avg = sum(r["duration"] for r in rows) / len(rows)
    if avg <= 0:
        return []
    slow = [
        {**r, "times_slower": r["duration"] / avg} for r in rows if r["duration"] > avg * threshold_multiplier
    ]
    slow.sort(key=lambda r: r["duration"], reverse=True)
    return slow[:limit]


def invalidation_frequency(
    records: Sequence[dict[str, Any]],
    *,
    now: float,
    window_hours: float,
    warning_per_hour: float,
    critical_per_hour: float,
    total_invalidations: int | None = None,
    total_keys: int | None = None,
) -> dict[str, Any]:
    """``get_invalidation_frequency_stats()``'s shape from invalidation dicts (timestamp, pattern,
    keys_invalidated, duration, invalidation_type)."""
    last_hour = sum(1 for r in records if r["timestamp"] >= now - 3600)
    last_day = sum(1 for r in records if r["timestamp"] >= now - 86400)
    keys = [r["keys_invalidated"] for r in records]
    durations = [r["duration"] for r in records]
    if last_hour >= critical_per_hour:
        level = "critical"
    elif last_hour >= warning_per_hour:
        level = "warning"
    else:
        level = "normal"
    patterns = Counter(r["pattern"] for r in records)
    return {
        "total_invalidations": len(records) if total_invalidations is None else total_invalidations,
        "total_keys_invalidated": sum(keys) if total_keys is None else total_keys,
        "rates": {
            "last_hour": last_hour,
            "last_24_hours": last_day,
            "average_per_hour": len(records) / window_hours if window_hours else 0.0,
        },
        "thresholds": {
            "warning_per_hour": warning_per_hour,
            "critical_per_hour": critical_per_hour,
            "current_alert_level": level,
        },
        "patterns": {
            "most_common_patterns": [{"pattern": p, "count": n} for p, n in patterns.most_common(10)],
            "invalidation_types": dict(Counter(r["invalidation_type"] for r in records)),
        },
        "efficiency": {
            "avg_keys_per_invalidation": sum(keys) / len(keys) if keys else 0.0,
            "avg_duration": sum(durations) / len(durations) if durations else 0.0,
            "max_duration": max(durations) if durations else 0.0,
        },
    }
