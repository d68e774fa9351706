"""A project served by gunicorn in integration tests: real Redis, a view that uses the cache."""

from tests.settings_real import *  # noqa: F403

ROOT_URLCONF = "tests.urls_gunicorn"
AICACHE = {"METRICS_PUBLIC": True}
