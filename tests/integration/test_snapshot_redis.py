"""`snapshot_redis` (beat, every minute): one MemorySnapshot per aicache cache with Redis's memory,
the live entry count and the keyspace counters, read from a real redis-server; a Redis fault is
reported for that alias and writes nothing."""

import pytest

from aicache.monitoring import maintenance
from aicache.monitoring.models import MemorySnapshot

pytestmark = [pytest.mark.django_db, pytest.mark.history]


def test_snapshot_redis_records_the_live_entries_and_counters(real_cache, settings):
    settings.CACHES = {"default": settings.CACHES["default"], "ai": settings.CACHES["ai"]}
    for i in range(3):
        real_cache.cache_response(f"text {i}", "summarize", None, {"r": i})
    real_cache.redis.set("not ours", "x")  # another application's key is not an entry
    info = real_cache.redis.info("stats")
    (out,) = maintenance.snapshot_redis()
    assert out["alias"] == "ai" and out["entries"] == 3
    snap = MemorySnapshot.objects.get()
    assert snap.source == MemorySnapshot.Source.REDIS and snap.process == "ai"
    assert snap.redis_key_count == 3
    assert snap.redis_used_bytes == out["used_memory"] > 0
    assert snap.redis_keyspace_hits >= info["keyspace_hits"]
    assert snap.redis_keyspace_misses >= info["keyspace_misses"]


def test_snapshot_redis_reports_a_fault_and_writes_nothing(real_cache, settings, redis_server):
    settings.CACHES = {"default": settings.CACHES["default"], "ai": settings.CACHES["ai"]}
    redis_server.stop()
    (out,) = maintenance.snapshot_redis()
    assert out["alias"] == "ai" and "error" in out and out["error"]
    assert MemorySnapshot.objects.count() == 0
