"""The monitoring pipeline end to end: cache processes -> Celery on the real Redis broker -> a
real worker -> the database -> stats. Runs on SQLite and (scripts/with-postgres.sh) PostgreSQL."""

import time
import uuid

import pytest

from aicache.monitoring import stats
from aicache.monitoring.models import IngestionBatch, Rollup
from aicache.monitoring.summaries import percentile
from aicache_project.celery import app as celery_app
from tests.factories import rollup_row
from tests.helpers import run_threads, tcp_proxy, wait_for
from tests.integration.processes import Worker

pytestmark = [pytest.mark.integration, pytest.mark.history, pytest.mark.django_db(transaction=True)]


def test_two_processes_exact_figures(celery_worker, broker, redis_server):
    redis_server.client().flushdb()
    env = {"AICACHE_TEST_HISTORY": "1", "AICACHE_TEST_BROKER_URL": f"{broker.url}/0"}
    procs = [Worker(f"{redis_server.url}/0", **env) for _ in range(2)]
    try:
        for i, w in enumerate(procs):
            w.send("script", seed=i, n=400, distinct=60)
        for w in procs:
            assert w.read() == {}
        figures = [w.call("figures") for w in procs]
        for w in procs:
            assert w.call("flush")["waiting"] == 0
    finally:
        for w in procs:
            w.close()
    wait_for(lambda: IngestionBatch.objects.count() >= 2, timeout=30, what="two ingested batches")
    hits, misses = sum(f["hits"] for f in figures), sum(f["misses"] for f in figures)
    w = stats.window(last="1h")
    wait_for(
        lambda: (
            stats.performance_stats(w)["cache_hits"] + stats.performance_stats(w)["cache_misses"]
            >= hits + misses
        ),
        timeout=30,
        what="every read ingested",
    )
    db = stats.performance_stats(w)
    assert (db["cache_hits"], db["cache_misses"]) == (hits, misses)
    assert db["total_cache_operations"] == sum(f["operations"] for f in figures)
    assert db["cache_hit_rate"] == pytest.approx(100 * hits / (hits + misses))
    assert db["compression"]["total_bytes_processed"] == sum(f["bytes_processed"] for f in figures)
    assert db["compression"]["total_bytes_saved"] == sum(f["bytes_saved"] for f in figures)
    durations = sorted(d for f in figures for d in f["get_durations"])
    gets = db["cache_operations"]["by_operation_type"]["get"]
    assert gets["count"] == len(durations)
    assert gets["p95_duration"] == pytest.approx(percentile(durations, 95), rel=0.0101)
    assert gets["max_duration"] == pytest.approx(durations[-1])


def test_duplicate_delivery_is_counted_once(celery_worker):
    from aicache.monitoring.tasks import ingest_batch

    payload = {
        "batch_id": uuid.uuid4().hex,
        "process": "test:1",
        "rollups": [rollup_row(operation="qa", outcome="miss", count=7)],
    }
    from celery.signals import task_postrun

    done = []

    def finished(sender=None, args=None, retval=None, **kwargs):
        if args and args[0].get("batch_id") == payload["batch_id"]:
            done.append(retval)

    task_postrun.connect(finished, weak=False)
    try:
        ingest_batch.apply_async(args=[payload])
        ingest_batch.apply_async(args=[payload])  # a redelivery
        wait_for(lambda: len(done) == 2, timeout=30, what="both deliveries processed")
    finally:
        task_postrun.disconnect(finished)
    assert sorted(r["duplicate"] for r in done) == [False, True]
    assert IngestionBatch.objects.filter(batch_id=payload["batch_id"]).count() == 1
    assert Rollup.objects.get(resolution=60, kind="get").count == 7


def test_broker_down_cache_keeps_working_drops_counted_then_recovers(
    celery_worker, broker, real_cache, settings
):
    from aicache.monitoring.flusher import CeleryFlusher

    flusher = CeleryFlusher(interval=0, max_rollups=1000, buffer_batches=2)
    monitor = real_cache.monitor
    broker.stop()
    started = time.monotonic()
    for i in range(5):
        real_cache.cache_response(f"down {i} " * 10, "qa", None, {"a": i})
        assert real_cache.get_cached_response(f"down {i} " * 10, "qa")["a"] == i
        if flusher.collect(monitor, monitor.drain()):
            flusher.flush()
    elapsed = time.monotonic() - started
    assert flusher.waiting == 2 and flusher.dropped_batches == 3
    assert elapsed < 30  # each failed publish is bounded (2 s connect timeout), the cache unaffected
    broker.start()
    wait_for(lambda: flusher.flush() or flusher.waiting == 0, timeout=30, what="the outbox delivered")
    wait_for(
        lambda: IngestionBatch.objects.filter(dropped_batches=3).exists(), timeout=30, what="the drop report"
    )
    w = stats.window(last="1h")
    assert stats.ingestion(w)["dropped_batches"] == 3
    wait_for(lambda: IngestionBatch.objects.count() >= 2, timeout=30, what="the buffered batches")


def counter_total(name: str) -> int:
    rows = Rollup.objects.filter(resolution=60, kind="counter", operation=name)
    return sum(rows.values_list("count", flat=True))


@pytest.fixture
def own_exporter(monkeypatch):
    """An exporter of this test's own in place of the process's (Prometheus as its sink, and the
    process's flusher once a cache with history on installs one), so that only this test's cache
    is drained into them. Request it before ``real_cache``, whose monitor registers with it."""
    from aicache.monitoring import exporter as exporter_module
    from aicache.monitoring import flusher as flusher_module
    from aicache.monitoring import prometheus
    from aicache.monitoring.exporter import Exporter

    exporter = Exporter()
    exporter.add_sink(prometheus.apply)
    monkeypatch.setattr(exporter_module, "exporter", exporter)
    monkeypatch.setattr(flusher_module, "_flusher", None)
    monkeypatch.setattr(prometheus, "_operations", set())  # "qa" keeps its label, whatever ran before
    yield exporter
    exporter.stop()


def test_five_identical_calls_one_miss_four_hits(own_exporter, celery_worker, real_cache):
    """5 concurrent identical get_or_compute calls on a cold key: 1 miss, 4 hits (coalesced),
    1 compute; the monitor, /metrics and the history written by a real Celery worker agree. The
    compute returns only once the four other callers are waiting on it."""
    from prometheus_client import REGISTRY

    from aicache.monitoring.flusher import get_flusher

    def reads(name):
        return REGISTRY.get_sample_value(name, {"operation": "qa", "tier": "small"}) or 0.0

    before = {name: reads(name) for name in ("redis_cache_hits_total", "redis_cache_misses_total")}
    computes = []

    def compute():
        computes.append(1)
        wait_for(
            lambda: real_cache._state.counter_snapshot().get("single_flight_waits", 0) == 4,
            what="the four other callers waiting on this compute",
        )
        return {"answer": 42}

    text = "five identical questions about one cold key"
    results = run_threads(lambda i: real_cache.get_or_compute(text, "qa", compute), 5)
    assert computes == [1]
    assert sorted(r["cache_source"] for r in results) == ["coalesced"] * 4 + ["compute"]
    figures = real_cache.monitor.get_performance_stats()
    assert (figures["cache_hits"], figures["cache_misses"]) == (4, 1)
    own_exporter.flush_now()  # drained into Prometheus and into the process's flusher
    assert {name: reads(name) - before[name] for name in before} == {
        "redis_cache_hits_total": 4,
        "redis_cache_misses_total": 1,
    }
    flusher = get_flusher()
    assert flusher is not None and flusher.flush() and flusher.waiting == 0
    sent = flusher.sent  # every batch so far, the exporter thread's included
    wait_for(lambda: IngestionBatch.objects.count() >= sent, timeout=30, what="the batches ingested")
    db = stats.performance_stats(stats.window(last="1h"))
    assert (db["cache_hits"], db["cache_misses"]) == (4, 1)
    assert counter_total("single_flight_coalesced") == 4


@pytest.fixture
def hung_broker():
    """A socket that accepts connections and never answers: the broker of the tests below."""
    with tcp_proxy("127.0.0.1", 9) as proxy:
        proxy.accept_only = True
        yield proxy


def test_a_scrape_never_waits_on_a_hung_broker(hung_broker, real_cache, history_on, monkeypatch):
    # history_on after real_cache: turning it on resets the process state, and the cache builds its
    # monitor again only below, once the exporter and the broker are this test's
    from django.core.cache import caches
    from django.test import Client

    from aicache.monitoring import exporter as exporter_module
    from aicache.monitoring import flusher as flusher_module
    from aicache.monitoring import prometheus
    from aicache.monitoring.exporter import Exporter

    exporter = Exporter()
    exporter.add_sink(prometheus.apply)
    monkeypatch.setattr(exporter_module, "exporter", exporter)
    monkeypatch.setattr(flusher_module, "_flusher", None)
    saved = {k: celery_app.conf[k] for k in ("broker_url", "task_always_eager")}
    celery_app._pool = None
    celery_app.amqp._producer_pool = None
    celery_app.conf.update(broker_url=f"{hung_broker.url}/0", task_always_eager=False)
    try:
        history_on(METRICS_PUBLIC=True, FLUSH_INTERVAL=0.05)
        cache = caches["ai"]
        cache.cache_response("a scrape during a broker hang " * 3, "qa", None, {"a": 1})
        assert cache.get_cached_response("a scrape during a broker hang " * 3, "qa")["a"] == 1
        flusher = flusher_module.get_flusher()
        assert flusher is not None
        # the exporter thread's next pass hands a batch to the sender, which hangs on the broker
        wait_for(lambda: flusher.in_flight, timeout=10, what="a publish hanging on the broker")
        cache.get_cached_response("a scrape during a broker hang " * 3, "qa")
        started = time.monotonic()
        response = Client().get("/metrics")
        exporter.flush_now()
        elapsed = time.monotonic() - started
        assert response.status_code == 200 and elapsed < 0.5, elapsed
        assert flusher.in_flight and flusher.sent == 0
        body = response.content.decode()
        assert 'redis_cache_hits_total{operation="qa",tier="small"}' in body
    finally:
        exporter.stop()
        hung_broker.stop()  # the hanging publish fails now
        celery_app._pool = None
        celery_app.amqp._producer_pool = None
        celery_app.conf.update(**saved)


@pytest.mark.parametrize("broker_url", ["hung", "", "sqs://"])
def test_process_exit_never_waits_on_the_broker(hung_broker, redis_server, broker_url):
    """At exit a process makes one bounded attempt (1 s in all) to ship what is left; with no
    broker or no importable transport history is off and there is nothing to wait for."""
    url = f"{hung_broker.url}/0" if broker_url == "hung" else broker_url
    w = Worker(f"{redis_server.url}/0", AICACHE_TEST_HISTORY="1", AICACHE_TEST_BROKER_URL=url)
    try:
        for i in range(3):
            w.call("cache", text=f"exit test {i} " * 5, operation="qa", response={"a": i})
            assert w.call("get", text=f"exit test {i} " * 5, operation="qa")["hit"]
        state = w.call("history")
        if broker_url == "hung":
            assert state["installed"]
            wait_for(lambda: w.call("history")["in_flight"], timeout=10, what="a publish hanging")
        else:
            assert state == {"installed": False}
    finally:
        started = time.monotonic()
        w.close()
        elapsed = time.monotonic() - started
    assert w.proc.returncode == 0
    assert elapsed < 2.5, elapsed
