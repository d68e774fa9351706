"""Celery tasks: batch ingestion and the beat jobs. Arguments are primitives; all are safe to
re-run (ingestion is idempotent per batch id; the jobs are idempotent by nature)."""

from __future__ import annotations

import logging
from typing import Any

from celery import shared_task
from celery.signals import task_failure
from django.db import DatabaseError, IntegrityError

from aicache.monitoring import maintenance
from aicache.monitoring.celery import QUEUE  # noqa: F401  (routed there by TASK_ROUTES)
from aicache.monitoring.ingest import ingest

logger = logging.getLogger("aicache.monitoring")
# Database errors (an outage, two workers creating the same new rollup) are retried with
# exponential backoff capped at 5 minutes and Celery's jitter (a random countdown up to it): 48
# retries wait about 1.9 h on average (at most 3.9 h), so a database outage of an hour or so loses
# nothing. A batch that still cannot be written, or is malformed, is counted as lost.
INGEST_RETRY_BACKOFF_MAX = 300
INGEST_MAX_RETRIES = 48


@shared_task(
    name="aicache.monitoring.ingest_batch",
    ignore_result=True,
    acks_late=True,  # a worker killed mid-task leaves the message to be redelivered
    reject_on_worker_lost=True,
    autoretry_for=(IntegrityError, DatabaseError),
    retry_backoff=True,
    retry_backoff_max=INGEST_RETRY_BACKOFF_MAX,
    max_retries=INGEST_MAX_RETRIES,
    soft_time_limit=50,
    time_limit=60,
)
def ingest_batch(payload: dict[str, Any]) -> dict[str, Any]:
    return ingest(payload)


@task_failure.connect(sender=ingest_batch, weak=False)
def _batch_lost(sender=None, task_id=None, exception=None, args=None, kwargs=None, **extra) -> None:
    """The batch is given up (retries exhausted, or malformed): count it
    (``aicache_monitoring_dropped_total{what="ingest_batches"}``) and say why, so no monitoring
    data is lost silently. A signal rather than a Task subclass keeps the task class as Celery's
    app builds it."""
    payload = (args or [None])[0] if args else (kwargs or {}).get("payload")
    batch_id = payload.get("batch_id") if isinstance(payload, dict) else None
    retries = getattr(getattr(sender, "request", None), "retries", 0) or 0
    logger.error(
        "aicache: monitoring batch %s lost after %d retries: %s: %s",
        batch_id,
        retries,
        type(exception).__name__,
        exception,
    )
    try:
        from aicache.monitoring import prometheus

        prometheus.MONITORING_DROPS.labels(what="ingest_batches").inc()
    except ImportError:  # prometheus-client not installed: the log line above still says it
        pass


@shared_task(name="aicache.monitoring.cleanup", rate_limit="6/m", soft_time_limit=600, time_limit=660)
def cleanup() -> dict[str, int]:
    return maintenance.cleanup()


@shared_task(name="aicache.monitoring.compact", rate_limit="6/m", soft_time_limit=600, time_limit=660)
def compact() -> dict[str, int]:
    return maintenance.compact()


@shared_task(
    name="aicache.monitoring.snapshot_redis",
    rate_limit="12/m",
    soft_time_limit=30,
    time_limit=40,
)
def snapshot_redis() -> list[dict[str, Any]]:
    return maintenance.snapshot_redis()


@shared_task(
    name="aicache.monitoring.train_dictionaries", rate_limit="2/m", soft_time_limit=300, time_limit=330
)
def train_dictionaries() -> list[str]:
    """Train and publish zstd dictionaries (aicache.dictionaries): in a worker, never a request."""
    from aicache import dictionaries

    return dictionaries.train_configured()
