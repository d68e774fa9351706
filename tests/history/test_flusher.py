"""The sender side: batching, a bounded outbox when the broker is down, counted drops."""

import pytest
from prometheus_client import REGISTRY

from aicache.monitoring import prometheus
from aicache.monitoring.flusher import CeleryFlusher
from aicache.monitoring.ingest import ingest
from aicache.monitoring.models import IngestionBatch, Rollup
from aicache.monitoring.recorder import CachePerformanceMonitor

pytestmark = pytest.mark.django_db


class Broker:
    def __init__(self):
        self.up = True
        self.delivered = []

    def __call__(self, payload):
        if not self.up:
            raise ConnectionError("broker down")
        self.delivered.append(payload)
        ingest(payload)


@pytest.fixture
def history_on(settings):
    settings.AICACHE = {**settings.AICACHE, "HISTORY_ENABLED": True}


def reads(monitor, n, source="redis"):
    for _ in range(n):
        monitor.record_lookup("qa", "small", source, 0.0001, 0.00001, 100)


def test_broker_down_buffers_then_drops_oldest_then_recovers(history_on):
    monitor, broker = CachePerformanceMonitor(), Broker()
    flusher = CeleryFlusher(interval=0, max_rollups=10_000, buffer_batches=2, send=broker)
    drops_before = REGISTRY.get_sample_value("aicache_monitoring_dropped_total", {"what": "batches"}) or 0

    def export():  # what the exporter thread does with every drain: all sinks see it
        drained = monitor.drain()
        prometheus.apply(monitor, drained)
        flusher(monitor, drained)

    broker.up = False
    for _ in range(5):  # five batches while down: two wait, three are dropped
        reads(monitor, 10)
        export()
    assert flusher.waiting == 2 and broker.delivered == []
    assert flusher.dropped_batches == 3 and flusher.dropped_records > 0
    broker.up = True
    reads(monitor, 10)
    export()
    assert flusher.waiting == 0 and len(broker.delivered) == 3
    assert (
        REGISTRY.get_sample_value("aicache_monitoring_dropped_total", {"what": "batches"}) - drops_before == 3
    )
    assert broker.delivered[0]["dropped"] == {"batches": 3, "records": flusher_records(broker)}
    assert broker.delivered[1]["dropped"] == {"batches": 0, "records": 0}
    assert Rollup.objects.filter(resolution=60, kind="get").get().count == 30  # 2 buffered + 1 new batch
    assert IngestionBatch.objects.order_by("received_at").first().dropped_batches == 3


def flusher_records(broker):
    return broker.delivered[0]["dropped"]["records"]


def test_flushes_on_interval_or_when_full(history_on):
    monitor, broker = CachePerformanceMonitor(), Broker()
    flusher = CeleryFlusher(interval=3600, max_rollups=3, buffer_batches=5, send=broker)
    reads(monitor, 5)
    flusher(monitor, monitor.drain())
    assert broker.delivered == []  # 2 rollups (keygen + get): not full, not due
    monitor.record_cache_operation_time("set", 0.001, True, operation_type="qa", tier="small")
    flusher(monitor, monitor.drain())
    assert len(broker.delivered) == 1  # 3 rollups: full
    assert len(broker.delivered[0]["rollups"]) == 3


def test_counters_and_events_travel(history_on):
    monitor, broker = CachePerformanceMonitor(cache_operation_threshold=0.001), Broker()
    flusher = CeleryFlusher(interval=0, max_rollups=100, buffer_batches=5, send=broker)
    monitor.count("single_flight_coalesced", 4)
    monitor.record_cache_operation_time(
        "get", 0.5, True, 10, operation_type="qa", tier="small", source="redis"
    )
    monitor.record_invalidation_event("qa", 3, 0.01, "operation", "ctx")
    monitor.record_memory_usage(3, 300, 100, 1000, None, 12345)
    flusher(monitor, monitor.drain())
    payload = broker.delivered[0]
    assert any(
        r[1] == "counter" and r[2] == "single_flight_coalesced" and r[5] == 4 for r in payload["rollups"]
    )
    assert len(payload["slow"]) == 1 and len(payload["invalidations"]) == 1 and len(payload["memory"]) == 1


def test_history_disabled_sends_nothing(settings):
    settings.AICACHE = {**settings.AICACHE, "HISTORY_ENABLED": False}
    monitor, broker = CachePerformanceMonitor(), Broker()
    flusher = CeleryFlusher(interval=0, max_rollups=1, buffer_batches=5, send=broker)
    reads(monitor, 3)
    flusher(monitor, monitor.drain())
    assert broker.delivered == []


def test_cache_calls_reach_the_database_through_eager_celery(settings, ai_cache):
    """The default sender publishes the ingest task (eager here): cache calls end up as rows."""
    from aicache.monitoring.flusher import CeleryFlusher

    settings.AICACHE = {**settings.AICACHE, "HISTORY_ENABLED": True}
    flusher = CeleryFlusher(interval=0, max_rollups=100, buffer_batches=5)
    ai_cache.cache_response("hello " * 20, "qa", None, {"a": 1}, question="q")
    ai_cache.get_cached_response("hello " * 20, "qa", question="q")
    flusher(ai_cache.monitor, ai_cache.monitor.drain())
    assert Rollup.objects.filter(kind="get", resolution=60).get().outcome == "hit_memory"
    assert Rollup.objects.filter(kind="set", resolution=60).exists()


def test_a_scrape_collects_but_does_not_ship(history_on):
    """/metrics flushes with ship=False: a request thread never waits on the Celery broker."""
    from types import SimpleNamespace

    from aicache.memory import MemoryTier
    from aicache.monitoring.exporter import Exporter

    monitor, broker = CachePerformanceMonitor(), Broker()
    flusher = CeleryFlusher(interval=0, max_rollups=1000, buffer_batches=5, send=broker)
    exporter = Exporter()
    exporter._sinks = [flusher]
    exporter._watched.append(
        SimpleNamespace(monitor=monitor, memory=MemoryTier(1, 1), sample_seconds=1e9, last_sample=1e18)
    )
    reads(monitor, 4)
    exporter.flush_now(ship=False)
    assert broker.delivered == [] and flusher.waiting == 0
    exporter.flush_now()
    assert len(broker.delivered) == 1
    (get,) = [r for r in broker.delivered[0]["rollups"] if r[1] == "get"]
    assert get[5] == 4  # what the scrape collected was shipped by the next exporter pass
