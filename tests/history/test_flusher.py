"""The sender side: batching, a bounded outbox when the broker is down, counted drops."""

import threading
import time

import pytest
from prometheus_client import REGISTRY

from aicache.monitoring import flusher as flusher_module
from aicache.monitoring import prometheus, recorder
from aicache.monitoring.flusher import CeleryFlusher
from aicache.monitoring.models import IngestionBatch, Rollup
from aicache.monitoring.recorder import CachePerformanceMonitor
from tests.helpers import FakeBroker, FakeClock, wait_for

pytestmark = pytest.mark.django_db


def reads(monitor, n, source="redis"):
    for _ in range(n):
        monitor.record_lookup("qa", "small", source, 0.0001, 0.00001, 100)


def ship(flusher, monitor, drained=None):
    """What the exporter sink and the sender thread do, on this thread (deterministic)."""
    if flusher.collect(monitor, monitor.drain() if drained is None else drained):
        flusher.flush()


def dropped_total(what):
    return REGISTRY.get_sample_value("aicache_monitoring_dropped_total", {"what": what}) or 0


def test_broker_down_buffers_then_drops_oldest_then_recovers(history_on, monkeypatch):
    clock = FakeClock(time.time() // 60 * 60 + 1)  # one minute throughout: 10 reads are 2 rollups
    monkeypatch.setattr(recorder, "time", clock)
    monkeypatch.setattr(flusher_module, "time", clock)
    monitor, broker = CachePerformanceMonitor(), FakeBroker()
    flusher = CeleryFlusher(interval=0, max_rollups=10_000, buffer_batches=2, send=broker)
    before = {what: dropped_total(what) for what in ("batches", "records")}

    def export():  # what the exporter thread does with every drain: all sinks see it
        drained = monitor.drain()
        prometheus.apply(monitor, drained)
        ship(flusher, monitor, drained)

    broker.up = False
    for _ in range(5):  # five batches while down: two wait, the three oldest are dropped
        reads(monitor, 10)
        export()
    # each dropped batch held its 10 reads' 2 rollups (key generation and get, in one minute)
    assert flusher.waiting == 2 and broker.delivered == []
    assert (flusher.dropped_batches, flusher.dropped_records) == (3, 6)
    broker.up = True
    reads(monitor, 10)
    export()
    assert flusher.waiting == 0 and len(broker.delivered) == 3
    assert {what: dropped_total(what) - before[what] for what in before} == {"batches": 3, "records": 6}
    assert broker.delivered[0]["dropped"] == {"batches": 3, "records": 6}
    assert broker.delivered[1]["dropped"] == {"batches": 0, "records": 0}
    assert Rollup.objects.filter(resolution=60, kind="get").get().count == 30  # 2 buffered + 1 new batch
    first = IngestionBatch.objects.order_by("received_at").first()
    assert (first.dropped_batches, first.dropped_records) == (3, 6)
    counted = Rollup.objects.filter(resolution=60, kind="counter", operation="dropped_records").get()
    assert counted.count == 6  # the monitor's own count of the drops, shipped with later batches


def test_flushes_on_interval_or_when_full(history_on):
    monitor, broker = CachePerformanceMonitor(), FakeBroker()
    flusher = CeleryFlusher(interval=3600, max_rollups=3, buffer_batches=5, send=broker)
    reads(monitor, 5)
    ship(flusher, monitor)
    assert broker.delivered == []  # 2 rollups (keygen + get): not full, not due
    monitor.record_cache_operation_time("set", 0.001, True, operation_type="qa", tier="small")
    ship(flusher, monitor)
    assert len(broker.delivered) == 1  # 3 rollups: full
    assert len(broker.delivered[0]["rollups"]) == 3


def test_counters_and_events_travel(history_on):
    monitor, broker = CachePerformanceMonitor(cache_operation_threshold=0.001), FakeBroker()
    flusher = CeleryFlusher(interval=0, max_rollups=100, buffer_batches=5, send=broker)
    monitor.count("single_flight_coalesced", 4)
    monitor.record_cache_operation_time(
        "get", 0.5, True, 10, operation_type="qa", tier="small", source="redis"
    )
    monitor.record_invalidation_event("qa", 3, 0.01, "operation", "ctx")
    monitor.record_memory_usage(3, 300, 100, 1000, None, 12345)
    ship(flusher, monitor)
    payload = broker.delivered[0]
    assert any(
        r[1] == "counter" and r[2] == "single_flight_coalesced" and r[5] == 4 for r in payload["rollups"]
    )
    assert len(payload["slow"]) == 1 and len(payload["invalidations"]) == 1 and len(payload["memory"]) == 1


def test_history_disabled_sends_nothing(settings):
    settings.AICACHE = {**settings.AICACHE, "HISTORY_ENABLED": False}
    monitor, broker = CachePerformanceMonitor(), FakeBroker()
    flusher = CeleryFlusher(interval=0, max_rollups=1, buffer_batches=5, send=broker)
    reads(monitor, 3)
    ship(flusher, monitor)
    assert broker.delivered == []


def test_cache_calls_reach_the_database_through_eager_celery(history_on, monkeypatch):
    """The default sender publishes the ingest task (eager here): cache calls end up as rows."""
    from django.core.cache import caches

    monkeypatch.setattr(flusher_module, "install", lambda config: None)  # this test ships by hand
    ai_cache = caches["ai"]  # configured with history on
    ai_cache.redis.flushdb()
    flusher = CeleryFlusher(interval=0, max_rollups=100, buffer_batches=5)
    ai_cache.cache_response("hello " * 20, "qa", None, {"a": 1}, question="q")
    ai_cache.get_cached_response("hello " * 20, "qa", question="q")
    ship(flusher, ai_cache.monitor)
    assert Rollup.objects.filter(kind="get", resolution=60).get().outcome == "hit_memory"
    assert Rollup.objects.filter(kind="set", resolution=60).exists()


def _exporter_with(monitor, flusher):
    from types import SimpleNamespace

    from aicache.memory import MemoryTier
    from aicache.monitoring.exporter import Exporter

    exporter = Exporter()
    exporter._sinks = [prometheus.apply, flusher]
    exporter._watched.append(
        SimpleNamespace(monitor=monitor, memory=MemoryTier(1, 1), sample_seconds=1e9, last_sample=1e18)
    )
    return exporter


def test_a_scrape_collects_but_does_not_ship(history_on, monkeypatch):
    """A GET of /metrics drains the monitors into every sink (the scrape shows the reads) and hands
    the flusher its data without shipping it or waking its sender: the exporter thread does that."""
    from django.test import Client
    from prometheus_client import REGISTRY

    from aicache.monitoring import exporter as exporter_module

    history_on(METRICS_PUBLIC=True)
    monitor, sent = CachePerformanceMonitor(), []
    flusher = CeleryFlusher(interval=0, max_rollups=1000, buffer_batches=5, send=sent.append)
    exporter = _exporter_with(monitor, flusher)
    monkeypatch.setattr(exporter_module, "exporter", exporter)
    labels = {"operation": "qa", "tier": "small"}
    before = REGISTRY.get_sample_value("redis_cache_hits_total", labels) or 0.0
    reads(monitor, 4)
    assert Client().get("/metrics").status_code == 200
    assert REGISTRY.get_sample_value("redis_cache_hits_total", labels) - before == 4  # collected
    assert sent == [] and flusher.waiting == 0 and flusher._thread is None  # not shipped
    exporter.flush_now()  # the exporter thread's pass: seals and wakes the sender thread
    wait_for(lambda: sent, what="the batch, sent by the sender thread")
    (get,) = [r for r in sent[0]["rollups"] if r[1] == "get"]
    assert get[5] == 4  # what the scrape collected was shipped after the exporter's pass


def test_a_hung_broker_blocks_neither_exporter_nor_scrape(history_on, monkeypatch):
    """A publish that never returns (a broker that accepts and never answers) holds only the
    sender thread: the exporter's next pass and a /metrics scrape finish while it still hangs.
    The publish is held until the test releases it (30 s at most), so a pass or a scrape that
    waited on it would return only once it had gone through, and find it sent: no figure of this
    machine's speed is involved."""
    from django.test import Client

    from aicache.monitoring import exporter as exporter_module

    history_on(METRICS_PUBLIC=True)
    release, sent = threading.Event(), []

    def hung_send(payload):
        release.wait(30)
        sent.append(payload)

    monitor = CachePerformanceMonitor()
    flusher = CeleryFlusher(interval=0, max_rollups=1000, buffer_batches=5, send=hung_send)
    exporter = _exporter_with(monitor, flusher)
    monkeypatch.setattr(exporter_module, "exporter", exporter)
    try:
        reads(monitor, 3)
        first = threading.Thread(target=exporter.flush_now)  # the exporter thread's pass
        first.start()
        wait_for(lambda: flusher.in_flight, what="the sender to be stuck on the broker")
        first.join(10)
        assert not first.is_alive(), "the exporter pass waited on the broker"
        reads(monitor, 2)
        exporter.flush_now()  # the next pass, while the publish hangs
        response = Client().get("/metrics")
        assert response.status_code == 200
        assert flusher.in_flight and sent == []  # still hung: nothing above waited for it
    finally:
        release.set()
    wait_for(lambda: len(sent) == 2, what="both batches once the broker answers")
    assert sum(r[5] for batch in sent for r in batch["rollups"] if r[1] == "get") == 5


def test_flush_at_exit_is_bounded(history_on):
    release = threading.Event()
    flusher = CeleryFlusher(
        interval=0, max_rollups=1000, buffer_batches=5, send=lambda payload: release.wait(30)
    )
    monitor = CachePerformanceMonitor()
    reads(monitor, 2)
    flusher.collect(monitor, monitor.drain())
    started = time.monotonic()
    try:
        assert flusher.flush_at_exit(budget=0.3) is False
        assert time.monotonic() - started < 0.6
    finally:
        release.set()


def test_a_missing_transport_is_a_delivery_failure(history_on):
    def send(payload):
        raise ImportError("Missing redis library (pip install redis)")

    monitor = CachePerformanceMonitor()
    flusher = CeleryFlusher(interval=0, max_rollups=1000, buffer_batches=5, send=send)
    reads(monitor, 2)
    assert flusher.collect(monitor, monitor.drain())
    assert flusher.flush() is False
    assert flusher.waiting == 1 and flusher.failures == 1
