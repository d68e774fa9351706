"""The periodic jobs behind the Celery beat tasks: cleanup, compaction, Redis snapshots."""

from __future__ import annotations

import datetime as dt
from typing import Any

from django.core.cache import caches
from django.utils import timezone
from redis.exceptions import RedisError

from aicache import invalidation
from aicache.checks import aicache_aliases
from aicache.conf import merged
from aicache.monitoring.models import (
    IngestionBatch,
    InvalidationEvent,
    MemorySnapshot,
    Resolution,
    Rollup,
    SlowOperation,
)


def cleanup(now: dt.datetime | None = None) -> dict[str, int]:
    """Delete raw records older than RETENTION_RAW_DAYS and rollups older than
    RETENTION_ROLLUP_DAYS, in batches of CLEANUP_BATCH_SIZE."""
    raw = merged()
    now = now or timezone.now()
    raw_cutoff = now - dt.timedelta(days=raw["RETENTION_RAW_DAYS"])
    rollup_cutoff = now - dt.timedelta(days=raw["RETENTION_ROLLUP_DAYS"])
    size = raw["CLEANUP_BATCH_SIZE"]
    return {
        "slow_operations": SlowOperation.objects.delete_before(raw_cutoff, size),
        "invalidation_events": InvalidationEvent.objects.delete_before(raw_cutoff, size),
        "memory_snapshots": MemorySnapshot.objects.delete_before(raw_cutoff, size),
        "ingestion_batches": IngestionBatch.objects.delete_before(raw_cutoff, size, field="received_at"),
        "rollups": Rollup.objects.delete_before(rollup_cutoff, size, field="period_start"),
    }


def compact(now: dt.datetime | None = None) -> dict[str, int]:
    """Minute rollups older than MINUTE_ROLLUP_HOURS are folded into hours. Ingestion already adds
    every minute into its hour and day rows, so folding them is dropping the minute rows: the
    hourly and daily figures are unchanged, only minute detail older than that goes."""
    raw = merged()
    now = now or timezone.now()
    cutoff = now - dt.timedelta(hours=raw["MINUTE_ROLLUP_HOURS"])
    cutoff = cutoff.replace(minute=0, second=0, microsecond=0)  # whole hours only
    removed = Rollup.objects.filter(resolution=Resolution.MINUTE).delete_before(
        cutoff, raw["CLEANUP_BATCH_SIZE"], field="period_start"
    )
    return {"minute_rollups_folded": removed}


def snapshot_redis() -> list[dict[str, Any]]:
    """Record Redis memory, live entry count and hit/miss counters for each aicache cache (on Redis
    Cluster, summed over every primary)."""
    from aicache.monitoring.health import server_totals

    out = []
    for alias, _ in aicache_aliases():
        cache = caches[alias]
        try:
            client = cache.redis
            memory = server_totals(client, "memory", ("used_memory",))
            stats = server_totals(client, "stats", ("keyspace_hits", "keyspace_misses"))
            entries = invalidation.live_all(client, cache.ns)
        except RedisError as exc:
            out.append({"alias": alias, "error": str(exc)})
            continue
        snapshot = MemorySnapshot.objects.create(
            timestamp=timezone.now(),
            source=MemorySnapshot.Source.REDIS,
            process=alias,
            redis_used_bytes=memory.get("used_memory"),
            redis_key_count=entries,
            redis_keyspace_hits=stats.get("keyspace_hits"),
            redis_keyspace_misses=stats.get("keyspace_misses"),
        )
        out.append({"alias": alias, "used_memory": snapshot.redis_used_bytes, "entries": entries})
    return out
