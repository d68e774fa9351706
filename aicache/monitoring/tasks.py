"""Celery tasks: batch ingestion and the beat jobs. Arguments are primitives; all are safe to
re-run (ingestion is idempotent per batch id; the jobs are idempotent by nature)."""

from __future__ import annotations

from typing import Any

from celery import shared_task
from django.db import DatabaseError, IntegrityError

from aicache.monitoring import maintenance
from aicache.monitoring.celery import QUEUE  # noqa: F401  (routed there by TASK_ROUTES)
from aicache.monitoring.ingest import ingest


@shared_task(
    name="aicache.monitoring.ingest_batch",
    ignore_result=True,
    acks_late=True,  # a worker killed mid-task leaves the message to be redelivered
    reject_on_worker_lost=True,
    autoretry_for=(IntegrityError, DatabaseError),  # e.g. two workers creating the same new rollup
    retry_backoff=True,
    retry_backoff_max=60,
    max_retries=8,
    soft_time_limit=50,
    time_limit=60,
)
def ingest_batch(payload: dict[str, Any]) -> dict[str, Any]:
    return ingest(payload)


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
