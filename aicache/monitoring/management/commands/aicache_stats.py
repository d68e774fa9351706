"""manage.py aicache_stats: hit rate, latency by tier, bytes saved, invalidations, recommendations."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from aicache.monitoring import stats
from aicache.monitoring.management.commands._common import add_window_arguments, table, to_json, window_from


def _ms(seconds: float | None) -> str:
    return "-" if seconds is None else f"{seconds * 1000:.3f}"


class Command(BaseCommand):
    help = "Cache stats of every process over a window, from the monitoring database (a table, or --json)."

    def add_arguments(self, parser):
        add_window_arguments(parser)
        parser.add_argument("--json", action="store_true", help="print the stats as JSON, nothing else")

    def handle(self, *args: Any, **options: Any) -> None:
        data = stats.overview(window_from(options))
        if options["json"]:
            self.stdout.write(to_json(data))
            return
        out = self.stdout.write
        w = data["window"]
        out(f"aicache stats, every process (from the database), {w['since']} .. {w['until']}")
        out(
            f"reads: {data['cache_hits'] + data['cache_misses']}  hits: {data['cache_hits']}  "
            f"misses: {data['cache_misses']}  hit rate: {data['cache_hit_rate']:.1f} %"
        )
        tiers = data["latency_by_tier"]
        if tiers:
            rows = [[t, v["count"], _ms(v["p50"]), _ms(v["p95"]), _ms(v["p99"])] for t, v in tiers.items()]
            out("\nread latency by tier (ms)")
            out(table(rows, ["tier", "reads", "p50", "p95", "p99"]))
        compression = data.get("compression")
        saved = compression["total_bytes_saved"] if compression else 0
        percent = compression["overall_savings_percent"] if compression else 0.0
        out(f"\nbytes saved by compression: {saved} ({percent:.1f} %)")
        self._saved(data["saved"])
        inv = data.get("invalidation")
        if inv:
            level = inv["thresholds"]["current_alert_level"]
            out(
                f"invalidations: {inv['total_invalidations']} removing {inv['total_keys_invalidated']} keys; "
                f"last hour {inv['rates']['last_hour']} (alert level {level})"
            )
        else:
            out("invalidations: 0")
        ingestion = data["ingestion"]
        out(
            f"ingestion: {ingestion['batches']} batches, {ingestion['dropped_batches']} dropped batches, "
            f"{ingestion['dropped_records']} dropped records"
        )
        recs = data["recommendations"]
        out("\nrecommendations:" if recs else "\nrecommendations: none")
        for rec in recs:
            out(f"  [{rec['severity']}] {rec['message']}")

    def _saved(self, saved: dict[str, Any]) -> None:
        out = self.stdout.write
        money = ", ".join(f"{amount:.4f} {currency}" for currency, amount in sorted(saved["cost"].items()))
        coverage = saved["pricing_coverage_ratio"]
        out(
            f"saved by {saved['hits']} hits: compute {saved['compute_seconds'] * 1000:.0f} ms "
            f"(net {saved['net_seconds'] * 1000:.0f} ms), tokens {saved['tokens']['total']}"
            + (f", money {money}" if money else "")
            + (f" (prices cover {coverage * 100:.0f} % of tokens)" if coverage is not None else "")
        )
        rows = [
            [
                model or "(unknown)",
                v["hits"],
                f"{v['compute_seconds'] * 1000:.0f}",
                v["tokens"]["total"],
                ", ".join(f"{a:.4f} {c}" for c, a in sorted(v["cost"].items())) or "-",
            ]
            for model, v in saved["by_model"].items()
        ]
        if rows:
            out(table(rows, ["model", "hits", "compute ms saved", "tokens saved", "money saved"]))
