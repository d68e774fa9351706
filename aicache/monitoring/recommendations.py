"""Advice from the figures: invalidation recommendations and memory warnings.

A recommendation is the original's dict: ``severity``, ``issue`` (its human-readable title),
``message``, ``suggestions``, plus a stable machine ``id``. Rules (each returns at most one item):
- high frequency: invalidations in the last hour at or above the warning rate (critical at or above
  the critical rate);
- dominant pattern: one pattern is more than half of the invalidations (from 5 invalidations on, so
  a single call is not "dominant");
- low efficiency: fewer than 1 key removed per invalidation on average;
- high impact: more than 100 keys removed per invalidation on average.
"""

from __future__ import annotations

from typing import Any

DOMINANT_SHARE = 0.5
DOMINANT_MIN_SAMPLE = 5
LOW_EFFICIENCY_KEYS = 1.0
HIGH_IMPACT_KEYS = 100.0

# (id, title): the titles are the original's, word for word.
HIGH_FREQUENCY = ("high_invalidation_frequency", "High invalidation frequency")
DOMINANT_PATTERN = ("dominant_invalidation_pattern", "Dominant invalidation pattern")
LOW_EFFICIENCY = ("low_invalidation_efficiency", "Low invalidation efficiency")
HIGH_IMPACT = ("high_invalidation_impact", "High invalidation impact")


def _advice(rule: tuple[str, str], severity: str, message: str, suggestions: list[str]) -> dict[str, Any]:
    return {
        "severity": severity,
        "issue": rule[1],
        "message": message,
        "suggestions": suggestions,
        "id": rule[0],
    }


def invalidation_recommendations(freq: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    rates, thresholds = freq["rates"], freq["thresholds"]
    level = thresholds["current_alert_level"]
    if level != "normal":
        out.append(
            _advice(
                HIGH_FREQUENCY,
                level,
                f"{rates['last_hour']} invalidations in the last hour (warning at "
                f"{thresholds['warning_per_hour']}, critical at {thresholds['critical_per_hour']}).",
                [
                    "Batch invalidations: invalidate an operation once instead of many patterns.",
                    "Lengthen TTLs for operations whose answers rarely change.",
                    "Invalidate on real model or prompt changes only, not on every deploy.",
                ],
            )
        )
    patterns = freq["patterns"]["most_common_patterns"]  # {pattern: count}, most common first
    total = sum(freq["patterns"]["invalidation_types"].values())  # every retained invalidation
    if patterns and total >= DOMINANT_MIN_SAMPLE:
        pattern, count = next(iter(patterns.items()))
        if count / total > DOMINANT_SHARE:
            out.append(
                _advice(
                    DOMINANT_PATTERN,
                    "info",
                    f"Pattern {pattern!r} is {count / total:.0%} of invalidations.",
                    [
                        "If it targets one operation, use invalidate_by_operation (indexed, cheaper).",
                        "Consider a shorter TTL for those entries instead of repeated invalidation.",
                    ],
                )
            )
    efficiency = freq["efficiency"]["avg_keys_per_invalidation"]
    if freq["total_invalidations"] and efficiency < LOW_EFFICIENCY_KEYS:
        out.append(
            _advice(
                LOW_EFFICIENCY,
                "info",
                f"Invalidations remove {efficiency:.2f} keys on average: most find nothing.",
                [
                    "Check the patterns: they may not match any key.",
                    "Drop invalidation calls that run when nothing was cached.",
                ],
            )
        )
    if efficiency > HIGH_IMPACT_KEYS:
        out.append(
            _advice(
                HIGH_IMPACT,
                "warning",
                f"Invalidations remove {efficiency:.0f} keys on average: each empties much of the cache.",
                [
                    "Narrow the patterns so that fewer entries are thrown away.",
                    "Expect a burst of LLM calls after each; schedule them off-peak.",
                ],
            )
        )
    return out


def memory_warnings(current: dict[str, Any] | None, threshold_bytes: int) -> list[dict[str, Any]]:
    if not current:
        return []
    out: list[dict[str, Any]] = []
    for name, label in (("memory_bytes", "memory tier"), ("redis_used_bytes", "Redis")):
        value = current.get(name)
        if value is not None and value > threshold_bytes:
            out.append(
                {
                    "severity": "critical" if value > 2 * threshold_bytes else "warning",
                    "type": f"high_{name}",
                    "message": f"{label} uses {value} bytes, above the {threshold_bytes}-byte threshold.",
                    "value": value,
                    "threshold": threshold_bytes,
                }
            )
    max_entries = current.get("memory_max_entries") or 0
    if max_entries and current.get("memory_entries", 0) >= 0.95 * max_entries:
        out.append(
            {
                "severity": "info",
                "type": "memory_tier_full",
                "message": (
                    f"The memory tier holds {current['memory_entries']} of {max_entries} entries: "
                    "it is evicting; raise MEMORY_CACHE_SIZE if the hit share matters."
                ),
                "value": current["memory_entries"],
                "threshold": max_entries,
            }
        )
    return out
