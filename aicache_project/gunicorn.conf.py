"""gunicorn settings for the reference project: several workers, Prometheus multiprocess mode.

Run: PROMETHEUS_MULTIPROC_DIR=.run/prometheus gunicorn -c aicache_project/gunicorn.conf.py
(`make run` does this). Each worker writes its metrics to files in that directory and /metrics
sums them; a dead worker's live gauges are dropped here.
"""

import os
import shutil

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
wsgi_app = "aicache_project.wsgi:application"
accesslog = "-"
timeout = 60


def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        raise RuntimeError("Set PROMETHEUS_MULTIPROC_DIR so that /metrics sums every worker's figures.")
    shutil.rmtree(directory, ignore_errors=True)  # stale files from a previous run would add up
    os.makedirs(directory, exist_ok=True)


def post_fork(server, worker):
    # Start each cache's coherence listener now rather than on the first request.
    from django.conf import settings
    from django.core.cache import caches

    from aicache.checks import aicache_aliases

    if settings.configured:
        for alias, _ in aicache_aliases():
            caches[alias].start_coherence()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
