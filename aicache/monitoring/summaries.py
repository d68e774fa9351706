"""The seed-compatible result shapes, computed from plain sequences.

The in-process recorder and the database stats (``aicache.monitoring.stats``) both build their
answers here, so the two surfaces cannot drift apart. Percentiles use the nearest-rank method on
sorted values (p95 of n values is the ``ceil(0.95 n)``-th smallest); medians are
``statistics.median``.

Units: durations in the original API are seconds; figures meant to be read by a person carry
``_ms`` and are milliseconds rounded by :func:`ms`; ratios are ``..._ratio`` (0-1), percentages
``..._percent``.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from aicache.instrument import NullMonitor

# The shape of ``AIResponseCache.get_performance_summary()`` with nothing recorded. It is defined
# once, by the core's NullMonitor (the core never imports this app); the recorder's summary() has
# the same keys (tests/unit/monitoring/test_seed_api.py::test_summary_keys_match_the_null_monitor).
EMPTY_SUMMARY: dict[str, Any] = NullMonitor().summary()


def ms(seconds: float) -> float:
    """Seconds as milliseconds for a person to read: 3 decimals, or 3 significant digits below
    1 ms (0.0123 ms stays 0.0123, not 0.012), never more than 6 decimals."""
    value = seconds * 1000
    if value == 0:
        return 0.0
    digits = max(3, 3 - math.floor(math.log10(abs(value))) - 1)
    return round(value, min(digits, 6))


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


def slower_than_mean(rows: list[dict[str, Any]], field: str, multiplier: float) -> list[dict[str, Any]]:
    """The rows whose ``field`` exceeds ``multiplier`` x its mean over all rows, each with
    ``times_slower`` (value / mean), in their original order (the original's rule)."""
    if not rows:
        return []
    mean = sum(r[field] for r in rows) / len(rows)
    if mean <= 0:
        return []
    return [{**r, "times_slower": r[field] / mean} for r in rows if r[field] > mean * multiplier]


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
            # the original's shape: {pattern: count}, most common first (dicts keep order), 10 at most
            "most_common_patterns": dict(patterns.most_common(10)),
            "invalidation_types": dict(Counter(r["invalidation_type"] for r in records)),
        },
        "efficiency": {
            "avg_keys_per_invalidation": sum(keys) / len(keys) if keys else 0.0,
            "avg_duration": sum(durations) / len(durations) if durations else 0.0,
            "max_duration": max(durations) if durations else 0.0,
        },
    }
