"""Cluster-wide stats from the monitoring history, in the same shapes as the in-process recorder.

A window is ``last=1h|24h|7d|30d`` or ``since``/``until``; ``operation`` and ``tier`` filter it.
The window is covered by the coarsest rollups that fit (whole days from day rows, whole hours
from hour rows, the edges from minute rows; edges older than the minute horizon widen to whole
hours), so a 30-day question reads about 30 rows per series. Counts, sums, minima and maxima are
aggregated by the database (GROUP BY); percentiles come from merging the rows' sketches in Python.
The API, the dashboard and the management commands all call these functions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from django.db.models import Count, Max, Min, Q, QuerySet, Sum
from django.utils import timezone

from aicache.conf import merged
from aicache.monitoring import recommendations, sketch, summaries
from aicache.monitoring.events import MemoryRecord
from aicache.monitoring.models import (
    IngestionBatch,
    InvalidationEvent,
    MemorySnapshot,
    Resolution,
    Rollup,
    SlowOperation,
)
from aicache.monitoring.readings import memory_usage_stats

LAST = {
    "1h": dt.timedelta(hours=1),
    "24h": dt.timedelta(days=1),
    "7d": dt.timedelta(days=7),
    "30d": dt.timedelta(days=30),
}
INTERVALS = {"minute": Resolution.MINUTE, "hour": Resolution.HOUR, "day": Resolution.DAY}
CACHE_KINDS = ("get", "set", "delete")


@dataclass(frozen=True)
class Window:
    since: dt.datetime
    until: dt.datetime
    operation: str | None = None
    tier: str | None = None

    @property
    def hours(self) -> float:
        return (self.until - self.since).total_seconds() / 3600


def window(
    last: str | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    operation: str | None = None,
    tier: str | None = None,
) -> Window:
    """Validate a window; ``ValueError`` says what is wrong."""
    now = timezone.now()
    if last is not None:
        if since is not None:
            raise ValueError("give either last or since, not both")
        if last not in LAST:
            raise ValueError(f"last must be one of {list(LAST)}, got {last!r}")
        until = until or now
        since = until - LAST[last]
    if since is None:
        raise ValueError("give last (1h, 24h, 7d, 30d) or since")
    until = until or now
    for name, value in (("since", since), ("until", until)):
        if not isinstance(value, dt.datetime) or timezone.is_naive(value):
            raise ValueError(f"{name} must be a timezone-aware datetime")
    if since >= until:
        raise ValueError("since must be before until")
    for name, value in (("operation", operation), ("tier", tier)):
        if value is not None and (not isinstance(value, str) or len(value) > 64):
            raise ValueError(f"{name} must be a string of at most 64 characters")
    return Window(since, until, operation or None, tier or None)


def _floor(t: dt.datetime, seconds: int) -> dt.datetime:
    ts = int(t.timestamp())
    return dt.datetime.fromtimestamp(ts - ts % seconds, tz=dt.UTC)


def _ceil(t: dt.datetime, seconds: int) -> dt.datetime:
    floor = _floor(t, seconds)
    return floor if floor == t else floor + dt.timedelta(seconds=seconds)


def segments(w: Window, now: dt.datetime | None = None) -> list[tuple[int, dt.datetime, dt.datetime]]:
    """(resolution, start, end) pieces covering the window with as few rows as possible."""
    horizon = (now or timezone.now()) - dt.timedelta(hours=merged()["MINUTE_ROLLUP_HOURS"])
    start, end = _floor(w.since, 60), _ceil(w.until, 60)
    out: list[tuple[int, dt.datetime, dt.datetime]] = []

    def fill(a: dt.datetime, b: dt.datetime, resolutions: tuple[int, ...]) -> None:
        if a >= b:
            return
        if not resolutions:
            return
        res, rest = resolutions[0], resolutions[1:]
        if res == Resolution.MINUTE:
            if a < horizon:  # minute rows are gone: widen to the enclosing hours
                out.append((Resolution.HOUR, _floor(a, 3600), _ceil(min(b, horizon), 3600)))
                a = max(a, _ceil(min(b, horizon), 3600))
            if a < b:
                out.append((Resolution.MINUTE, a, b))
            return
        inner_a, inner_b = _ceil(a, res), _floor(b, res)
        if inner_a < inner_b:
            out.append((res, inner_a, inner_b))
            fill(a, inner_a, rest)
            fill(inner_b, b, rest)
        else:
            fill(a, b, rest)

    fill(start, end, (Resolution.DAY, Resolution.HOUR, Resolution.MINUTE))
    return out


def rollups(w: Window) -> QuerySet[Rollup]:
    q = Q()
    for res, a, b in segments(w):
        q |= Q(resolution=res, period_start__gte=a, period_start__lt=b)
    return Rollup.objects.filter(q).matching(w.operation, w.tier)


def _aggregate(qs: QuerySet[Rollup]) -> list[dict[str, Any]]:
    return list(
        qs.values("kind", "operation", "tier", "outcome")
        .order_by()
        .annotate(
            n=Sum("count"),
            total=Sum("total_duration"),
            mn=Min("min_duration"),
            mx=Max("max_duration"),
            text=Sum("text_length"),
            text_max=Max("text_length_max"),
            b_in=Sum("bytes_in"),
            b_out=Sum("bytes_out"),
        )
    )


def _sketches(
    qs: QuerySet[Rollup], kinds: Iterable[str], field: str = "sketch"
) -> dict[tuple, dict[int, int]]:
    out: dict[tuple, dict[int, int]] = {}
    for kind, op, tier, outcome, buckets in qs.filter(kind__in=list(kinds)).values_list(
        "kind", "operation", "tier", "outcome", field
    ):
        sketch.merge(out.setdefault((kind, op, tier, outcome), {}), buckets)
    return out


def _combine(groups: list[dict], sketches: dict[tuple, dict], key) -> dict[Any, dict[str, Any]]:
    """Merge aggregated groups (and their sketches) by ``key(group)``."""
    out: dict[Any, dict[str, Any]] = {}
    for g in groups:
        k = key(g)
        if k is None:
            continue
        acc = out.setdefault(
            k, {"n": 0, "total": 0.0, "mn": None, "mx": None, "text": 0, "text_max": 0, "sketch": {}}
        )
        acc["n"] += g["n"] or 0
        acc["total"] += g["total"] or 0.0
        if g["mn"] is not None:
            acc["mn"] = g["mn"] if acc["mn"] is None else min(acc["mn"], g["mn"])
        if g["mx"] is not None:
            acc["mx"] = g["mx"] if acc["mx"] is None else max(acc["mx"], g["mx"])
        acc["text"] += g["text"] or 0
        acc["text_max"] = max(acc["text_max"], g["text_max"] or 0)
        sketch.merge(acc["sketch"], sketches.get((g["kind"], g["operation"], g["tier"], g["outcome"]), {}))
    return out


def _grouped(combined: dict[str, dict]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, acc in sorted(combined.items()):
        if acc["n"]:
            (p95,) = sketch.quantiles(acc["sketch"], (0.95,))
            out[name] = {
                "count": acc["n"],
                "avg_duration": acc["total"] / acc["n"],
                "max_duration": acc["mx"],
                "p95_duration": p95,
            }
    return out


def performance_stats(w: Window) -> dict[str, Any]:
    """``CachePerformanceMonitor.get_performance_stats()``'s shape, for every process, from the DB."""
    raw = merged()
    qs = rollups(w)
    groups = _aggregate(qs)
    sketches = _sketches(qs, (*CACHE_KINDS, "keygen"))
    hits = sum(g["n"] for g in groups if g["kind"] == "get" and g["outcome"].startswith("hit"))
    misses = sum(g["n"] for g in groups if g["kind"] == "get" and g["outcome"] == "miss")
    stats: dict[str, Any] = {
        "timestamp": timezone.now().timestamp(),
        "window": {"since": w.since.isoformat(), "until": w.until.isoformat()},
        "cache_hit_rate": summaries.hit_rate(hits, misses),
        "total_cache_operations": sum(g["n"] for g in groups if g["kind"] in CACHE_KINDS),
        "cache_hits": hits,
        "cache_misses": misses,
    }
    keygen = _combine(groups, sketches, lambda g: "all" if g["kind"] == "keygen" else None).get("all")
    if keygen and keygen["n"]:
        stats["key_generation"] = {
            **summaries.sketch_summary(
                keygen["n"],
                keygen["total"],
                keygen["mn"],
                keygen["mx"],
                keygen["sketch"],
                raw["KEY_GENERATION_THRESHOLD"],
            ),
            "avg_text_length": keygen["text"] / keygen["n"],
            "max_text_length": keygen["text_max"],
        }
    ops = _combine(groups, sketches, lambda g: "all" if g["kind"] in CACHE_KINDS else None).get("all")
    if ops and ops["n"]:
        slow = SlowOperation.objects.filter(timestamp__gte=w.since, timestamp__lt=w.until)
        slow = slow.filter(operation=w.operation) if w.operation else slow
        slow = slow.filter(tier=w.tier) if w.tier else slow
        stats["cache_operations"] = {
            **summaries.sketch_summary(ops["n"], ops["total"], ops["mn"], ops["mx"], ops["sketch"]),
            "slow_operations": slow.count(),
            "by_operation_type": _grouped(
                _combine(groups, sketches, lambda g: g["kind"] if g["kind"] in CACHE_KINDS else None)
            ),
            "by_tier": _grouped(
                _combine(groups, sketches, lambda g: g["tier"] or None if g["kind"] in CACHE_KINDS else None)
            ),
        }
    compression = compression_stats(qs, groups)
    if compression:
        stats["compression"] = compression
    memory = memory_usage(w)
    if memory["total_samples"]:
        stats["memory_usage"] = memory
    frequency = invalidation_frequency(w)
    if frequency["total_invalidations"]:
        stats["invalidation"] = frequency
    stats["ingestion"] = ingestion(w, groups)
    return stats


def compression_stats(qs: QuerySet[Rollup], groups: list[dict]) -> dict[str, Any] | None:
    rows = [g for g in groups if g["kind"] == "compress"]
    count = sum(g["n"] for g in rows)
    if not count:
        return None
    ratios = _sketches(qs, ("compress",), "ratio_sketch")
    merged_ratios: dict[int, int] = {}
    for buckets in ratios.values():
        sketch.merge(merged_ratios, buckets)
    processed = sum(g["b_in"] for g in rows)
    stored = sum(g["b_out"] for g in rows)
    best, worst = sketch.extremes(merged_ratios)
    (median,) = sketch.quantiles(merged_ratios, (0.5,))
    return {
        "total_operations": count,
        "avg_compression_ratio": sketch.mean(merged_ratios),
        "median_compression_ratio": median,
        "best_compression_ratio": best,
        "worst_compression_ratio": worst,
        "avg_compression_time": sum(g["total"] for g in rows) / count,
        "max_compression_time": max(g["mx"] or 0.0 for g in rows),
        "total_bytes_processed": processed,
        "total_bytes_saved": processed - stored,
        "overall_savings_percent": (processed - stored) / processed * 100 if processed else 0.0,
    }


def memory_usage(w: Window) -> dict[str, Any]:
    rows = MemorySnapshot.objects.filter(timestamp__gte=w.since, timestamp__lt=w.until).order_by("timestamp")
    samples = [
        MemoryRecord(
            r.timestamp.timestamp(),
            r.memory_entries or 0,
            r.memory_bytes or 0,
            r.memory_max_entries or 0,
            r.memory_max_bytes or 0,
            r.redis_used_bytes,
            r.process_rss_bytes,
        )
        for r in rows.filter(source=MemorySnapshot.Source.PROCESS)
    ]
    stats = memory_usage_stats(samples)
    redis = rows.filter(source=MemorySnapshot.Source.REDIS).last()
    if redis is not None:
        stats["redis"] = {
            "used_bytes": redis.redis_used_bytes,
            "live_entries": redis.redis_key_count,
            "keyspace_hits": redis.redis_keyspace_hits,
            "keyspace_misses": redis.redis_keyspace_misses,
            "timestamp": redis.timestamp.timestamp(),
        }
        if "current" in stats:
            stats["current"]["redis_used_bytes"] = redis.redis_used_bytes
    return stats


def memory_warnings(w: Window) -> list[dict[str, Any]]:
    usage = memory_usage(w)
    current = usage.get("current") or (
        {"redis_used_bytes": usage["redis"]["used_bytes"]} if "redis" in usage else None
    )
    return recommendations.memory_warnings(current, merged()["MEMORY_WARNING_THRESHOLD_BYTES"])


def invalidation_frequency(w: Window) -> dict[str, Any]:
    raw = merged()
    rows = InvalidationEvent.objects.filter(timestamp__gte=w.since, timestamp__lt=w.until)
    records = [
        {**r, "timestamp": r["timestamp"].timestamp()}
        for r in rows.values("timestamp", "pattern", "keys_invalidated", "duration", "invalidation_type")
    ]
    return summaries.invalidation_frequency(
        records,
        now=w.until.timestamp(),
        window_hours=w.hours,
        warning_per_hour=raw["INVALIDATION_RATE_WARNING_PER_HOUR"],
        critical_per_hour=raw["INVALIDATION_RATE_CRITICAL_PER_HOUR"],
    )


def invalidation_recommendations(w: Window) -> list[dict[str, Any]]:
    return recommendations.invalidation_recommendations(invalidation_frequency(w))


def slow_operations(w: Window, threshold_multiplier: float = 2.0, limit: int = 50) -> dict[str, list[dict]]:
    """``get_recent_slow_operations``'s shape. Slow cache operations are stored one by one (those
    over CACHE_OPERATION_THRESHOLD); "times slower" compares with the window's average."""
    groups = _aggregate(rollups(w).filter(kind__in=CACHE_KINDS))
    count = sum(g["n"] for g in groups)
    avg = sum(g["total"] for g in groups) / count if count else 0.0
    rows = SlowOperation.objects.filter(timestamp__gte=w.since, timestamp__lt=w.until)
    if w.operation:
        rows = rows.filter(operation=w.operation)
    out = []
    if avg > 0:
        for r in rows.filter(duration__gt=avg * threshold_multiplier).order_by("-duration")[:limit]:
            out.append(
                {
                    "timestamp": r.timestamp.timestamp(),
                    "operation": r.action,
                    "operation_type": r.operation,
                    "tier": r.tier,
                    "source": r.source,
                    "duration": r.duration,
                    "cache_hit": r.cache_hit,
                    "text_length": r.text_length,
                    "process": r.process,
                    "times_slower": r.duration / avg,
                }
            )
    return {"key_generation": [], "cache_operations": out, "compression": []}


def ingestion(w: Window, groups: list[dict] | None = None) -> dict[str, int]:
    batches = IngestionBatch.objects.filter(received_at__gte=w.since, received_at__lt=w.until).aggregate(
        batches=Count("id"), dropped_batches=Sum("dropped_batches"), dropped_records=Sum("dropped_records")
    )
    groups = groups if groups is not None else _aggregate(rollups(w))
    pending = sum(g["n"] for g in groups if g["kind"] == "counter" and g["operation"] == "dropped_pending")
    return {
        "batches": batches["batches"] or 0,
        "dropped_batches": batches["dropped_batches"] or 0,
        "dropped_records": (batches["dropped_records"] or 0) + pending,
    }


def time_series(w: Window, interval: str = "hour") -> list[dict[str, Any]]:
    """Per period: operations, hits, misses, hit rate, get latency p50/p95/p99 by tier,
    compression bytes saved, invalidations, net compute seconds and tokens that hits saved."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {list(INTERVALS)}, got {interval!r}")
    res = INTERVALS[interval]
    qs = Rollup.objects.filter(
        resolution=res, period_start__gte=_floor(w.since, res), period_start__lt=_ceil(w.until, res)
    ).matching(w.operation, w.tier)
    points: dict[dt.datetime, dict[str, Any]] = {}

    def point(at: dt.datetime) -> dict[str, Any]:
        return points.setdefault(
            at,
            {
                "period_start": at.isoformat(),
                "operations": 0,
                "hits": 0,
                "misses": 0,
                "compression_bytes_saved": 0,
                "invalidations": 0,
                "saved_seconds": 0.0,
                "saved_tokens": 0,
                "_lat": {},
            },
        )

    rows = (
        qs.values("period_start", "kind", "tier", "outcome")
        .order_by()
        .annotate(n=Sum("count"), total=Sum("total_duration"), b_in=Sum("bytes_in"), b_out=Sum("bytes_out"))
    )
    for r in rows:
        p = point(r["period_start"])
        kind = r["kind"]
        if kind in CACHE_KINDS:
            p["operations"] += r["n"]
        if kind == "get":
            p["hits" if r["outcome"].startswith("hit") else "misses"] += r["n"]
        elif kind == "compress":
            p["compression_bytes_saved"] += r["b_in"] - r["b_out"]
        elif kind == "invalidate":
            p["invalidations"] += r["n"]
        elif kind == "saved":  # net compute time saved: what the hits saved less what they took
            p["saved_seconds"] += r["total"] or 0.0
            p["saved_tokens"] += (r["b_in"] or 0) + (r["b_out"] or 0)
        elif kind == "hit_cost":
            p["saved_seconds"] -= r["total"] or 0.0
    for at, tier, buckets in qs.filter(kind="get").values_list("period_start", "tier", "sketch"):
        sketch.merge(point(at)["_lat"].setdefault(tier, {}), buckets)
    out = []
    for at in sorted(points):
        p = points[at]
        p["hit_rate"] = summaries.hit_rate(p["hits"], p["misses"])
        p["latency_by_tier"] = {
            tier: dict(zip(("p50", "p95", "p99"), sketch.quantiles(buckets, (0.5, 0.95, 0.99)), strict=True))
            for tier, buckets in sorted(p.pop("_lat").items())
        }
        out.append(p)
    return out


def savings(w: Window) -> dict[str, Any]:
    """What hits saved in the window, by operation and model: compute time (gross, and net of what
    the hits themselves cost), tokens, and money for the models ``MODEL_PRICES`` prices. A model
    without a price shows tokens and no money (never a zero); ``pricing_coverage`` is the share of
    saved tokens that had a price (None when no tokens were saved)."""
    from aicache.savings import price

    prices = merged()["MODEL_PRICES"]
    qs = rollups(Window(w.since, w.until, w.operation, None)).filter(kind__in=("saved", "hit_cost"))
    rows = (
        qs.values("kind", "operation", "tier")
        .order_by()
        .annotate(n=Sum("count"), total=Sum("total_duration"), b_in=Sum("bytes_in"), b_out=Sum("bytes_out"))
    )
    by_key: dict[tuple[str, str], dict[str, Any]] = {}
    for row in rows:
        acc = by_key.setdefault(
            (row["operation"], row["tier"]),
            {
                "hits": 0,
                "compute_seconds": 0.0,
                "hit_seconds": 0.0,
                "prompt_tokens": 0,
                "completion_tokens": 0,
            },
        )
        if row["kind"] == "saved":
            acc["hits"] += row["n"] or 0
            acc["compute_seconds"] += row["total"] or 0.0
            acc["prompt_tokens"] += row["b_in"] or 0
            acc["completion_tokens"] += row["b_out"] or 0
        else:
            acc["hit_seconds"] += row["total"] or 0.0
    total = _saving_block()
    by_operation: dict[str, dict[str, Any]] = {}
    by_model: dict[str, dict[str, Any]] = {}
    priced_tokens = 0
    for (operation, model), acc in sorted(by_key.items()):
        cost = price(prices, model, acc["prompt_tokens"], acc["completion_tokens"])
        tokens = acc["prompt_tokens"] + acc["completion_tokens"]
        if cost is not None:
            priced_tokens += tokens
        for block in (
            total,
            by_operation.setdefault(operation, _saving_block()),
            by_model.setdefault(model, _saving_block()),
        ):
            _add_saving(block, acc, cost)
    tokens_total = total["tokens"]["total"]
    total["pricing_coverage_ratio"] = priced_tokens / tokens_total if tokens_total else None
    return {
        **total,
        "window": {"since": w.since.isoformat(), "until": w.until.isoformat()},
        "by_operation": by_operation,
        "by_model": by_model,
    }


def _saving_block() -> dict[str, Any]:
    return {
        "hits": 0,
        "compute_seconds": 0.0,
        "hit_seconds": 0.0,
        "net_seconds": 0.0,
        "tokens": {"prompt": 0, "completion": 0, "total": 0},
        "cost": {},
    }


def _add_saving(block: dict[str, Any], acc: dict[str, Any], cost: tuple[float, str] | None) -> None:
    block["hits"] += acc["hits"]
    block["compute_seconds"] += acc["compute_seconds"]
    block["hit_seconds"] += acc["hit_seconds"]
    block["net_seconds"] = block["compute_seconds"] - block["hit_seconds"]
    block["tokens"]["prompt"] += acc["prompt_tokens"]
    block["tokens"]["completion"] += acc["completion_tokens"]
    block["tokens"]["total"] = block["tokens"]["prompt"] + block["tokens"]["completion"]
    if cost is not None:
        amount, currency = cost
        block["cost"][currency] = block["cost"].get(currency, 0.0) + amount


# --- Additions for the API, the commands and the dashboard (one aggregation, three surfaces) ---

PERCENTILES = (0.5, 0.95, 0.99)
_NAMES = ("p50", "p95", "p99")
MAX_POINTS = 2000  # most time-series points one question may ask for


def latency_by_tier(w: Window, kinds: Iterable[str] = ("get",)) -> dict[str, dict[str, Any]]:
    """``{tier: {count, p50, p95, p99}}`` of cache reads (seconds, each within the sketch's 1 %)."""
    merged_by_tier: dict[str, dict[int, int]] = {}
    counts: dict[str, int] = {}
    for tier, n, buckets in rollups(w).filter(kind__in=list(kinds)).values_list("tier", "count", "sketch"):
        name = tier or "unknown"
        counts[name] = counts.get(name, 0) + n
        sketch.merge(merged_by_tier.setdefault(name, {}), buckets)
    return {
        tier: {
            "count": counts[tier],
            **dict(zip(_NAMES, sketch.quantiles(merged_by_tier[tier], PERCENTILES), strict=True)),
        }
        for tier in sorted(merged_by_tier)
    }


def overview(w: Window) -> dict[str, Any]:
    """What ``GET stats/`` and ``aicache_stats`` show: ``performance_stats`` plus read latency
    percentiles by tier and the invalidation recommendations, all from the database."""
    return {
        **performance_stats(w),
        "latency_by_tier": latency_by_tier(w),
        "recommendations": invalidation_recommendations(w),
        "saved": savings(w),
        "source": "database",
    }


def check_points(w: Window, interval: str) -> None:
    """``ValueError`` when ``time_series(w, interval)`` would return more than MAX_POINTS points."""
    if interval not in INTERVALS:
        raise ValueError(f"interval must be one of {list(INTERVALS)}, got {interval!r}")
    points = (w.until - w.since).total_seconds() / int(INTERVALS[interval])
    if points > MAX_POINTS:
        raise ValueError(f"{interval} points over this window would be {points:.0f}; at most {MAX_POINTS}")


def invalidation_events(
    w: Window,
    invalidation_type: str | None = None,
    status: str | None = None,
    context: str | None = None,
) -> QuerySet[InvalidationEvent]:
    """The window's invalidation events, newest first; ``w.operation`` matches the pattern exactly
    (an operation invalidation records the operation's name as its pattern), ``context`` is a
    case-insensitive substring of the recorded context."""
    rows = InvalidationEvent.objects.filter(timestamp__gte=w.since, timestamp__lt=w.until)
    if w.operation:
        rows = rows.filter(pattern=w.operation)
    if invalidation_type:
        rows = rows.filter(invalidation_type=invalidation_type)
    if status:
        rows = rows.filter(status=status)
    if context:
        rows = rows.filter(operation_context__icontains=context)
    return rows.order_by("-timestamp", "-id")


def latest_memory_snapshots(w: Window) -> dict[str, list[dict[str, Any]]]:
    """The newest snapshot of each process and of each cache's Redis inside the window."""
    rows = MemorySnapshot.objects.filter(timestamp__gte=w.since, timestamp__lt=w.until)
    latest = rows.values("source", "process").order_by().annotate(last=Max("timestamp"))
    q = Q()
    for r in latest:
        q |= Q(source=r["source"], process=r["process"], timestamp=r["last"])
    out: dict[str, list[dict[str, Any]]] = {"processes": [], "redis": []}
    if not latest:
        return out
    seen: set[tuple[str, str]] = set()
    for snap in rows.filter(q).order_by("source", "process", "-id"):
        if (snap.source, snap.process) in seen:
            continue
        seen.add((snap.source, snap.process))
        if snap.source == MemorySnapshot.Source.REDIS:
            out["redis"].append(
                {
                    "cache": snap.process,
                    "timestamp": snap.timestamp,
                    "used_bytes": snap.redis_used_bytes,
                    "live_entries": snap.redis_key_count,
                    "keyspace_hits": snap.redis_keyspace_hits,
                    "keyspace_misses": snap.redis_keyspace_misses,
                }
            )
        else:
            out["processes"].append(
                {
                    "process": snap.process,
                    "timestamp": snap.timestamp,
                    "memory_entries": snap.memory_entries,
                    "memory_bytes": snap.memory_bytes,
                    "memory_max_entries": snap.memory_max_entries,
                    "memory_max_bytes": snap.memory_max_bytes,
                    "process_rss_bytes": snap.process_rss_bytes,
                }
            )
    return out


def table_rows() -> dict[str, int]:
    """Rows per monitoring table (``aicache_status``)."""
    return {
        model._meta.db_table: model.objects.count()
        for model in (Rollup, SlowOperation, InvalidationEvent, MemorySnapshot, IngestionBatch)
    }


def last_batch_age(now: dt.datetime | None = None) -> float | None:
    """Seconds since the newest ingested batch arrived (any process), or None if none has."""
    last = IngestionBatch.objects.order_by().aggregate(last=Max("received_at"))["last"]
    return None if last is None else max(0.0, ((now or timezone.now()) - last).total_seconds())


def expired_rows(now: dt.datetime | None = None) -> dict[str, int]:
    """What ``maintenance.cleanup`` would delete now, by the same retention settings (counted)."""
    raw = merged()
    now = now or timezone.now()
    raw_cutoff = now - dt.timedelta(days=raw["RETENTION_RAW_DAYS"])
    rollup_cutoff = now - dt.timedelta(days=raw["RETENTION_ROLLUP_DAYS"])
    return {
        "slow_operations": SlowOperation.objects.filter(timestamp__lt=raw_cutoff).count(),
        "invalidation_events": InvalidationEvent.objects.filter(timestamp__lt=raw_cutoff).count(),
        "memory_snapshots": MemorySnapshot.objects.filter(timestamp__lt=raw_cutoff).count(),
        "ingestion_batches": IngestionBatch.objects.filter(received_at__lt=raw_cutoff).count(),
        "rollups": Rollup.objects.filter(period_start__lt=rollup_cutoff).count(),
    }


def operations(w: Window) -> list[dict[str, Any]]:
    """Reads per operation, busiest first: ``reads``, ``hits``, ``memory_hits`` (answered by a
    memory tier), ``misses``, ``hit_rate`` (%), ``writes``."""
    table: dict[str, dict[str, Any]] = {}
    for g in _aggregate(rollups(w).filter(kind__in=("get", "set"))):
        row = table.setdefault(
            g["operation"],
            {"operation": g["operation"], "reads": 0, "hits": 0, "memory_hits": 0, "misses": 0, "writes": 0},
        )
        n = g["n"] or 0
        if g["kind"] == "set":
            row["writes"] += n
            continue
        row["reads"] += n
        if g["outcome"].startswith("hit"):
            row["hits"] += n
            row["memory_hits"] += n if g["outcome"] == "hit_memory" else 0
        elif g["outcome"] == "miss":
            row["misses"] += n
    for row in table.values():
        row["hit_rate"] = summaries.hit_rate(row["hits"], row["misses"])
    return sorted(table.values(), key=lambda r: (-r["reads"], r["operation"]))
