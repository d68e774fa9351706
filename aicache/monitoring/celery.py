"""Celery wiring for the monitoring history, for a project to merge into its own settings.

The project owns its Celery app (``config_from_object("django.conf:settings", namespace="CELERY")``
plus ``autodiscover_tasks()``); aicache only names its queue, routes and periodic jobs::

    from aicache.monitoring.celery import BEAT_SCHEDULE, TASK_ROUTES

    CELERY_TASK_ROUTES = {**TASK_ROUTES}  # plus the project's own routes
    CELERY_BEAT_SCHEDULE = {**BEAT_SCHEDULE}  # plus the project's own jobs

and a worker consumes the queue: ``celery -A mysite worker -Q celery,aicache_monitoring``
(``WORKER_QUEUES``). Run exactly one ``celery -A mysite beat`` per deployment.
"""

from __future__ import annotations

from typing import Any

from celery.schedules import crontab

QUEUE = "aicache_monitoring"
WORKER_QUEUES = f"celery,{QUEUE}"  # the -Q argument of a worker that serves the project and aicache

# Every aicache task is named aicache.monitoring.<task> (see aicache/monitoring/tasks.py).
TASK_ROUTES: dict[str, dict[str, str]] = {"aicache.monitoring.*": {"queue": QUEUE}}

BEAT_SCHEDULE: dict[str, dict[str, Any]] = {
    # Redis used_memory, live entries per operation (from the indexes, no keyspace scan), hits/misses
    "aicache-snapshot-redis": {"task": "aicache.monitoring.snapshot_redis", "schedule": 60.0},
    # minute rollups older than MINUTE_ROLLUP_HOURS folded away (hour and day rows already hold them)
    "aicache-compact": {"task": "aicache.monitoring.compact", "schedule": crontab(minute=7)},
    # rows past RETENTION_RAW_DAYS / RETENTION_ROLLUP_DAYS deleted in short batches
    "aicache-cleanup": {"task": "aicache.monitoring.cleanup", "schedule": crontab(minute=17)},
    # zstd dictionaries per operation trained from its newest entries and published (aicache.dictionaries)
    "aicache-train-dictionaries": {
        "task": "aicache.monitoring.train_dictionaries",
        "schedule": crontab(minute=37),
    },
}
