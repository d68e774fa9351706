"""Timing without fooling ourselves: warm-up, several rounds, per-call samples, medians, ratios.

Each case runs ``rounds`` rounds of ``calls`` calls after a warm-up. Latency percentiles come from
every per-call sample; ops/s is the median over rounds of calls / round time (so the clock reads
around each call are not counted in throughput). Machines here are noisy: compare cases measured
in the same run, as ratios.
"""

from __future__ import annotations

import gc
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass
class Result:
    name: str
    p50_us: float
    p95_us: float
    p99_us: float
    ops_per_s: float
    rounds: int
    calls: int
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _pct(sorted_values: list[float], q: float) -> float:
    return sorted_values[max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values)) - 1))]


def measure(
    name: str, fn: Callable[[], Any], *, calls: int, rounds: int = 5, warmup: int | None = None
) -> Result:
    """Latency percentiles over all calls and median throughput over rounds."""
    for _ in range(warmup if warmup is not None else max(10, calls // 10)):
        fn()
    samples: list[float] = []
    rates: list[float] = []
    clock = time.perf_counter
    gc_was_enabled = gc.isenabled()
    gc.disable()  # a collection inside one call would be charged to whichever case was unlucky
    try:
        for _ in range(rounds):
            round_start = clock()
            for _ in range(calls):
                t0 = clock()
                fn()
                samples.append(clock() - t0)
            rates.append(calls / (clock() - round_start))
            # Only the young generation: what this round allocated. A full collection walks the
            # whole heap (~70 ms in a test process) and would dominate short runs.
            gc.collect(0)
    finally:
        if gc_was_enabled:
            gc.enable()
    samples.sort()
    return Result(
        name,
        _pct(samples, 50) * 1e6,
        _pct(samples, 95) * 1e6,
        _pct(samples, 99) * 1e6,
        statistics.median(rates),
        rounds,
        calls,
    )


def time_once(fn: Callable[[], Any]) -> float:
    started = time.perf_counter()
    fn()
    return time.perf_counter() - started


def _version(module: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(module)
    except PackageNotFoundError:
        return "not installed"


def machine(redis_binary: str | None = None) -> dict[str, Any]:
    cpu = "unknown"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            cpu = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), cpu)
    except OSError:
        pass
    redis_version = "unknown"
    if redis_binary:
        out = subprocess.run([redis_binary, "--version"], capture_output=True, text=True, check=False).stdout
        redis_version = next((p.split("=")[1] for p in out.split() if p.startswith("v=")), out.strip())
    affinity = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    return {
        "cpu": cpu,
        "cpu_count": os.cpu_count(),
        "pinned_to_cpus": affinity if affinity and len(affinity) < (os.cpu_count() or 0) else None,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "redis": redis_version,
        "libraries": {
            name: _version(name)
            for name in (
                "django",
                "django-redis",
                "redis",
                "hiredis",
                "orjson",
                "zstandard",
                "celery",
                "prometheus-client",
            )
        },
        "date": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
    }
