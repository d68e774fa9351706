"""GET health/ on a real redis-server and broker: 200 when all is wired, 503 with the reasons when
Redis is stopped or the broker is down."""

import pytest
from celery import current_app

from aicache.bench.redis_server import free_port

pytestmark = [pytest.mark.django_db, pytest.mark.integration]


def test_healthy(staff, wired, redis_server):
    response = staff.get("/api/aicache/health/")
    data = response.json()
    assert response.status_code == 200, data
    assert data["healthy"] is True and data["reasons"] == [] and data["live"] is True
    (cache,) = data["caches"]
    version = redis_server.client().info("server")["redis_version"]
    assert (cache["cache"], cache["ok"], cache["version"], cache["live_entries"]) == ("ai", True, version, 1)
    assert cache["coherence"] == "live"
    assert data["broker"] == {"ok": True, "transport": "redis"}
    assert data["database"]["ok"] is True
    assert data["pipeline"]["outbox_batches"] == 0 and data["pipeline"]["last_batch_age_seconds"] is None


def test_503_when_redis_is_stopped(staff, wired, redis_server, monkeypatch):
    monkeypatch.setattr(current_app.conf, "broker_url", f"{redis_server.url}/1")
    assert staff.get("/api/aicache/health/").status_code == 200
    redis_server.stop()
    response = staff.get("/api/aicache/health/")
    data = response.json()
    assert response.status_code == 503
    assert data["healthy"] is False and data["caches"][0]["ok"] is False
    assert [r for r in data["reasons"]] == ["Redis of cache 'ai' does not answer"]
    assert data["broker"]["ok"] is False  # the same server here; history is off in the tests


def test_503_when_the_broker_is_down(staff, wired, monkeypatch, history_on_for_health):
    monkeypatch.setattr(current_app.conf, "broker_url", f"redis://127.0.0.1:{free_port()}/1")
    response = staff.get("/api/aicache/health/")
    data = response.json()
    assert response.status_code == 503
    assert data["caches"][0]["ok"] is True and data["broker"]["ok"] is False
    assert [r.split(":")[0] for r in data["reasons"]] == ["broker unreachable"]


def test_broker_down_is_reported_but_not_a_failure_without_history(staff, wired, monkeypatch):
    monkeypatch.setattr(current_app.conf, "broker_url", f"redis://127.0.0.1:{free_port()}/1")
    response = staff.get("/api/aicache/health/")
    data = response.json()
    assert response.status_code == 200 and data["pipeline"]["history_enabled"] is False
    assert data["broker"]["ok"] is False and data["reasons"] == []


def test_a_stopped_redis_never_breaks_a_request(admin_client_api, client_for, wired, redis_server):
    redis_server.stop()
    response = admin_client_api.post("/api/aicache/invalidate/", {"operation": "summarize"}, format="json")
    assert response.status_code == 503 and "Redis failed" in response.json()["detail"]
    (event,) = wired.monitor.export_metrics()["invalidations"]
    assert event["status"] == "failed" and event["reason"]
    assert admin_client_api.get("/api/aicache/stats/").status_code == 200  # database only
    body = {"text": "Redis is down but the answer still comes.", "operation": "sentiment"}
    answer = client_for("user").post("/api/aicache/process/", body, format="json").json()
    assert answer["cache"]["source"] == "compute" and answer["result"]["operation"] == "sentiment"
