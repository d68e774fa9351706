"""Bad input: a 400 in DRF's {"field": ["message"]} shape, naming what is wrong; nothing changes."""

import pytest

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url,params,field",
    [
        ("/api/aicache/stats/", {"bogus": "1"}, "bogus"),
        ("/api/aicache/stats/", {"last": "1h", "limit": "5", "zzz": ""}, "limit"),
        ("/api/aicache/memory/", {"format": "csv"}, "format"),  # not DRF's renderer override
        ("/api/aicache/health/", {"verbose": "1"}, "verbose"),
        ("/api/aicache/stats/", {"last": "2h"}, "last"),
        ("/api/aicache/stats/", {"since": "yesterday"}, "since"),
        ("/api/aicache/stats/", {"since": "1999-12-31T00:00:00Z"}, "since"),
        ("/api/aicache/stats/", {"since": "2026-01-01T00:00:00Z", "until": "2099-01-01T00:00:00Z"}, "until"),
        ("/api/aicache/stats/", {"since": "2001-01-01T00:00:00Z"}, "since"),  # longer than 400 days
        ("/api/aicache/stats/", {"last": "1h", "since": "2026-01-01T00:00:00Z"}, "non_field_errors"),
        ("/api/aicache/stats/", {"operation": "Summarize!"}, "operation"),
        ("/api/aicache/stats/", {"operation": "a" * 65}, "operation"),
        ("/api/aicache/stats/", {"tier": "x y"}, "tier"),
        ("/api/aicache/stats/timeseries/", {"interval": "second"}, "interval"),
        ("/api/aicache/stats/timeseries/", {"last": "30d", "interval": "minute"}, "interval"),
        ("/api/aicache/slow-operations/", {"threshold_multiplier": "0.5"}, "threshold_multiplier"),
        ("/api/aicache/slow-operations/", {"threshold_multiplier": "nan"}, "threshold_multiplier"),
        ("/api/aicache/slow-operations/", {"limit": "501"}, "limit"),
        ("/api/aicache/invalidations/", {"page_size": "0"}, "page_size"),
        ("/api/aicache/invalidations/", {"page_size": "501"}, "page_size"),
        ("/api/aicache/invalidations/", {"page": "-1"}, "page"),
        ("/api/aicache/invalidations/", {"type": "nope"}, "type"),
        ("/api/aicache/invalidations/", {"status": "maybe"}, "status"),
        ("/api/aicache/invalidations/", {"context": "c" * 101}, "context"),
        ("/api/aicache/export/", {"format": "xml"}, "format"),
    ],
)
def test_bad_query_parameters(staff, url, params, field):
    response = staff.get(url, params)
    assert response.status_code == 400, response.content
    body = response.json()
    assert field in body and isinstance(body[field], list) and all(isinstance(m, str) for m in body[field])


def test_blank_parameters_are_refused(staff):
    body = staff.get("/api/aicache/stats/?until=&last=1h").json()
    assert body == {"until": ["This field may not be blank."]}


def test_unknown_parameters_are_all_named(staff):
    body = staff.get("/api/aicache/stats/", {"b": "1", "a": "2", "last": "1h"}).json()
    assert body == {"a": ["Unknown query parameter."], "b": ["Unknown query parameter."]}


@pytest.mark.parametrize(
    "body,field",
    [
        ({}, "non_field_errors"),
        ({"operation": "summarize", "all": True}, "non_field_errors"),
        ({"all": False}, "non_field_errors"),
        ({"operation": "Summ ARIZE"}, "operation"),
        ({"operation": ["summarize"]}, "operation"),
        ({"pattern": "ai_cache:summarize:*"}, "pattern"),
        ({"pattern": "x" * 300}, "pattern"),
        ({"all": "maybe"}, "all"),
        ({"all": True, "everywhere": True}, "non_field_errors"),
        ({"all": True, "reason": "r" * 121}, "reason"),
        ({"all": True, "reason": "bad\x00reason"}, "reason"),
        ({"all": True, "surprise": 1}, "surprise"),
        ({"all": "true"}, "all"),  # JSON types are kept: no "true" -> True
        ({"all": 1}, "all"),
        ({"all": True, "reason": 5}, "reason"),
        ({"pattern": 12}, "pattern"),
    ],
)
def test_bad_invalidate_bodies_change_nothing(admin_client_api, ai_cache, body, field):
    ai_cache.cache_response("some text to keep", "summarize", None, {"summary": "kept"})
    response = admin_client_api.post("/api/aicache/invalidate/", body, format="json")
    assert response.status_code == 400, response.content
    assert field in response.json()
    assert ai_cache.count_all() == 1
    assert ai_cache.monitor.export_metrics()["invalidations"] == []


def test_malformed_json_is_a_400(admin_client_api):
    response = admin_client_api.post("/api/aicache/invalidate/", "{not json", content_type="application/json")
    assert response.status_code == 400 and "detail" in response.json()


def test_a_json_list_body_is_a_400(admin_client_api):
    response = admin_client_api.post("/api/aicache/invalidate/", [1, 2], format="json")
    assert response.status_code == 400 and "non_field_errors" in response.json()


def test_form_bodies_are_refused(admin_client_api):
    response = admin_client_api.post("/api/aicache/invalidate/", {"all": "true"})  # multipart
    assert response.status_code == 415
