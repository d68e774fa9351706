"""Scenario benchmarks: the seed's workload, concurrency, invalidation at scale."""

from __future__ import annotations

import multiprocessing
import os
import random
import statistics
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aicache import invalidation
from aicache.bench.micro import make_aicache
from aicache.bench.payloads import prose

OPERATIONS = ("summarize", "sentiment", "key_points", "questions", "qa")


def _patterns(n: int) -> list[tuple[str, str, dict | None, str | None]]:
    rng = random.Random(42)
    out = []
    for i in range(n):
        op = OPERATIONS[i % len(OPERATIONS)]
        text = prose(rng.randint(300, 3000), seed=100 + i)
        question = "What does the text say about errors?" if op == "qa" else None
        options = {"max_sentences": 3} if op == "summarize" else None
        out.append((text, op, options, question))
    return out


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[max(0, round(q / 100 * len(values)) - 1)]


def seed_scenario(
    url: str, latency: float, requests: int = 1000, patterns: int = 50, clients: int = 20, quick: bool = False
) -> dict[str, Any]:
    """``requests`` requests over ``patterns`` distinct ones through the reference processor, from
    ``clients`` concurrent clients: without a cache, and with aicache (cold, then warm)."""
    from aicache.processor import LocalTextProcessor

    processor = LocalTextProcessor(latency)
    work = _patterns(patterns)
    rng = random.Random(7)
    sequence = [work[rng.randrange(patterns)] for _ in range(requests)]
    calls = {"n": 0}
    lock = threading.Lock()

    class Counting:
        def process(self, *args: Any) -> dict[str, Any]:
            with lock:
                calls["n"] += 1
            return processor.process(*args)

    def run(handler, clients: int = clients) -> tuple[float, list[float], list[dict]]:
        latencies: list[float] = []
        results: list[dict] = []

        def one(item):
            t0 = time.perf_counter()
            result = handler(*item)
            latencies.append(time.perf_counter() - t0)
            results.append(result)

        started = time.perf_counter()
        with ThreadPoolExecutor(clients) as pool:
            list(pool.map(one, sequence))
        return time.perf_counter() - started, latencies, results

    counting = Counting()
    no_cache_total, no_cache_lat, _ = run(lambda t, op, o, q: counting.process(t, op, o, q))
    model_calls_uncached = calls["n"]
    cache = make_aicache(url)
    calls["n"] = 0

    def cached(t, op, o, q):  # what aicache.processor.process_cached does
        return cache.get_or_compute(t, op, lambda: counting.process(t, op, o, q), o, q)

    cold_total, cold_lat, cold_results = run(cached)
    cold_calls = calls["n"]
    warm_total, warm_lat, warm_results = run(cached, clients=1)  # one client: the cache, not the GIL
    cache.invalidate_all()
    hits = sum(r["cache_hit"] for r in cold_results)
    return {
        "requests": requests,
        "patterns": patterns,
        "clients": clients,
        "model_latency_s": latency,
        "no_cache": {
            "total_s": no_cache_total,
            "p50_ms": _pct(no_cache_lat, 50) * 1e3,
            "p95_ms": _pct(no_cache_lat, 95) * 1e3,
            "model_calls": model_calls_uncached,
        },
        "aicache_cold": {
            "total_s": cold_total,
            "p50_ms": _pct(cold_lat, 50) * 1e3,
            "p95_ms": _pct(cold_lat, 95) * 1e3,
            "hit_ratio": hits / requests,
            "model_calls": cold_calls,
        },
        "aicache_warm": {
            "total_s": warm_total,
            "p50_ms": _pct(warm_lat, 50) * 1e3,
            "p95_ms": _pct(warm_lat, 95) * 1e3,
            "p99_ms": _pct(warm_lat, 99) * 1e3,
            "hit_ratio": sum(r["cache_hit"] for r in warm_results) / requests,
        },
        "speedup_total": no_cache_total / cold_total,
    }


def _loop(cache, items, seconds: float) -> int:
    rng = random.Random(os.getpid() ^ threading.get_ident())
    deadline = time.perf_counter() + seconds
    n = 0
    while time.perf_counter() < deadline:
        for _ in range(100):
            text, op = items[rng.randrange(len(items))]
            cache.get_or_compute(text, op, lambda: {"answer": "computed"})
        n += 100
    return n


def _child(url: str, options: dict, seconds: float, items, queue) -> None:
    import django

    django.setup()
    from django.conf import settings
    from django.test.utils import override_settings

    from aicache.backend import AIResponseCache

    with override_settings(AICACHE={**getattr(settings, "AICACHE", {}), "HISTORY_ENABLED": False}):
        cache = AIResponseCache(url, {"OPTIONS": options})
        cache.start_coherence(wait=5)
        _loop(cache, items, 0.5)  # warm the memory tier
        queue.put(_loop(cache, items, seconds))


def concurrency(url: str, quick: bool = False) -> list[dict[str, Any]]:
    """get_or_compute throughput (mostly hits over 200 keys) in 1, 2, 8 threads and 2 processes."""
    seconds = 1.0 if quick else 3.0
    items = [(prose(400, seed=900 + i), OPERATIONS[i % 5]) for i in range(200)]
    out = []
    for memory in (True, False):
        options = {"MEMORY_CACHE_SIZE": 1000} if memory else {"MEMORY_TIERS": []}  # all 200 keys fit
        cache = make_aicache(url, **options)
        for text, op in items:
            cache.get_or_compute(text, op, lambda: {"answer": "computed"})
        _loop(cache, items, 0.3)
        for threads in (1, 2, 8):
            with ThreadPoolExecutor(threads) as pool:
                counts = list(pool.map(lambda _, c=cache: _loop(c, items, seconds), range(threads)))
            out.append(
                {
                    "tier": "memory" if memory else "redis",
                    "workers": f"{threads} threads",
                    "ops_per_s": sum(counts) / seconds,
                }
            )
        ctx = multiprocessing.get_context("spawn")
        queue = ctx.Queue()
        args = (cache._server, {**options, "KEY_PREFIX": cache.config.key_prefix}, seconds, items, queue)
        procs = [ctx.Process(target=_child, args=args) for _ in range(2)]
        for p in procs:
            p.start()
        counts = [queue.get(timeout=120) for _ in procs]
        for p in procs:
            p.join(timeout=30)
        out.append(
            {
                "tier": "memory" if memory else "redis",
                "workers": "2 processes",
                "ops_per_s": sum(counts) / seconds,
            }
        )
        cache.invalidate_all()
    return out


def populate(cache, operation: str, n: int, start: int = 0) -> None:
    """Write ``n`` small entries of ``operation`` fast (pipelined SET + index), as writes would."""
    frame = cache.codec.encode(b'{"label":"neutral"}', 3600).data
    script = cache.redis.register_script(invalidation.STORE_LUA)
    pipe = cache.redis.pipeline(transaction=False)
    for i in range(start, start + n):
        key = cache.key_generator.generate(f"{operation} text {i}", operation)
        invalidation.store(script, pipe, cache.ns, operation, key, frame, 3600, None)
        if i % 5000 == 4999:
            pipe.execute()
    pipe.execute()


def _with_reader(cache, probe_keys: list[str], action) -> tuple[Any, float, dict[str, float]]:
    """Run ``action`` while another thread GETs other keys; the reader's latency figures."""
    stop = threading.Event()
    latencies: list[float] = []
    client = cache.redis.__class__(connection_pool=cache.redis.connection_pool)

    def read() -> None:
        i = 0
        while not stop.is_set():
            t0 = time.perf_counter()
            client.get(probe_keys[i % len(probe_keys)])
            latencies.append(time.perf_counter() - t0)
            i += 1

    reader = threading.Thread(target=read)
    reader.start()
    time.sleep(0.05)
    started = time.perf_counter()
    result = action()
    elapsed = time.perf_counter() - started
    stop.set()
    reader.join()
    return (
        result,
        elapsed,
        {
            "reader_p50_ms": statistics.median(latencies) * 1e3,
            "reader_p99_ms": _pct(latencies, 99) * 1e3,
            "reader_worst_ms": max(latencies) * 1e3,
            "reads": len(latencies),
        },
    )


def invalidation_at_scale(url: str, quick: bool = False) -> list[dict[str, Any]]:
    others = 100_000 if quick else 1_000_000
    cache = make_aicache(url, MEMORY_TIERS=[])
    populate(cache, "sentiment", others)
    probes = [cache.key_generator.generate(f"sentiment text {i}", "sentiment") for i in range(0, others, 997)]
    out = []
    for n in (10_000,) if quick else (10_000, 100_000):
        populate(cache, "summarize", n)
        removed, elapsed, reader = _with_reader(
            cache, probes, lambda: cache.invalidate_by_operation("summarize")
        )
        out.append(
            {
                "method": "invalidate_by_operation (index)",
                "entries": n,
                "other_entries": others,
                "removed": removed,
                "seconds": elapsed,
                **reader,
            }
        )
    populate(cache, "summarize", 10_000)
    removed, elapsed, reader = _with_reader(cache, probes, lambda: cache.invalidate_pattern("summarize"))
    out.append(
        {
            "method": "invalidate_pattern (SCAN of the keyspace)",
            "entries": 10_000,
            "other_entries": others,
            "removed": removed,
            "seconds": elapsed,
            **reader,
        }
    )
    cache.invalidate_all()
    return out
