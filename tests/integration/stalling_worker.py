"""A real Celery worker process for the monitoring queue that can be told to stall inside an
ingestion transaction, so that a test can SIGKILL it at exactly that point.

    AICACHE_TEST_DATABASE_URL=... AICACHE_TEST_BROKER_URL=... AICACHE_TEST_STALL=/path \\
        python -m tests.integration.stalling_worker

With AICACHE_TEST_STALL set, the first batch stops after its IngestionBatch row is written and
before its rollups are merged (one transaction): the worker creates that file and waits forever.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

import django

django.setup()

from aicache.monitoring import ingest  # noqa: E402
from aicache_project.celery import app  # noqa: E402

stall = os.environ.get("AICACHE_TEST_STALL")
if stall:
    merge = ingest._merge_series

    def stalling_merge(aggs):
        Path(stall).write_text(str(os.getpid()))
        threading.Event().wait()  # until SIGKILL
        return merge(aggs)

    ingest._merge_series = stalling_merge

app.conf.update(
    broker_url=os.environ["AICACHE_TEST_BROKER_URL"],
    # An unacknowledged batch is due again after 2 s; kombu looks for such batches every 10 s but
    # scans Redis only on every 10th look by default (unacked_restore_throttle): once a scan fell
    # just before the 2 s, the next came 100 s later and the test's 60 s wait ran out. Scan on
    # every look.
    broker_transport_options={"visibility_timeout": 2, "unacked_restore_throttle": 1},
    task_always_eager=False,
    result_backend=None,
    worker_hijack_root_logger=False,
)

if __name__ == "__main__":
    app.worker_main(
        [
            "worker",
            "--pool=solo",
            "-Q",
            "aicache_monitoring,celery",
            "--without-mingle",
            "--without-gossip",
            "--loglevel=WARNING",
        ]
    )
