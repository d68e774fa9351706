"""Users of every role, API clients, and a clean throttle cache for the API tests."""

import pytest
from celery import current_app
from django.contrib.auth.models import Permission
from django.core.cache import caches
from django.core.signals import request_finished, request_started
from django.db import close_old_connections
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

ROLES = ("anonymous", "user", "staff", "permitted", "superuser")


@pytest.fixture(autouse=True)
def _fresh_throttles():
    caches["default"].clear()  # DRF throttles count in the default cache
    yield
    caches["default"].clear()


@pytest.fixture(autouse=True)
def _instant_processor(settings):
    settings.AICACHE_TEXT_PROCESSOR = {
        "CLASS": "aicache.processor.LocalTextProcessor",
        "OPTIONS": {"latency": 0},
    }


def make_user(django_user_model, role):
    if role == "anonymous":
        return None
    if role == "superuser":
        return django_user_model.objects.create_superuser(role, f"{role}@example.com", "pw-123456")
    user = django_user_model.objects.create_user(role, f"{role}@example.com", "pw-123456")
    if role in ("staff", "permitted"):
        user.is_staff = True
        user.save()
    if role == "permitted":
        user.user_permissions.add(Permission.objects.get(codename="invalidate_cache"))
    return user


@pytest.fixture
def client_for(db, django_user_model):
    """``client_for(role)``: an APIClient authenticated by token as that role (none if anonymous)."""

    def build(role, token=True):
        client = APIClient()
        user = make_user(django_user_model, role)
        if user is not None:
            if token:
                client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
            else:
                client.force_login(user)
        return client

    return build


@pytest.fixture
def staff(client_for):
    return client_for("staff")


@pytest.fixture
def admin_client_api(client_for):
    return client_for("superuser")


@pytest.fixture
def wired(settings, redis_server, monkeypatch):
    """caches["ai"] and the Celery broker on the test's real redis-server (databases 0 and 1)."""
    if redis_server.process is None:
        redis_server.start()
    settings.CACHES = {
        **settings.CACHES,
        "ai": {
            "BACKEND": "aicache.backend.AIResponseCache",
            "LOCATION": f"{redis_server.url}/0",
            "OPTIONS": {
                "SOCKET_TIMEOUT": 0.5,
                "SOCKET_CONNECT_TIMEOUT": 0.5,
                "CIRCUIT_BREAKER_RESET_SECONDS": 0.5,
            },
        },
    }
    monkeypatch.setattr(current_app.conf, "broker_url", f"{redis_server.url}/1")
    cache = caches["ai"]
    cache.redis.flushdb()
    cache.cache_response("a text that is cached", "summarize", None, {"summary": "s"})
    yield cache
    if redis_server.process is None:  # the test stopped it: bring it back for the others
        redis_server.start()


@pytest.fixture
def history_on_for_health(monkeypatch):
    """health.py sees HISTORY_ENABLED on. Only health.py: turning it on in the settings would
    install this process's Celery flusher for the rest of the session."""
    from aicache.conf import merged
    from aicache.monitoring import health

    monkeypatch.setattr(health, "merged", lambda: {**merged(), "HISTORY_ENABLED": True})


@pytest.fixture
def keep_test_connection(db):
    """A raw WSGI call ends with request_finished, which closes the database connection (and the
    test's transaction with it); Django's test client disconnects that handler the same way."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    yield
    request_started.connect(close_old_connections)
    request_finished.connect(close_old_connections)
