"""Each role gets the right status on each endpoint; CSRF holds for session authentication."""

import pytest
from django.utils.crypto import get_random_string
from rest_framework.test import APIClient

from tests.api.conftest import make_user

READS = [
    "/api/aicache/stats/",
    "/api/aicache/stats/timeseries/",
    "/api/aicache/slow-operations/",
    "/api/aicache/invalidations/",
    "/api/aicache/invalidations/stats/",
    "/api/aicache/invalidations/recommendations/",
    "/api/aicache/memory/",
    "/api/aicache/export/",
]
WRITES = [
    ("/api/aicache/invalidate/", {"operation": "summarize", "dry_run": True}),
    ("/api/aicache/reset/", {}),
]
PROCESS = ("/api/aicache/process/", {"text": "Caching makes answers fast.", "operation": "sentiment"})

READ_STATUS = {"anonymous": 401, "user": 403, "staff": 200, "permitted": 200, "superuser": 200}
WRITE_STATUS = {"anonymous": 401, "user": 403, "staff": 403, "permitted": 200, "superuser": 200}
PROCESS_STATUS = {"anonymous": 401, "user": 200, "staff": 200, "permitted": 200, "superuser": 200}


@pytest.mark.django_db
@pytest.mark.parametrize("role", list(READ_STATUS))
@pytest.mark.parametrize("url", READS)
def test_reads_need_staff(client_for, role, url, ai_cache):
    response = client_for(role).get(url)
    assert response.status_code == READ_STATUS[role], response.content[:300]


@pytest.mark.django_db
@pytest.mark.parametrize("role", list(WRITE_STATUS))
@pytest.mark.parametrize("url,body", WRITES)
def test_invalidate_and_reset_need_the_permission(client_for, role, url, body, ai_cache):
    response = client_for(role).post(url, body, format="json")
    assert response.status_code == WRITE_STATUS[role], response.content[:300]
    if response.status_code == 403:
        assert "detail" in response.json()


@pytest.mark.django_db
@pytest.mark.parametrize("role", list(PROCESS_STATUS))
def test_process_needs_an_authenticated_user(client_for, role, ai_cache):
    url, body = PROCESS
    assert client_for(role).post(url, body, format="json").status_code == PROCESS_STATUS[role]


def test_anonymous_gets_a_token_challenge(client_for, db):
    response = client_for("anonymous").get("/api/aicache/stats/")
    assert response.status_code == 401 and response["WWW-Authenticate"] == "Token"


@pytest.mark.django_db
def test_session_reads_work_and_unsafe_methods_need_csrf(django_user_model, ai_cache):
    user = make_user(django_user_model, "superuser")
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.get("/api/aicache/stats/").status_code == 200
    refused = client.post("/api/aicache/invalidate/", {"all": True}, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    # with the cookie's secret echoed in the header, the same request goes through
    token = get_random_string(32)
    client.cookies["csrftoken"] = token
    ok = client.post("/api/aicache/invalidate/", {"all": True}, format="json", HTTP_X_CSRFTOKEN=token)
    assert ok.status_code == 200, ok.content


@pytest.mark.django_db
def test_token_auth_needs_no_csrf(client_for, ai_cache):
    client = client_for("superuser")
    client.enforce_csrf_checks = True
    assert client.post("/api/aicache/invalidate/", {"all": True}, format="json").status_code == 200


@pytest.mark.django_db
def test_inactive_staff_is_refused(django_user_model, client_for):
    client = client_for("staff", token=False)
    django_user_model.objects.filter(username="staff").update(is_active=False)
    assert client.get("/api/aicache/stats/").status_code in (401, 403)


@pytest.mark.parametrize("url", ["/api/aicache/schema/", "/api/aicache/docs/", "/api/aicache/redoc/"])
def test_schema_and_its_viewers_need_staff(client_for, url):
    assert client_for("anonymous").get(url).status_code in (401, 403)
    assert client_for("authenticated").get(url).status_code == 403
    assert client_for("staff").get(url).status_code == 200
