"""Is everything wired? One set of checks behind ``GET health/`` and ``manage.py aicache_status``.

Everything here is live: Redis is asked now, the broker is connected to now, the listener state and
the outbox are this process's. Each check returns a plain dict with ``ok`` and, when not ok, a
``reason``; :func:`health` lists the reasons of every failed check.
"""

from __future__ import annotations

import contextlib
from typing import Any

from django.core.cache import caches
from django.db import DatabaseError, connection
from redis.exceptions import RedisError

from aicache.checks import aicache_aliases
from aicache.conf import merged

# Coherence states in which the memory tier is safe to use (or not used at all).
HEALTHY_COHERENCE = ("live", "local")
BROKER_TIMEOUT = 2.0


def server_totals(client: Any, section: str, fields: tuple[str, ...]) -> dict[str, int]:
    """``INFO section`` figures of the cache's Redis: on Redis Cluster, summed over every primary
    (each holds its share of the entries; a replica's copy is not more data)."""
    if not hasattr(client, "get_primaries"):
        info = client.info(section)
        return {field: int(info.get(field, 0) or 0) for field in fields}
    totals = dict.fromkeys(fields, 0)
    for node in client.get_primaries():
        info = client.get_redis_connection(node).info(section)
        for field in fields:
            totals[field] += int(info.get(field, 0) or 0)
    return totals


def redis_status(alias: str) -> dict[str, Any]:
    """Ping, version, memory and live entries of one cache's Redis, and its listener state."""
    cache = caches[alias]
    out: dict[str, Any] = {"cache": alias, "ok": False}
    if not cache.ping():
        out["reason"] = f"Redis of cache {alias!r} does not answer"
        out["coherence"] = cache.coherence.status
        return out
    try:
        info = cache.redis.info("server")
        memory = server_totals(cache.redis, "memory", ("used_memory",))
    except (RedisError, OSError) as exc:
        out["reason"] = f"Redis of cache {alias!r}: {exc}"
        out["coherence"] = cache.coherence.status
        return out
    coherence = cache.start_coherence(wait=1.0)
    out.update(
        version=str(info.get("redis_version", "")),
        used_memory=int(memory.get("used_memory", 0)),
        live_entries=cache.count_all(),
        coherence=coherence,
        ok=coherence in HEALTHY_COHERENCE,
    )
    if not out["ok"]:
        out["reason"] = f"coherence listener of cache {alias!r} is {coherence}"
    return out


def broker_status(timeout: float = BROKER_TIMEOUT) -> dict[str, Any]:
    """Connect to the Celery broker (the history pipeline's transport)."""
    from celery import current_app
    from kombu.exceptions import KombuError

    url = current_app.conf.broker_url or ""
    out: dict[str, Any] = {"ok": False, "transport": url.partition("://")[0] or "unknown"}
    try:
        with current_app.connection_for_write() as conn:
            conn.ensure_connection(max_retries=1, interval_start=0, interval_step=0, timeout=timeout)
    except (KombuError, RedisError, OSError) as exc:
        out["reason"] = f"broker unreachable: {type(exc).__name__}: {exc}"[:300]
        return out
    out["ok"] = True
    return out


def workers_seen(timeout: float = 1.0) -> list[str]:
    """Names of the Celery workers that answer a ping (empty when none, or the broker is down)."""
    from celery import current_app
    from kombu.exceptions import KombuError

    try:
        replies = current_app.control.ping(timeout=timeout) or []
    except (KombuError, RedisError, OSError):
        return []
    return sorted(name for reply in replies for name in reply)


def database_status() -> dict[str, Any]:
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
    except DatabaseError as exc:
        return {"ok": False, "vendor": connection.vendor, "reason": f"database: {exc}"[:300]}
    return {"ok": True, "vendor": connection.vendor}


def pipeline_status() -> dict[str, Any]:
    """This process's outbox and drops, and the age of the newest batch any process delivered."""
    from aicache.monitoring import stats
    from aicache.monitoring.flusher import get_flusher

    flusher = get_flusher()
    out: dict[str, Any] = {
        "history_enabled": bool(merged()["HISTORY_ENABLED"]),
        "outbox_batches": int(getattr(flusher, "waiting", 0) or 0),
        "dropped_batches": int(getattr(flusher, "dropped_batches", 0) or 0),
        "dropped_records": int(getattr(flusher, "dropped_records", 0) or 0),
        "last_batch_age_seconds": None,
    }
    with contextlib.suppress(DatabaseError):  # the database check reports it
        out["last_batch_age_seconds"] = stats.last_batch_age()
    return out


def health() -> dict[str, Any]:
    """Every check; ``healthy`` is false, with the reasons, when Redis, a listener, the database
    or (with HISTORY_ENABLED) the broker is not right."""
    caches_status = [redis_status(alias) for alias, _ in aicache_aliases()]
    database = database_status()
    pipeline = pipeline_status()
    broker = broker_status()
    # The broker carries the monitoring history only: its outage is a reason when history is on.
    required = [*caches_status, database, *([broker] if pipeline["history_enabled"] else [])]
    reasons = [c["reason"] for c in required if not c["ok"]]
    return {
        "healthy": not reasons,
        "reasons": reasons,
        "live": True,
        "caches": caches_status,
        "broker": broker,
        "database": database,
        "pipeline": pipeline,
    }
