"""manage.py aicache_benchmark: aicache against its alternatives, in one run, on a real Redis."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.test.utils import override_settings

from aicache.bench import harness, micro, report, scenarios, shapes
from aicache.bench.redis_server import RedisServer

GROUPS = (
    "reads",
    "writes",
    "keys",
    "compression",
    "monitoring",
    "seed",
    "concurrency",
    "invalidation",
    "shapes",
    "dictionaries",
)


class Command(BaseCommand):
    help = "Benchmark aicache beside raw redis-py, django-redis, Django's RedisCache and LocMemCache."

    def add_arguments(self, parser):
        parser.add_argument("--quick", action="store_true", help="a one-minute run: fewer calls and entries")
        parser.add_argument(
            "--smoke",
            action="store_true",
            help="a seconds-long run that exercises every step and the report (figures meaningless)",
        )
        parser.add_argument(
            "--json", metavar="FILE", help="also write the results as JSON ('-' for stdout only)"
        )
        parser.add_argument("--only", nargs="+", choices=GROUPS, help="run only these groups")
        parser.add_argument("--redis-url", help="use this Redis (default: start a throwaway redis-server)")
        parser.add_argument(
            "--latency", type=float, help="simulated model latency, seconds (default 0.8; 0.05 quick)"
        )

    def handle(
        self,
        *args: Any,
        quick: bool,
        smoke: bool,
        json: str | None,
        only: list[str] | None,
        redis_url: str | None,
        latency: float | None,
        **options: Any,
    ) -> None:
        if latency is not None and latency < 0:
            raise CommandError("--latency must be >= 0")
        groups = only or list(GROUPS)
        scale: bool | float = micro.SMOKE if smoke else quick
        server = None
        if redis_url is None:
            try:
                server = RedisServer(Path(tempfile.mkdtemp(prefix="aicache-bench-")))
                server.start()
            except RuntimeError as exc:
                raise CommandError(str(exc)) from exc
            redis_url = f"{server.url}/0"
        try:
            # Benchmarks measure the cache, not the history pipeline: nothing is shipped to Celery.
            with override_settings(AICACHE={**getattr(settings, "AICACHE", {}), "HISTORY_ENABLED": False}):
                data = self._run(groups, redis_url, scale, latency, server)
        finally:
            if server is not None:
                server.stop()
        data["targets"] = report.targets(data)
        text = report.markdown(data)
        if json == "-":
            self.stdout.write(__import__("json").dumps(data, indent=2, default=str))
            return
        self.stdout.write(text)
        if json:
            Path(json).write_text(__import__("json").dumps(data, indent=2, default=str), encoding="utf-8")
            self.stdout.write(f"JSON written to {json}")

    def _run(self, groups, url, quick, latency, server) -> dict[str, Any]:
        data: dict[str, Any] = {"machine": harness.machine(server.binary if server else None), "quick": quick}
        steps = {
            "reads": lambda: [r.as_dict() for r in micro.reads(url, quick)],
            "writes": lambda: [r.as_dict() for r in micro.writes(url, quick)],
            "keys": lambda: [r.as_dict() for r in micro.key_generation(quick)],
            "compression": lambda: dict(
                zip(("codecs", "stored"), micro.compression(url, quick), strict=True)
            ),
            "monitoring": lambda: [r.as_dict() for r in micro.monitoring_overhead(url, quick)],
            "seed": lambda: scenarios.seed_scenario(
                url, latency if latency is not None else (0.05 if quick else 0.8), quick=quick
            ),
            "concurrency": lambda: scenarios.concurrency(url, quick),
            "invalidation": lambda: scenarios.invalidation_at_scale(url, quick),
            "shapes": lambda: shapes.targets(url, quick),
            "dictionaries": lambda: shapes.dictionary_codecs(quick),
        }
        for group in groups:
            self.stderr.write(f"running {group}...")
            data[group] = steps[group]()
        return data
