"""One-line wiring for library users: aicache.urls and aicache.monitoring.celery."""

import importlib

from celery.schedules import crontab
from django.conf import settings as django_settings
from django.test import override_settings
from django.urls import reverse

from aicache.monitoring import celery as aicache_celery
from aicache_project.celery import app as project_app


def test_urls_serve_metrics_when_monitoring_is_installed(client):
    assert reverse("aicache_monitoring:metrics") == "/metrics"
    assert client.get("/metrics").status_code in (401, 403)  # served, and guarded


def test_urls_add_nothing_without_the_monitoring_app():
    import aicache.urls

    apps_without = [a for a in django_settings.INSTALLED_APPS if a != "aicache.monitoring"]
    try:
        with override_settings(INSTALLED_APPS=apps_without):
            assert importlib.reload(aicache.urls).urlpatterns == []
    finally:
        assert importlib.reload(aicache.urls).urlpatterns != []


def test_tasks_route_to_the_aicache_queue():
    for task in ("ingest_batch", "cleanup", "compact", "snapshot_redis"):
        route = project_app.amqp.router.route({}, f"aicache.monitoring.{task}")
        assert route["queue"].name == aicache_celery.QUEUE == "aicache_monitoring"
    assert project_app.amqp.router.route({}, "myproject.tasks.other")["queue"].name == "celery"
    assert aicache_celery.WORKER_QUEUES.split(",") == ["celery", "aicache_monitoring"]


def test_beat_schedule_names_registered_tasks():
    import aicache.monitoring.tasks  # noqa: F401  (registers the shared tasks)

    assert django_settings.CELERY_BEAT_SCHEDULE == aicache_celery.BEAT_SCHEDULE
    assert django_settings.CELERY_TASK_ROUTES == aicache_celery.TASK_ROUTES
    for entry in aicache_celery.BEAT_SCHEDULE.values():
        assert entry["task"] in project_app.tasks
        assert isinstance(entry["schedule"], (float, crontab))
