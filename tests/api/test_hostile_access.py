"""Hostile callers (issue 16): every operation of the schema, whatever the body, refuses anonymous
and ordinary users where it must; schemathesis as an ordinary user finds no 5xx and no schema
violation; session writes need CSRF; no response carries another caller's cached text.

The staff-side schemathesis run is tests/api/test_schema.py. Stateful (linked) runs: the schema
has no path parameters and no resource an operation creates and another reads, so schemathesis
infers no links and the stateful phase has nothing to chain (test_no_links_to_follow says so, and
fails when that changes).
"""

from __future__ import annotations

import pytest
import schemathesis
from django.core.cache import caches
from hypothesis import HealthCheck, settings
from rest_framework.test import APIClient
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from aicache_project.wsgi import application
from tests.api.conftest import make_user
from tests.api.test_schema import _generated

SCHEMA = _generated()
OPERATIONS = [
    (path, method) for path, item in SCHEMA["paths"].items() for method in item if method != "parameters"
]
PROCESS = "/api/aicache/process/"


def body_of(response) -> str:
    if response.streaming:
        return b"".join(response.streaming_content).decode()
    return response.content.decode()


SECRET = "Patient 4711 was diagnosed with a rare condition; do not disclose. " * 3


def test_no_links_to_follow():
    assert OPERATIONS, "the schema lists no operation"
    assert not any("{" in path for path, _ in OPERATIONS)  # no path parameter to carry a state
    assert not any(
        "links" in response
        for item in SCHEMA["paths"].values()
        for op in item.values()
        for response in (op.get("responses", {}).values() if isinstance(op, dict) else [])
    )


@pytest.mark.django_db
@pytest.mark.parametrize("path,method", OPERATIONS)
@pytest.mark.parametrize("body", [{}, {"all": True}, {"text": "x", "operation": "summarize"}, [1, 2]])
def test_every_operation_refuses_anonymous_and_ordinary_users(
    path, method, body, django_user_model, ai_cache
):
    if method == "get":  # a query string, not a body
        body = body if isinstance(body, dict) else {"0": body}
    anonymous = APIClient()
    response = getattr(anonymous, method)(path, body, format="json")
    assert response.status_code == 401, (path, method, response.status_code)
    ordinary = APIClient()
    ordinary.force_authenticate(make_user(django_user_model, "user"))
    response = getattr(ordinary, method)(path, body, format="json")
    if path == PROCESS:  # the one operation ordinary users have: refused only for a bad body
        assert response.status_code in (200, 400), response.content[:300]
    else:
        assert response.status_code == 403, (path, method, response.status_code)


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path,method", [op for op in OPERATIONS if op[1] in ("post", "put", "patch", "delete")]
)
def test_session_writes_need_csrf(path, method, django_user_model, ai_cache):
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(make_user(django_user_model, "superuser"))
    response = getattr(client, method)(path, {"text": "x", "operation": "summarize"}, format="json")
    assert response.status_code == 403 and "CSRF" in response.json()["detail"]


@pytest.mark.django_db
def test_no_response_carries_another_callers_cached_text(django_user_model, ai_cache, settings):
    settings.AICACHE_TEXT_PROCESSOR = {
        "CLASS": "aicache.processor.LocalTextProcessor",
        "OPTIONS": {"latency": 0},
    }
    owner = APIClient()
    owner.force_authenticate(make_user(django_user_model, "user"))
    answer = owner.post(PROCESS, {"text": SECRET, "operation": "summarize"}, format="json")
    assert answer.status_code == 200
    summary = answer.json()["result"]["summary"]
    needles = [SECRET[:40], summary[:40]]
    # what it cached is in Redis (under a digest: the key never carries the text)
    assert not any(b"Patient" in key for key in caches["ai"].redis.keys("*"))
    other = django_user_model.objects.create_user("other", "o@example.com", "pw-123456")
    for role, user in (("other user", other), ("anonymous", None)):
        client = APIClient()
        if user is not None:
            client.force_login(user)
        for path, method in OPERATIONS:
            if method == "get":
                body = body_of(client.get(path))
                assert not any(n in body for n in needles), (role, path)
        for page in ("/admin/aicache/entries/", "/admin/aicache/dashboard/", "/metrics", "/"):
            body = body_of(client.get(page))
            assert not any(n in body for n in needles), (role, page)
    # operators see figures, not texts: the staff monitoring reads carry none either
    staff = APIClient()
    staff.force_authenticate(make_user(django_user_model, "superuser"))
    for path, method in OPERATIONS:
        if method == "get" and path != PROCESS:
            body = body_of(staff.get(path))
            assert not any(n in body for n in needles), ("staff", path)


@pytest.fixture
def user_token(django_user_model, settings, ai_cache):
    from rest_framework.authtoken.models import Token

    settings.REST_FRAMEWORK = {
        **settings.REST_FRAMEWORK,
        "DEFAULT_THROTTLE_RATES": {"aicache_invalidate": "100000/minute", "aicache_process": "100000/minute"},
    }
    user = django_user_model.objects.create_user("fuzz-user", "fuzz-user@example.com", "pw-123456")
    return Token.objects.create(user=user).key


schema = schemathesis.openapi.from_dict(SCHEMA)
schema.app = application


@schema.parametrize()
@settings(max_examples=10, deadline=None, derandomize=True, suppress_health_check=list(HealthCheck))
def test_schemathesis_as_an_ordinary_user(case, keep_test_connection, user_token):
    response = case.call(headers={"Authorization": f"Token {user_token}"})
    assert response.status_code < 500, f"{case.method} {case.formatted_path} -> {response.status_code}"
    if case.path != PROCESS:
        assert response.status_code == 403, f"{case.method} {case.formatted_path} -> {response.status_code}"
    case.validate_response(
        response, checks=[status_code_conformance, content_type_conformance, response_schema_conformance]
    )
