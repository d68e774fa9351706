"""Real cache calls produce the expected records, and /metrics shows them."""

import pickle

import pytest
from django.contrib.auth.models import User
from django.test import Client
from prometheus_client import REGISTRY

from aicache.monitoring.exporter import get_exporter
from aicache.monitoring.recorder import CachePerformanceMonitor

SMALL = "Monitoring turns a cache into something you can trust. " * 2
MEDIUM = "A medium text is kept in Redis only, and its long answers are compressed. " * 20
LONG_ANSWER = {"summary": " ".join(f"Fact {i}: measured caches are trusted caches." for i in range(60))}


def sample(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_monitor_is_one_per_process_and_cache(ai_cache):
    from django.core.cache import caches

    assert isinstance(ai_cache.monitor, CachePerformanceMonitor)
    assert caches["ai"].monitor is ai_cache.monitor


def test_cache_calls_produce_records(ai_cache):
    monitor = ai_cache.monitor
    ai_cache.cache_response(SMALL, "summarize", None, {"summary": "short"})
    for _ in range(3):
        assert ai_cache.get_cached_response(SMALL, "summarize")["cache_source"] == "memory"
    ai_cache.cache_response(MEDIUM, "summarize", None, LONG_ANSWER)
    assert ai_cache.get_cached_response(MEDIUM, "summarize")["cache_source"] == "redis"
    assert ai_cache.get_cached_response(MEDIUM, "qa", question="missing?") is None
    ai_cache.redis.set(ai_cache.key_generator.generate(MEDIUM, "sentiment"), pickle.dumps("x"))
    assert ai_cache.get_cached_response(MEDIUM, "sentiment") is None
    assert ai_cache.invalidate_by_operation("summarize", operation_context="test") == 2

    stats = monitor.get_performance_stats()
    assert (stats["cache_hits"], stats["cache_misses"]) == (4, 2)
    assert stats["cache_hit_rate"] == pytest.approx(400 / 6)
    ops = stats["cache_operations"]
    assert ops["by_operation_type"]["get"]["count"] == 6 and ops["by_operation_type"]["set"]["count"] == 2
    assert ops["by_tier"]["small"]["count"] == 4 and ops["by_tier"]["medium"]["count"] == 4
    assert stats["key_generation"]["total_operations"] == 8  # one per request (2 writes, 6 reads)
    assert stats["compression"]["total_operations"] == 1
    assert stats["compression"]["total_bytes_saved"] > 0
    inval = monitor.export_metrics()["invalidations"]
    assert [
        (i["pattern"], i["keys_invalidated"], i["invalidation_type"], i["operation_context"], i["status"])
        for i in inval
    ] == [("summarize", 2, "operation", "test", "success")]
    assert monitor.export_metrics()["totals"]["counters"]["error:corrupt_entry:decode"] == 1

    summary = ai_cache.get_performance_summary()
    assert summary["hit_ratio"] == pytest.approx(4 / 6)
    assert summary["memory_tier_hit_share"] == 0.75
    assert set(summary["avg_get_latency_by_tier"]) == {"small", "medium"}
    assert summary["compression_savings_percent"] > 30


def test_failed_invalidation_is_recorded_as_failed(ai_cache, monkeypatch):
    from redis.exceptions import ConnectionError

    def down(*args, **kwargs):
        raise ConnectionError("Redis is down")

    monkeypatch.setattr(ai_cache.redis, "scan_iter", down)
    assert ai_cache.invalidate_pattern("summ") == 0
    (record,) = ai_cache.monitor.export_metrics()["invalidations"]
    assert (record["status"], record["reason"]) == ("failed", "unreachable")


def test_single_flight_coalescing_is_counted(ai_cache, monkeypatch):
    """Staged: the leader's compute returns only once the three others have joined its flight."""
    from tests.helpers import recorded_lookups, run_threads, wait_for

    flights = ai_cache._state.flights
    followers = []
    join = flights.join

    def counted_join(key):
        flight, leads = join(key)
        if not leads:
            followers.append(key)
        return flight, leads

    monkeypatch.setattr(flights, "join", counted_join)

    def compute():
        wait_for(lambda: len(followers) == 3, what="three followers on the flight")
        return {"a": 1}

    lookups, _ = recorded_lookups(ai_cache, monkeypatch)
    results = run_threads(lambda i: ai_cache.get_or_compute(SMALL, "qa", compute), 4)
    assert [r["a"] for r in results] == [1, 1, 1, 1]
    assert sorted((r["cache_hit"], r["cache_source"]) for r in results) == [
        (False, "compute"),
        *[(True, "coalesced")] * 3,
    ]
    counters = ai_cache.monitor.export_metrics()["totals"]["counters"]
    assert counters["single_flight_coalesced"] == 3 and counters["single_flight_waits"] == 3
    # The process's own count (performance summary) agrees; the monitor counted the lookups.
    assert ai_cache._state.counter_snapshot()["single_flight_coalesced"] == 3
    assert sorted(source for source, _ in lookups) == ["", "coalesced", "coalesced", "coalesced"]
    assert all(0 <= duration < 5 for _, duration in lookups), lookups


def test_memory_tier_is_sampled_by_the_exporter(ai_cache):
    ai_cache.cache_response(SMALL, "summarize", None, {"summary": "short"})
    get_exporter().flush_now(force_memory_sample=True)
    current = ai_cache.monitor.get_memory_usage_stats()["current"]
    assert current["memory_entries"] == 1 and current["memory_max_entries"] == 100
    assert current["process_rss_bytes"] > 10_000_000


def test_prometheus_series_after_real_calls(ai_cache):
    get_exporter().flush_now()
    before = {
        "hits": sample("redis_cache_hits_total", operation="key_points", tier="small"),
        "memory": sample("aicache_memory_tier_hits_total", operation="key_points", tier="small"),
        "misses": sample("redis_cache_misses_total", operation="key_points", tier="medium"),
        "latency": sample("redis_cache_latency_ms_count", action="get", operation="key_points", tier="small"),
        "inf": sample(
            "redis_cache_latency_ms_bucket", action="get", operation="key_points", tier="small", le="+Inf"
        ),
        "memory_reads": sample("redis_cache_operation_duration_seconds_count", action="get", source="memory"),
        "in": sample("aicache_compression_input_bytes_total", operation="key_points"),
        "inv": sample("aicache_invalidations_total", type="operation", status="success"),
        "err": sample("redis_cache_errors_total", error="corrupt_entry", action="decode"),
    }
    ai_cache.cache_response(SMALL, "key_points", None, {"points": ["a"]})
    ai_cache.get_cached_response(SMALL, "key_points")
    ai_cache.get_cached_response(SMALL, "key_points")
    ai_cache.get_cached_response(MEDIUM, "key_points")
    ai_cache.cache_response(MEDIUM, "key_points", None, LONG_ANSWER)
    ai_cache.redis.set(ai_cache.key_generator.generate(SMALL, "sentiment"), b"garbage")
    ai_cache.get_cached_response(SMALL, "sentiment")
    ai_cache.invalidate_by_operation("key_points")
    get_exporter().flush_now()
    assert sample("redis_cache_hits_total", operation="key_points", tier="small") - before["hits"] == 2
    assert (
        sample("aicache_memory_tier_hits_total", operation="key_points", tier="small") - before["memory"] == 2
    )
    assert sample("redis_cache_misses_total", operation="key_points", tier="medium") - before["misses"] == 1
    assert (
        sample("redis_cache_latency_ms_count", action="get", operation="key_points", tier="small")
        - before["latency"]
        == 2
    )
    assert (
        sample("redis_cache_latency_ms_bucket", action="get", operation="key_points", tier="small", le="+Inf")
        - before["inf"]
        == 2
    )
    # the one compressed write (MEDIUM's long answer), as the recorder measured it
    (compressed,) = ai_cache.monitor.compression_ratios
    assert compressed.original_size > 2000
    assert (
        sample("aicache_compression_input_bytes_total", operation="key_points") - before["in"]
        == compressed.original_size
    )
    assert sample("aicache_invalidations_total", type="operation", status="success") - before["inv"] == 1
    assert sample("redis_cache_errors_total", error="corrupt_entry", action="decode") - before["err"] == 1
    assert (
        sample("redis_cache_operation_duration_seconds_count", action="get", source="memory")
        - before["memory_reads"]
        == 2
    )


def test_the_latency_histogram_spans_0_005_to_1000_ms(monkeypatch):
    """README: ``redis_cache_latency_ms`` is a histogram from 0.005 to 1000 ms: a read faster than
    0.005 ms falls in the first bucket, one slower than 1000 ms only in ``+Inf``."""
    from aicache.monitoring import prometheus

    monkeypatch.setattr(prometheus, "_operations", set())  # "range" keeps its own label
    labels = {"action": "get", "operation": "range", "tier": "small"}
    bounds = ("0.005", "1000.0", "+Inf")
    before = {le: sample("redis_cache_latency_ms_bucket", le=le, **labels) for le in bounds}
    m = CachePerformanceMonitor()
    for seconds in (0.000004, 0.9, 1.5):  # 0.004 ms, 900 ms, 1500 ms
        m.record_lookup("range", "small", "redis", seconds, None, 10)
    prometheus.apply(m, m.drain())
    after = {le: sample("redis_cache_latency_ms_bucket", le=le, **labels) for le in bounds}
    assert {le: after[le] - before[le] for le in bounds} == {"0.005": 1, "1000.0": 2, "+Inf": 3}
    finite = sorted(
        float(s.labels["le"])
        for metric in REGISTRY.collect()
        if metric.name == "redis_cache_latency_ms"
        for s in metric.samples
        if s.name.endswith("_bucket") and s.labels["operation"] == "range" and s.labels["le"] != "+Inf"
    )
    assert (finite[0], finite[-1]) == (0.005, 1000.0)


@pytest.mark.django_db
def test_metrics_endpoint_access(ai_cache, settings):
    ai_cache.get_cached_response(SMALL, "summarize")
    client = Client()
    assert client.get("/metrics").status_code == 403
    settings.AICACHE = {"METRICS_TOKEN": "s3cret"}
    denied = client.get("/metrics")
    assert denied.status_code == 401 and denied["WWW-Authenticate"].startswith("Bearer")
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    ok = client.get("/metrics", headers={"Authorization": "Bearer s3cret"})
    assert ok.status_code == 200 and ok["Content-Type"].startswith("text/plain")
    body = ok.content.decode()
    for series in (
        "redis_cache_hits_total",
        "redis_cache_misses_total",
        "redis_cache_errors_total",
        "redis_cache_latency_ms_bucket",
        "redis_cache_operation_duration_seconds_bucket",
        "aicache_memory_tier_hits_total",
        "aicache_invalidations_total",
        "aicache_single_flight_total",
    ):
        assert f"# TYPE {series.removesuffix('_bucket').removesuffix('_total')}" in body, series
    assert 'redis_cache_misses_total{operation="summarize",tier="small"}' in body
    staff = User.objects.create_user("ops", password="pw", is_staff=True)
    client.force_login(staff)
    assert client.get("/metrics").status_code == 200
    client.logout()
    settings.AICACHE = {"METRICS_PUBLIC": True}
    assert client.get("/metrics").status_code == 200


def test_monitoring_off(make_cache):
    from aicache.instrument import NullMonitor

    cache = make_cache(MONITOR_CLASS=None)
    assert isinstance(cache.monitor, NullMonitor)
    cache.cache_response(SMALL, "qa", None, {"a": 1})
    assert cache.get_cached_response(SMALL, "qa")["a"] == 1
    assert cache.get_performance_summary()["total_operations"] == 0
