"""What reaches the database stays proportionate: honest hit counts, capped slow events, and an idle
process that ships nothing."""

import time
from types import SimpleNamespace

import pytest
from django.db.models import Sum

from aicache.memory import MemoryTier
from aicache.monitoring import exporter as exporter_module
from aicache.monitoring import recorder, stats
from aicache.monitoring.exporter import Exporter
from aicache.monitoring.flusher import CeleryFlusher
from aicache.monitoring.models import IngestionBatch, MemorySnapshot, Rollup, SlowOperation
from aicache.monitoring.recorder import CachePerformanceMonitor
from tests.helpers import FakeBroker

pytestmark = pytest.mark.django_db


class Clock:
    def __init__(self) -> None:
        self.wall = float(int(time.time()) // 60 * 60)  # a minute boundary, now
        self.mono = 1_000_000.0

    def advance(self, seconds: float) -> None:
        self.wall += seconds
        self.mono += seconds


@pytest.fixture
def clock(monkeypatch):
    c = Clock()
    monkeypatch.setattr(time, "time", lambda: c.wall)
    monkeypatch.setattr(time, "monotonic", lambda: c.mono)
    return c


def counter_total(name: str) -> int:
    rows = Rollup.objects.filter(resolution=60, kind="counter", operation=name)
    return rows.aggregate(n=Sum("count"))["n"] or 0


def test_five_identical_calls_reach_the_database_as_one_miss_four_hits(pipeline):
    pipeline.monitor.record_lookup("qa", "small", "", 0.001, 1e-6, 40)
    for _ in range(4):
        pipeline.monitor.record_lookup("qa", "small", "coalesced", 0.2, 1e-6, 40)
    pipeline.flush()
    db = stats.performance_stats(stats.window(last="1h"))
    assert (db["cache_hits"], db["cache_misses"], db["cache_hit_rate"]) == (4, 1, 80.0)
    assert counter_total("single_flight_coalesced") == 4
    outcomes = dict(Rollup.objects.filter(resolution=60, kind="get").values_list("outcome", "count"))
    assert outcomes == {"miss": 1, "hit_coalesced": 4}


def test_slow_operation_rows_grow_with_time_not_with_request_rate(pipeline, clock):
    cap = 20  # README: "capped at 20 per minute and action"
    pipeline.monitor.cache_operation_threshold = 0.01
    for minute in range(3):  # Redis turned slow: 2,000 slow reads a minute for 3 minutes
        for _ in range(2000):
            pipeline.monitor.record_lookup("qa", "small", "redis", 0.2, None, 10)
        clock.advance(60)
    pipeline.flush()
    assert SlowOperation.objects.count() == 3 * cap
    assert counter_total("dropped_slow_events") == 3 * (2000 - cap)
    reads = Rollup.objects.filter(resolution=60, kind="get").aggregate(n=Sum("count"))["n"]
    assert reads == 6000  # every read is counted; only raw rows are capped


def test_idle_process_ships_nothing(history_on, clock, monkeypatch):
    """After its first figures, a process that serves nothing sends no batch and writes no row
    for a minute (memory sampled every second here, more often than the default 10 s), then a
    memory heartbeat every MEMORY_HEARTBEAT_SECONDS."""
    monkeypatch.setattr(exporter_module, "process_rss_bytes", lambda: 200_000_000)
    broker = FakeBroker()
    sent = broker.delivered
    monitor = CachePerformanceMonitor()
    memory = MemoryTier(100, 1_000_000)
    flusher = CeleryFlusher(interval=10.0, max_rollups=2000, buffer_batches=10, send=broker)

    def sink(monitor, drained):  # the flusher as the exporter sees it, sending on this thread
        if flusher.collect(monitor, drained):
            flusher.flush()

    exporter = Exporter()
    exporter._sinks = [sink]
    exporter._watched.append(
        SimpleNamespace(monitor=monitor, memory=memory, sample_seconds=1.0, last_sample=0.0)
    )

    def run(seconds):
        for _ in range(seconds):
            clock.advance(1)
            exporter.flush_now()

    monitor.record_lookup("qa", "small", "redis", 0.001, None, 10)  # some work, then silence
    run(15)
    assert len(sent) == 1  # the work and the first memory snapshot
    rows = (Rollup.objects.count(), MemorySnapshot.objects.count(), IngestionBatch.objects.count())
    run(60)
    assert sent[1:] == []
    assert (Rollup.objects.count(), MemorySnapshot.objects.count(), IngestionBatch.objects.count()) == rows
    run(int(recorder.MEMORY_HEARTBEAT_SECONDS))
    assert len(sent) == 2 and [len(sent[1][k]) for k in ("rollups", "memory")] == [0, 1]
    memory.set("k", SimpleNamespace(), 50_000, 60)  # a real change ships at once (next batch)
    run(11)
    assert len(sent) == 3 and sent[2]["memory"][0][2] == 50_000
