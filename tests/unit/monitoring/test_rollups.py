"""What a monitor ships, field by field, against hand-computed rollups: reads of every source,
writes, key generation, compression, invalidations, savings, slow events and their per-minute cap,
memory samples shipped only when they moved or a heartbeat is due."""

import pytest

from aicache.monitoring import recorder
from aicache.monitoring.events import MemoryRecord
from aicache.monitoring.recorder import CachePerformanceMonitor
from aicache.monitoring.rollups import (
    MEMORY_HEARTBEAT_SECONDS,
    MODEL_COLUMN,
    SLOW_EVENTS_PER_MINUTE,
    _memory_moved,
)
from aicache.monitoring.sketch import ZERO_BUCKET, bucket_of
from tests.factories import DrainedRollupFactory
from tests.unit.monitoring.conftest import T0


@pytest.fixture
def monitor(clock):
    return CachePerformanceMonitor(
        retention_hours=1, max_measurements=1000, cache_operation_threshold=1.0, key_generation_threshold=1.0
    )


def test_reads_of_every_source(monitor, clock):
    for source, d, n in (
        ("memory", 0.25, 10),
        ("memory", 0.125, 30),
        ("redis", 0.5, 20),
        ("coalesced", 0.75, 20),
        ("l2", 0.5, 0),  # a custom tier's source: hit_<source>
        ("", 0.0, 40),  # a miss measured at zero: the zero bucket
    ):
        monitor.record_lookup("qa", "small", source, d, 0.0625 if source == "memory" else None, n)
    clock.now = T0 + 59  # the same minute
    monitor.record_lookup("qa", "small", "", 0.5, None, 50)
    drained = monitor.drain()
    get = lambda outcome: drained.rollups[(T0, "get", "qa", "small", outcome)]  # noqa: E731
    assert get("hit_memory") == DrainedRollupFactory(durations=[0.25, 0.125], text_lengths=[10, 30])
    assert get("hit_redis") == DrainedRollupFactory(durations=[0.5], text_lengths=[20])
    assert get("hit_coalesced") == DrainedRollupFactory(durations=[0.75], text_lengths=[20])
    assert get("hit_l2") == DrainedRollupFactory(durations=[0.5])
    assert get("miss") == DrainedRollupFactory(durations=[0.0, 0.5], text_lengths=[40, 50])
    assert get("miss").sketch[ZERO_BUCKET] == 1
    assert drained.rollups[(T0, "keygen", "qa", "", "ok")] == DrainedRollupFactory(
        durations=[0.0625, 0.0625], text_lengths=[10, 30]
    )
    assert len(drained.rollups) == 6
    assert drained.counters == {"single_flight_coalesced": 1}
    assert (monitor.cache_hits, monitor.cache_misses, monitor.total_operations) == (5, 2, 7)
    assert monitor.drain().rollups == {}  # drained once


def test_the_next_minute_is_another_rollup(monitor, clock):
    monitor.record_lookup("qa", "small", "", 0.5, None, 1)
    clock.now = T0 + 60
    monitor.record_lookup("qa", "small", "", 0.5, None, 1)
    keys = sorted(k[0] for k in monitor.drain().rollups)
    assert keys == [T0, T0 + 60]


def test_actions_through_the_originals_call(monitor):
    monitor.record_cache_operation_time("set", 0.5, False, 100, operation_type="qa", tier="small")
    monitor.record_cache_operation_time(
        "set", 0.25, False, 0, operation_type="qa", tier="small", success=False
    )
    monitor.record_cache_operation_time("get", 0.125, True, 7, operation_type="qa", tier="small")
    monitor.record_cache_operation_time(
        "get", 0.25, False, 7, operation_type="qa", tier="small", source="coalesced"
    )
    monitor.record_cache_operation_time("get", 0.5, False, 7, operation_type="qa", tier="small")
    drained = monitor.drain()
    assert drained.rollups[(T0, "set", "qa", "small", "ok")] == DrainedRollupFactory(
        durations=[0.5], text_lengths=[100]
    )
    assert drained.rollups[(T0, "set", "qa", "small", "error")] == DrainedRollupFactory(durations=[0.25])
    assert drained.rollups[(T0, "get", "qa", "small", "hit")] == DrainedRollupFactory(
        durations=[0.125], text_lengths=[7]
    )
    assert drained.rollups[(T0, "get", "qa", "small", "hit_coalesced")] == DrainedRollupFactory(
        durations=[0.25], text_lengths=[7]
    )
    assert drained.rollups[(T0, "get", "qa", "small", "miss")] == DrainedRollupFactory(
        durations=[0.5], text_lengths=[7]
    )
    assert drained.counters == {"single_flight_coalesced": 1}
    assert (monitor.cache_hits, monitor.cache_misses, monitor.total_operations) == (2, 1, 5)
    summary = monitor.summary()
    assert summary["avg_operation_latency"] == pytest.approx(1.625 / 5)
    assert summary["avg_get_latency_by_tier"] == {"small": pytest.approx(0.875 / 3)}


def test_compression_and_its_ratio_sketch(monitor):
    monitor.record_compression_ratio(1000, 250, 0.5, "qa")
    monitor.record_compression_ratio(3000, 1500, 0.25, "qa")
    monitor.record_compression_ratio(0, 0, 0.125, "qa")  # nothing to compress: ratio 1
    drained = monitor.drain()
    assert drained.rollups[(T0, "compress", "qa", "", "ok")] == DrainedRollupFactory(
        durations=[0.5, 0.25, 0.125], bytes_in=4000, bytes_out=1750, ratios=[0.25, 0.5, 1.0]
    )
    assert monitor.summary()["compression_bytes_saved"] == 2250


def test_invalidations_roll_up_their_keys(monitor):
    monitor.record_invalidation_event("summ*", 12, 0.5, "pattern", "ctx")
    monitor.record_invalidation_event("summ*", 3, 0.25, "pattern", "ctx", status="failed", reason="x")
    drained = monitor.drain()
    assert drained.rollups[(T0, "invalidate", "pattern", "", "success")] == DrainedRollupFactory(
        durations=[0.5], bytes_in=12
    )
    assert drained.rollups[(T0, "invalidate", "pattern", "", "failed")] == DrainedRollupFactory(
        durations=[0.25], bytes_in=3
    )
    assert [(r.keys_invalidated, r.status) for r in drained.invalidations] == [(12, "success"), (3, "failed")]
    stats = monitor.get_invalidation_frequency_stats()
    assert (stats["total_invalidations"], stats["total_keys_invalidated"]) == (2, 15)


def test_savings_roll_up_per_model(monitor):
    long_model = "m" * (MODEL_COLUMN + 10)
    monitor.record_saving("qa", "gpt-4o", 2.0, 100, 20, 0.25)
    monitor.record_saving("qa", "gpt-4o", 1.0, 50, 10, 0.125)
    monitor.record_saving("qa", long_model, 4.0, 1, 2, 0.5)
    drained = monitor.drain()
    assert drained.rollups[(T0, "saved", "qa", "gpt-4o", "ok")] == DrainedRollupFactory(
        durations=[2.0, 1.0], bytes_in=150, bytes_out=30
    )
    assert drained.rollups[(T0, "hit_cost", "qa", "gpt-4o", "ok")] == DrainedRollupFactory(
        durations=[0.25, 0.125]
    )
    short = long_model[:MODEL_COLUMN]
    assert drained.rollups[(T0, "saved", "qa", short, "ok")] == DrainedRollupFactory(
        durations=[4.0], bytes_in=1, bytes_out=2
    )
    assert monitor.saved == {("qa", "gpt-4o"): [2, 3.0, 0.375, 150, 30], ("qa", short): [1, 4.0, 0.5, 1, 2]}


def test_slow_events_are_kept_up_to_the_per_minute_cap(monitor, clock):
    for _ in range(SLOW_EVENTS_PER_MINUTE + 5):
        monitor.record_lookup("qa", "small", "redis", 1.5, None, 7)
    monitor.record_lookup("qa", "small", "redis", 1.0, None, 7)  # at the threshold: not slow
    monitor.record_lookup("qa", "small", "coalesced", 9.0, None, 7)  # a wait for a compute: never slow
    drained = monitor.drain()
    assert len(drained.slow) == SLOW_EVENTS_PER_MINUTE
    first = drained.slow[0]
    assert (first.operation, first.duration, first.cache_hit, first.text_length) == ("get", 1.5, True, 7)
    assert (first.operation_type, first.tier, first.source) == ("qa", "small", "redis")
    assert drained.counters["dropped_slow_events"] == 5
    clock.now = T0 + 60  # a new minute: a fresh allowance
    monitor.record_cache_operation_time("set", 2.0, False, 7, operation_type="qa", tier="small")
    monitor.record_lookup("qa", "small", "", 2.0, None, 7)
    drained = monitor.drain()
    assert [(r.operation, r.cache_hit) for r in drained.slow] == [("set", False), ("get", False)]
    assert "dropped_slow_events" not in drained.counters


def _mem(ts=T0, entries=100, size=10_000, max_entries=1000, max_bytes=100_000, redis=None, rss=1_000_000):
    return MemoryRecord(ts, entries, size, max_entries, max_bytes, redis, rss)


@pytest.mark.parametrize(
    ("new", "moved"),
    [
        (_mem(), False),
        (_mem(entries=105), False),  # exactly 5 %: not moved
        (_mem(entries=106), True),
        (_mem(entries=94), True),
        (_mem(size=10_500), False),
        (_mem(size=10_501), True),
        (_mem(rss=1_050_001), True),
        (_mem(redis=5), True),  # None -> a value
        (_mem(max_entries=999), True),
        (_mem(max_bytes=1), True),
    ],
)
def test_memory_moved(new, moved):
    assert _memory_moved(_mem(), new) is moved


def test_a_memory_figure_from_zero_moves_by_more_than_its_ratio():
    assert not _memory_moved(_mem(entries=0), _mem(entries=0))
    assert _memory_moved(_mem(entries=0), _mem(entries=1))
    assert _memory_moved(_mem(redis=100), _mem(redis=None))


def test_memory_samples_ship_when_moved_or_on_the_heartbeat(monitor, clock):
    def sample(entries):
        monitor.record_memory_usage(entries, 10_000, 1000, 100_000, None, 1_000_000)

    sample(100)  # the first: shipped
    clock.now += 10
    sample(101)  # barely moved: kept for readings, not shipped
    clock.now += 10
    sample(200)  # moved: shipped
    clock.now += MEMORY_HEARTBEAT_SECONDS - 1
    sample(200)
    clock.now += 1  # the heartbeat after the last shipped one
    sample(200)
    shipped = monitor.drain().memory
    assert [(r.timestamp - T0, r.memory_entries) for r in shipped] == [
        (0, 100),
        (20, 200),
        (20 + MEMORY_HEARTBEAT_SECONDS, 200),
    ]
    assert monitor.get_memory_usage_stats()["total_samples"] == 5


def test_records_beyond_the_pending_bound_are_dropped_and_counted(monitor, monkeypatch):
    import threading

    monkeypatch.setattr(recorder, "MAX_PENDING", 10)
    holding, release = threading.Event(), threading.Event()

    def reader():  # another thread is folding: the recording thread cannot fold itself
        with monitor._state_lock:
            holding.set()
            release.wait(10)

    thread = threading.Thread(target=reader)
    thread.start()
    assert holding.wait(10)
    try:
        for _ in range(15):
            monitor.record_lookup("qa", "small", "redis", 0.5, None, 7)
    finally:
        release.set()
        thread.join(10)
    drained = monitor.drain()
    assert drained.counters == {"dropped_pending": 5}
    assert drained.rollups[(T0, "get", "qa", "small", "hit_redis")].count == 10


def test_equal_compression_ratios_share_a_bucket(monitor):
    monitor.record_compression_ratio(1000, 500, 0.5, "qa")
    monitor.record_compression_ratio(2000, 1000, 0.5, "qa")
    rolled = monitor.drain().rollups[(T0, "compress", "qa", "", "ok")]
    assert rolled.ratio_sketch == {bucket_of(0.5): 2}


@pytest.mark.parametrize("keygen", [False, True])
def test_a_read_at_exactly_the_threshold_ends_a_slow_period(monitor, caplog, keygen):
    """The slow warning is logged once per crossing from normal to slow; a duration equal to the
    threshold is not slow, so it ends the period and the next slow read warns again."""

    def read(seconds):
        if keygen:
            monitor.record_lookup("qa", "small", "redis", 0.001, seconds, 7)
        else:
            monitor.record_lookup("qa", "small", "redis", seconds, None, 7)
        monitor.drain()

    for seconds in (1.5, 1.5, 1.0, 1.5):
        read(seconds)
    what = "key generation" if keygen else "cache get"
    warnings = [r for r in caplog.records if r.getMessage().startswith(f"aicache {what} took")]
    assert len(warnings) == 2
