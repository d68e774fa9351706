"""Prometheus metrics: instruments defined once, fed from drained rollups, served at /metrics.

Labels come from small fixed sets (action, source, error kind) or are capped per process like the
AI operation (``MAX_OPERATION_LABELS``; ``action`` and ``source`` outside their fixed sets share
``MAX_ACTION_LABELS`` more values): beyond a cap a value becomes ``other``. Never a key, a text or
a user. Under gunicorn, set ``PROMETHEUS_MULTIPROC_DIR`` (see
``aicache_project/gunicorn.conf.py``) and every worker's figures are summed at scrape time.

The request path never touches these instruments: the exporter thread adds each drained rollup at
once (counts to counters; sketch buckets to histogram buckets, whose sums stay exact).
"""

from __future__ import annotations

import hmac
import os
import threading
from bisect import bisect_left
from typing import Any

from django.http import HttpRequest, HttpResponse
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
    multiprocess,
)

from aicache.conf import aicache_settings
from aicache.monitoring.recorder import CachePerformanceMonitor
from aicache.monitoring.rollups import Drained
from aicache.monitoring.sketch import bucket_value

LATENCY_BUCKETS_MS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 25, 50, 100, 250, 500, 1000)
DURATION_BUCKETS_S = tuple(b / 1000 for b in LATENCY_BUCKETS_MS)
MAX_OPERATION_LABELS = 50
MAX_ACTION_LABELS = 20  # extra action/source values beyond the fixed sets below
ACTIONS = frozenset(
    {"get", "set", "delete", "invalidate", "lock", "unlock", "decode", "encode", "publish", "count", "ping"}
)
SOURCES = frozenset({"memory", "redis", "coalesced", "miss", "hit", "ok", "error"})
ERROR_KINDS = frozenset(
    {"unreachable", "redis_error", "corrupt_entry", "forged_entry", "unknown_dictionary", "circuit_open"}
)

HITS = Counter("redis_cache_hits_total", "Cache reads that hit.", ["operation", "tier"])
MISSES = Counter("redis_cache_misses_total", "Cache reads that missed.", ["operation", "tier"])
ERRORS = Counter("redis_cache_errors_total", "Cache faults by kind and action.", ["error", "action"])
LATENCY = Histogram(
    "redis_cache_latency_ms",
    "Latency of cache actions in milliseconds.",
    ["action", "operation", "tier"],
    buckets=LATENCY_BUCKETS_MS,
)
DURATION = Histogram(
    "redis_cache_operation_duration_seconds",
    "Duration of cache actions in seconds, by what answered.",
    ["action", "source"],
    buckets=DURATION_BUCKETS_S,
)
KEY_GENERATION = Histogram(
    "aicache_key_generation_seconds", "Time to build a cache key.", ["operation"], buckets=DURATION_BUCKETS_S
)
MEMORY_HITS = Counter(
    "aicache_memory_tier_hits_total", "Reads answered by the memory tier.", ["operation", "tier"]
)
COMPRESSION_IN = Counter("aicache_compression_input_bytes_total", "Bytes before compression.", ["operation"])
COMPRESSION_OUT = Counter("aicache_compression_output_bytes_total", "Bytes after compression.", ["operation"])
INVALIDATIONS = Counter("aicache_invalidations_total", "Invalidation calls.", ["type", "status"])
INVALIDATED_KEYS = Counter("aicache_invalidated_keys_total", "Keys removed by invalidations.", ["type"])
SINGLE_FLIGHT = Counter("aicache_single_flight_total", "Single-flight events.", ["event"])
MONITORING_DROPS = Counter("aicache_monitoring_dropped_total", "Monitoring data dropped.", ["what"])
SAVED_SECONDS = Counter(
    "aicache_saved_seconds_total", "Compute time that hits saved (gross).", ["operation", "model"]
)
SAVED_TOKENS = Counter(
    "aicache_saved_tokens_total", "Tokens that hits saved.", ["operation", "model", "kind"]
)
SAVED_COST = Counter(
    "aicache_saved_cost_total",
    "Money that hits saved (models with a price).",
    ["operation", "model", "currency"],
)
MEMORY_ENTRIES = Gauge(
    "aicache_memory_tier_entries", "Entries in the memory tier.", multiprocess_mode="livesum"
)
MEMORY_BYTES = Gauge("aicache_memory_tier_bytes", "Bytes in the memory tier.", multiprocess_mode="livesum")

_operations: set[str] = set()
_operations_lock = threading.Lock()


_actions: set[str] = set()


def _capped(value: str, seen: set[str], cap: int) -> str:
    if value in seen or not value:
        return value
    with _operations_lock:
        if len(seen) < cap:
            seen.add(value)
            return value
    return "other"


def operation_label(operation: str) -> str:
    return _capped(operation, _operations, MAX_OPERATION_LABELS)


_models: set[str] = set()


def model_label(model: str) -> str:
    return _capped(model, _models, MAX_OPERATION_LABELS) or "unknown"


def action_label(action: str) -> str:
    """``action`` (and ``source``) labels: a fixed set, plus at most MAX_ACTION_LABELS others."""
    if action in ACTIONS or action in SOURCES or action in ERROR_KINDS:
        return action
    return _capped(action, _actions, MAX_ACTION_LABELS)


def _observe_sketch(child: Any, sketch: dict[int, int], total: float, scale: float, bounds: tuple) -> None:
    """Add a drained sketch to a histogram child: each bucket's count to the Prometheus bucket of
    its representative value (within the sketch's 1 %), and the exact sum."""
    for index, count in sketch.items():
        position = bisect_left(bounds, bucket_value(index) * scale)
        child._buckets[position].inc(count)
    child._sum.inc(total * scale)


def _saved(op: str, model: str, r: Any) -> None:
    from aicache.conf import aicache_settings
    from aicache.savings import price

    label = model_label(model)
    SAVED_SECONDS.labels(op, label).inc(r.total)
    if r.bytes_in:
        SAVED_TOKENS.labels(op, label, "prompt").inc(r.bytes_in)
    if r.bytes_out:
        SAVED_TOKENS.labels(op, label, "completion").inc(r.bytes_out)
    cost = price(aicache_settings.MODEL_PRICES, model, r.bytes_in, r.bytes_out)
    if cost is not None:
        SAVED_COST.labels(op, label, cost[1]).inc(cost[0])


def apply(monitor: CachePerformanceMonitor, drained: Drained) -> None:
    """Exporter sink: add one drained batch to the instruments."""
    for (_, kind, op, tier, outcome), r in drained.rollups.items():
        op = operation_label(op)
        if kind == "keygen":
            _observe_sketch(KEY_GENERATION.labels(op), r.sketch, r.total, 1, DURATION_BUCKETS_S)
            continue
        if kind == "compress":
            COMPRESSION_IN.labels(op).inc(r.bytes_in)
            COMPRESSION_OUT.labels(op).inc(r.bytes_out)
            continue
        if kind == "invalidate":
            INVALIDATIONS.labels(op, outcome).inc(r.count)
            INVALIDATED_KEYS.labels(op).inc(r.bytes_in)
            continue
        if kind == "saved":
            _saved(op, tier, r)
            continue
        if kind == "hit_cost":
            continue
        if kind == "get":
            if outcome.startswith("hit"):
                HITS.labels(op, tier).inc(r.count)
                if outcome == "hit_memory":
                    MEMORY_HITS.labels(op, tier).inc(r.count)
            else:
                MISSES.labels(op, tier).inc(r.count)
        source = action_label(outcome.removeprefix("hit_") if kind == "get" else outcome)
        action = action_label(kind)
        _observe_sketch(LATENCY.labels(action, op, tier), r.sketch, r.total, 1000, LATENCY_BUCKETS_MS)
        _observe_sketch(DURATION.labels(action, source), r.sketch, r.total, 1, DURATION_BUCKETS_S)
    for name, n in drained.counters.items():
        if name.startswith("error:"):
            _, error, action = name.split(":", 2)
            ERRORS.labels(action_label(error), action_label(action)).inc(n)
        elif name.startswith("single_flight_"):
            SINGLE_FLIGHT.labels(name.removeprefix("single_flight_")).inc(n)
        elif name.startswith("dropped_"):
            MONITORING_DROPS.labels(name.removeprefix("dropped_")).inc(n)
    if drained.memory:
        latest = drained.memory[-1]
        MEMORY_ENTRIES.set(latest.memory_entries)
        MEMORY_BYTES.set(latest.memory_bytes)


def _allowed(request: HttpRequest) -> bool:
    if aicache_settings.METRICS_PUBLIC:
        return True
    token = aicache_settings.METRICS_TOKEN
    header = request.headers.get("Authorization", "")
    if token and header.startswith("Bearer ") and hmac.compare_digest(header[7:].encode(), token.encode()):
        return True
    user = getattr(request, "user", None)
    return bool(user is not None and user.is_active and user.is_staff)


def metrics_view(request: HttpRequest) -> HttpResponse:
    """Prometheus exposition. Open when METRICS_PUBLIC; otherwise a ``Bearer`` METRICS_TOKEN or a
    staff session is required."""
    if not _allowed(request):
        response = HttpResponse("Forbidden: /metrics needs METRICS_TOKEN or a staff user.\n", status=403)
        if aicache_settings.METRICS_TOKEN:
            response.status_code = 401
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    from aicache.monitoring.exporter import get_exporter

    get_exporter().flush_now(ship=False)  # a scrape must not wait on the Celery broker
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
