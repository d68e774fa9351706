"""What the admin dashboard shows, computed from ``aicache.monitoring.stats`` (the one aggregation
layer the API and the commands use too) plus two live readings from Redis (live entries, now).

Everything here returns display-ready values (ms, bytes, percentages), so the templates only lay
them out, and the tests can compare the figures the page shows with what stats computed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from django.template.defaultfilters import filesizeformat
from django.utils import timezone

from aicache.conf import merged
from aicache.monitoring import charts, stats
from aicache.monitoring.admin import duration_text, ms

#: The time series interval that gives a readable number of points for each window.
INTERVAL_FOR = {"1h": "minute", "24h": "hour", "7d": "hour", "30d": "day"}
TOP_N = 8


@dataclass(frozen=True)
class Card:
    slug: str
    label: str
    value: str
    detail: str = ""
    level: str = ""  # "", "warning" or "critical"
    lines: list[tuple[str, ...]] = field(default_factory=list)  # (name, figure, figure)


def percent(value: float) -> str:
    return f"{value:.1f} %"


def size(n: float | None) -> str:
    return "-" if n is None else str(filesizeformat(int(n))).replace("\xa0", " ")


def count(n: float) -> str:
    return f"{n:,.0f}" if n == int(n) else f"{n:,.1f}"


def plural(n: int, one: str, many: str) -> str:
    return f"{count(n)} {one if n == 1 else many}"


def ms_axis(seconds: float) -> str:
    return ms(seconds) if seconds else "0 ms"


def figures(w: stats.Window, last: str, live_entries: int | None, now: dt.datetime | None = None) -> dict:
    """Cards, charts, recommendations, warnings and slow operations of one window."""
    now = now or timezone.now()
    raw = merged()
    perf = stats.performance_stats(w)
    ops = stats.operations(w)
    latency = stats.latency_by_tier(w)
    frequency = perf.get("invalidation") or stats.invalidation_frequency(w)
    memory = perf.get("memory_usage") or {}
    hits, misses = perf["cache_hits"], perf["cache_misses"]
    memory_hits = sum(r["memory_hits"] for r in ops)

    cards = [
        Card(
            "hit-rate",
            "Hit rate",
            percent(perf["cache_hit_rate"]),
            f"{count(hits)} hits, {count(misses)} misses of {count(hits + misses)} reads",
        ),
        Card(
            "memory-share",
            "Served from the memory tier",
            percent(memory_hits / hits * 100 if hits else 0.0),
            f"{count(memory_hits)} of {count(hits)} hits",
        ),
        Card(
            "latency",
            "Read latency p50 / p95",
            "" if latency else "no reads",
            "by text-size tier" if latency else "",
            lines=[(tier, ms(p["p50"]), ms(p["p95"])) for tier, p in latency.items()],
        ),
        _compression_card(perf.get("compression")),
        _invalidation_card(frequency),
        *_memory_cards(memory, raw),
        Card(
            "live-entries",
            "Live entries",
            "-" if live_entries is None else count(live_entries),
            "Redis does not answer"
            if live_entries is None
            else "in Redis now (live, from the per-operation indexes)",
            level="critical" if live_entries is None else "",
        ),
        _ingestion_card(perf["ingestion"], stats.last_batch_age(now)),
        *_savings_cards(stats.savings(w)),
    ]
    interval = INTERVAL_FOR.get(last, "hour")
    series = stats.time_series(w, interval)
    return {
        "cards": cards,
        "line_charts": _line_charts(w, series, interval),
        "bar_charts": _bar_charts(ops, frequency),
        "recommendations": stats.invalidation_recommendations(w),
        "memory_warnings": stats.memory_warnings(w),
        "slow_operations": [
            {
                **s,
                "when": dt.datetime.fromtimestamp(s["timestamp"], tz=dt.UTC),
                "duration_ms": ms(s["duration"]),
            }
            for s in stats.slow_operations(w, limit=10)["cache_operations"]
        ],
        "operations": ops,
    }


def _compression_card(compression: dict[str, Any] | None) -> Card:
    if not compression:
        return Card("compression", "Bytes saved by compression", size(0), "nothing compressed in this window")
    return Card(
        "compression",
        "Bytes saved by compression",
        size(compression["total_bytes_saved"]),
        f"{percent(compression['overall_savings_percent'])} of {size(compression['total_bytes_processed'])} "
        f"in {count(compression['total_operations'])} compressed writes",
    )


def _invalidation_card(frequency: dict[str, Any]) -> Card:
    level = frequency["thresholds"]["current_alert_level"]
    return Card(
        "invalidations",
        "Invalidations per hour",
        f"{frequency['rates']['average_per_hour']:.1f}",
        f"{count(frequency['rates']['last_hour'])} in the last hour, alert level {level} "
        f"(warning at {frequency['thresholds']['warning_per_hour']:g}/h)",
        level="" if level == "normal" else level,
    )


def _memory_cards(memory: dict[str, Any], raw: dict[str, Any]) -> list[Card]:
    current = memory.get("current")
    if current:
        budget = current.get("memory_max_bytes") or raw["MEMORY_CACHE_MAX_BYTES"]
        used = current.get("memory_bytes") or 0
        tier = Card(
            "memory-tier",
            "Memory tier",
            size(used),
            f"{percent(used / budget * 100 if budget else 0.0)} of its {size(budget)} budget, "
            f"{count(current.get('memory_entries') or 0)} entries (latest sample)",
        )
    else:
        tier = Card("memory-tier", "Memory tier", "-", "no memory sample in this window")
    threshold = raw["MEMORY_WARNING_THRESHOLD_BYTES"]
    redis = memory.get("redis")
    if redis and redis.get("used_bytes") is not None:
        used = redis["used_bytes"]
        level = "critical" if used > 2 * threshold else "warning" if used > threshold else ""
        redis_card = Card(
            "redis-memory",
            "Redis memory",
            size(used),
            f"{percent(used / threshold * 100)} of the {size(threshold)} warning threshold (latest snapshot)",
            level=level,
        )
    else:
        redis_card = Card("redis-memory", "Redis memory", "-", "no Redis snapshot in this window")
    return [tier, redis_card]


def _ingestion_card(ingestion: dict[str, int], age_seconds: float | None) -> Card:
    dropped = ingestion["dropped_batches"] or ingestion["dropped_records"]
    age = "never" if age_seconds is None else f"{duration_text(age_seconds)} ago"
    return Card(
        "ingestion",
        "Last ingested batch",
        age,
        f"{plural(ingestion['batches'], 'batch', 'batches')} in this window; dropped: "
        f"{plural(ingestion['dropped_batches'], 'batch', 'batches')}, "
        f"{plural(ingestion['dropped_records'], 'record', 'records')}",
        level="warning" if dropped else "",
    )


def periods(w: stats.Window, interval: str) -> list[dt.datetime]:
    """Every period start of ``interval`` that overlaps the window."""
    step = int(stats.INTERVALS[interval])
    first = int(w.since.timestamp()) // step * step
    last = int(w.until.timestamp())
    return [dt.datetime.fromtimestamp(t, tz=dt.UTC) for t in range(first, last, step)]


def seconds_text(seconds: float) -> str:
    if abs(seconds) >= 3600:
        return f"{seconds / 3600:.1f} h"
    if abs(seconds) >= 60:
        return f"{seconds / 60:.1f} min"
    return f"{seconds:.1f} s" if abs(seconds) >= 1 else ms(seconds)


def money_text(amount: float, currency: str) -> str:
    return f"{amount:,.2f} {currency}" if amount >= 1 else f"{amount:.4f} {currency}"


def _savings_cards(saved: dict[str, Any]) -> list[Card]:
    """What costed hits saved (``stats.savings``): entries whose compute time and token usage were
    recorded. Money only for models with a price in MODEL_PRICES: never a made-up zero."""
    hits = saved["hits"]
    if not hits:
        none = "no hit of a costed entry in this window"
        return [
            Card("compute-saved", "Compute time saved", "0 s", none),
            Card("tokens-saved", "Tokens saved", "0", none),
            Card("money-saved", "Money saved", "-", none),
        ]
    tokens = saved["tokens"]
    coverage = saved["pricing_coverage_ratio"]
    if saved["cost"]:
        money = ", ".join(money_text(amount, currency) for currency, amount in sorted(saved["cost"].items()))
        money_detail = f"{percent((coverage or 0) * 100)} of the saved tokens have a price (MODEL_PRICES)"
    else:
        money, money_detail = "-", "no model of these hits has a price: set MODEL_PRICES"
    return [
        Card(
            "compute-saved",
            "Compute time saved",
            seconds_text(saved["net_seconds"]),
            f"{plural(hits, 'hit', 'hits')} saved {seconds_text(saved['compute_seconds'])} of compute "
            f"and took {seconds_text(saved['hit_seconds'])} themselves",
        ),
        Card(
            "tokens-saved",
            "Tokens saved",
            count(tokens["total"]),
            f"{count(tokens['prompt'])} prompt, {count(tokens['completion'])} completion",
        ),
        Card("money-saved", "Money saved", money, money_detail),
    ]


def _line_charts(w: stats.Window, series: list[dict[str, Any]], interval: str) -> list[charts.LineChart]:
    """Periods without a row had no traffic: counts are 0 there, rates and latencies are absent."""
    at = {dt.datetime.fromisoformat(p["period_start"]): p for p in series}
    times = sorted(set(periods(w, interval)) | set(at))
    points = [at.get(t) for t in times]

    def counts(name: str) -> list[float | None]:
        return [p[name] if p else 0 for p in points]

    tiers = sorted({t for p in series for t in p["latency_by_tier"]})
    latency: dict[str, list[float | None]] = {}
    for tier in tiers:
        for q in ("p50", "p95"):
            latency[f"{tier} {q}"] = [
                p["latency_by_tier"].get(tier, {}).get(q) if p else None for p in points
            ]
    hit_rate = [p["hit_rate"] if p and p["hits"] + p["misses"] else None for p in points]
    return [
        charts.line_chart(
            "hits-misses",
            "Hits and misses",
            w.since,
            w.until,
            times,
            {"hits": counts("hits"), "misses": counts("misses")},
            count,
        ),
        charts.line_chart(
            "hit-rate", "Hit rate", w.since, w.until, times, {"hit rate": hit_rate}, percent, y_max=100.0
        ),
        charts.line_chart("latency", "Read latency by tier", w.since, w.until, times, latency, ms_axis),
        charts.line_chart(
            "invalidations",
            "Invalidations",
            w.since,
            w.until,
            times,
            {"invalidations": counts("invalidations")},
            count,
        ),
        charts.line_chart(
            "saved",
            "Compute time saved (net)",
            w.since,
            w.until,
            times,
            {"seconds saved": counts("saved_seconds")},
            seconds_text,
        ),
    ]


def _bar_charts(ops: list[dict[str, Any]], frequency: dict[str, Any]) -> list[charts.BarChart]:
    busiest = ops[:TOP_N]
    by_rate = sorted((r for r in ops if r["reads"]), key=lambda r: (-r["hit_rate"], r["operation"]))[:TOP_N]
    patterns = list(frequency["patterns"]["most_common_patterns"].items())[:TOP_N]  # {pattern: count}
    return [
        charts.bar_chart(
            "top-traffic", "Top operations by reads", [(r["operation"], r["reads"]) for r in busiest], count
        ),
        charts.bar_chart(
            "top-hit-rate",
            "Top operations by hit rate",
            [(r["operation"], r["hit_rate"]) for r in by_rate],
            percent,
            top=100.0,
        ),
        charts.bar_chart(
            "top-patterns",
            "Top invalidation patterns",
            patterns,
            count,
        ),
    ]
