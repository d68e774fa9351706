"""gunicorn settings for the reference project in production: several workers, Prometheus
multiprocess mode, each worker's coherence listeners started at boot.

    PROMETHEUS_MULTIPROC_DIR=/run/aicache/prometheus gunicorn -c aicache_project/gunicorn.conf.py

(`make run` does not use this file: it serves with Django's runserver. The gunicorn integration
test, tests/integration/test_gunicorn_metrics.py, runs it with two workers; docs/deploy.md has the
full deployment.) Each worker writes its metrics to files in PROMETHEUS_MULTIPROC_DIR and /metrics
sums them; a dead worker's live gauges are dropped here.
"""

import os
import shutil

bind = os.environ.get("GUNICORN_BIND", "127.0.0.1:8000")
workers = int(os.environ.get("GUNICORN_WORKERS", "2"))
wsgi_app = "aicache_project.wsgi:application"
accesslog = "-"
timeout = 60

if os.environ.get("LOG_FORMAT") == "json":  # as the project's settings: one JSON object per line
    _json = {
        "()": "pythonjsonlogger.json.JsonFormatter",
        "fmt": "%(asctime)s %(levelname)s %(name)s %(process)d %(message)s",
        "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger", "process": "pid"},
    }
    _stdout = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
    logconfig_dict = {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": _json},
        "handlers": {"console": _stdout, "error_console": _stdout},
        "root": {"level": "INFO", "handlers": ["console"]},
        "loggers": {
            "gunicorn.error": {"level": "INFO", "handlers": ["console"], "propagate": False},
            "gunicorn.access": {"level": "INFO", "handlers": ["console"], "propagate": False},
        },
    }


def on_starting(server):
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        raise RuntimeError("Set PROMETHEUS_MULTIPROC_DIR so that /metrics sums every worker's figures.")
    shutil.rmtree(directory, ignore_errors=True)  # stale files from a previous run would add up
    os.makedirs(directory, exist_ok=True)


def post_worker_init(worker):
    """Start each aicache cache's coherence listener as soon as the worker has loaded the app.

    Until a process's listener is live, its reads skip the memory tier; started lazily, that would
    be on the worker's first cache call. This hook runs in each worker after the application (and
    so Django) is loaded. ``post_fork`` would be too early: it runs before the worker imports the
    app, when Django is not set up (unless ``preload_app``). With ``preload_app = True`` this hook
    is still the one to use: listener threads never survive a fork, and each worker's process state
    starts fresh. Proven by test_each_worker_starts_coherence_at_boot.
    """
    from django.core.cache import caches

    from aicache.checks import aicache_aliases

    for alias, _ in aicache_aliases():
        caches[alias].start_coherence()


def child_exit(server, worker):
    from prometheus_client import multiprocess

    multiprocess.mark_process_dead(worker.pid)
