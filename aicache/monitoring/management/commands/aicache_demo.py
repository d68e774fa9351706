"""manage.py aicache_demo: realistic traffic through the reference text processor, then a summary.

Requests follow a Zipf-like popularity over ``--patterns`` distinct requests (a few hot ones and a
long tail), with texts of every tier's length and all five operations, sent by ``--concurrency``
threads through ``get_or_compute``. Its recorder feeds /metrics and, through Celery, the history,
so the API, the admin and the dashboard have something to show.
"""

from __future__ import annotations

import random
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.core.cache import caches
from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from aicache import processor
from aicache.bench.payloads import prose
from aicache.checks import aicache_aliases
from aicache.monitoring.management.commands._common import bounded_int, to_json
from aicache.monitoring.summaries import percentile

LENGTHS = (120, 300, 450, 900, 2500, 4000, 12000)  # small, medium and large texts
QUESTIONS = ("What does the text say about errors?", "Who benefits most?", "What is the main risk?")


def patterns(n: int, seed: int) -> list[tuple[str, str, dict | None, str | None]]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        operation = processor.OPERATIONS[i % len(processor.OPERATIONS)]
        text = prose(rng.choice(LENGTHS), seed=seed * 7919 + i)
        question = rng.choice(QUESTIONS) if operation == "qa" else None
        options = {"max_sentences": rng.choice((2, 3))} if operation == "summarize" else None
        out.append((text, operation, options, question))
    return out


def _latency(value: str) -> float:
    seconds = float(value)
    if not 0 <= seconds <= 60:
        raise ValueError(value)
    return seconds


class Command(BaseCommand):
    help = "Send realistic traffic through the reference text processor and aicache, then summarise it."

    def add_arguments(self, parser):
        parser.add_argument("--requests", type=bounded_int(1, 1_000_000), default=300, metavar="N")
        parser.add_argument("--concurrency", type=bounded_int(1, 64), default=8, metavar="C")
        parser.add_argument("--patterns", type=bounded_int(1, 100_000), default=30, metavar="P")
        parser.add_argument(
            "--latency",
            type=_latency,
            metavar="S",
            help="simulated model latency, seconds (default: settings)",
        )
        parser.add_argument("--seed", type=bounded_int(0, 2**31), default=1)
        parser.add_argument("--cache", help="cache alias (default: the first aicache cache)")
        parser.add_argument("--json", action="store_true", help="print the summary as JSON, nothing else")

    def handle(self, *args: Any, **options: Any) -> None:
        aliases = [alias for alias, _ in aicache_aliases()]
        alias = options["cache"] or (aliases[0] if aliases else None)
        if alias not in aliases:
            raise CommandError(
                f"--cache must name an aicache cache: {', '.join(aliases) or 'none configured'}"
            )
        cache = caches[alias]
        model = (
            processor.LocalTextProcessor(options["latency"])
            if options["latency"] is not None
            else processor.get_processor()
        )
        if not cache.ping():
            self.stderr.write("warning: Redis does not answer; every request will call the model")
        pool = patterns(options["patterns"], options["seed"])
        rng = random.Random(options["seed"])
        weights = [1 / (rank + 1) ** 1.1 for rank in range(len(pool))]
        plan = rng.choices(range(len(pool)), weights=weights, k=options["requests"])

        lock = threading.Lock()
        calls = 0
        sources: dict[str, int] = {}
        latencies: list[float] = []

        def one(index: int) -> None:
            nonlocal calls
            text, operation, opts, question = pool[index]

            def compute() -> dict[str, Any]:
                nonlocal calls
                with lock:
                    calls += 1
                return model.process(text, operation, opts, question)

            started = time.perf_counter()
            answer = cache.get_or_compute(text, operation, compute, opts, question)
            elapsed = time.perf_counter() - started
            with lock:
                source = answer.get("cache_source", "compute")
                sources[source] = sources.get(source, 0) + 1
                latencies.append(elapsed)

        started = time.perf_counter()
        with (
            tqdm(total=len(plan), desc="aicache demo", unit="req", file=sys.stderr, disable=None) as bar,
            ThreadPoolExecutor(options["concurrency"]) as executor,
        ):
            for future in [executor.submit(one, i) for i in plan]:
                future.result()
                bar.update(1)
        wall = time.perf_counter() - started
        self._ship()
        latencies.sort()
        summary = {
            "cache": alias,
            "requests": len(plan),
            "distinct_requests": len(set(plan)),
            "concurrency": options["concurrency"],
            "model_calls": calls,
            "model_calls_avoided": len(plan) - calls,
            "answered_by": dict(sorted(sources.items())),
            # memory, redis and coalesced (served by another caller's compute) are all hits
            "hit_rate_percent": (len(plan) - sources.get("compute", 0)) / len(plan) * 100,
            "wall_seconds": wall,
            "requests_per_second": len(plan) / wall if wall else None,
            "latency_ms": {f"p{q}": percentile(latencies, q) * 1000 for q in (50, 95, 99)},
        }
        if options["json"]:
            self.stdout.write(to_json(summary))
            return
        out = self.stdout.write
        out(
            f"{summary['requests']} requests ({summary['distinct_requests']} distinct) in {wall:.2f} s "
            f"with {summary['concurrency']} threads: {calls} model calls, "
            f"{summary['model_calls_avoided']} avoided"
        )
        out("answered by: " + ", ".join(f"{k} {v}" for k, v in summary["answered_by"].items()))
        lat = summary["latency_ms"]
        out(
            f"hit rate {summary['hit_rate_percent']:.1f} %; latency p50 {lat['p50']:.2f} ms, "
            f"p95 {lat['p95']:.2f} ms, p99 {lat['p99']:.2f} ms"
        )

    @staticmethod
    def _ship() -> None:
        """Hand what was recorded to Prometheus and (with history on) to the Celery pipeline now,
        rather than at the next exporter tick."""
        from aicache.monitoring.exporter import get_exporter
        from aicache.monitoring.flusher import get_flusher

        get_exporter().flush_now(force_memory_sample=True)
        flusher = get_flusher()
        if flusher is not None:
            flusher.flush(timeout=5.0)
