"""POST invalidate/, reset/ and process/: what they do, what they record, and their throttles."""

import pytest
from rest_framework.settings import api_settings

pytestmark = pytest.mark.django_db

TEXT = "Caching makes repeated answers fast and cheap. It is a good and reliable idea."


def _fill(cache):
    for i in range(3):
        cache.cache_response(
            f"{TEXT} {i}", "summarize", None, {"summary": str(i)}, tags=["prompt:v1"] if i else None
        )
    for i in range(2):
        cache.cache_response(f"{TEXT} {i}", "sentiment", None, {"label": "positive"})


@pytest.mark.parametrize(
    "body,kind,removed,left",
    [
        ({"operation": "summarize"}, "operation", 3, 2),
        ({"pattern": "sent*"}, "pattern", 2, 3),
        ({"all": True}, "all", 5, 0),
        ({"tags": ["prompt:v1", "model:none"]}, "tags", 2, 3),
    ],
)
def test_invalidate_returns_the_count_and_records_the_user(
    admin_client_api, ai_cache, body, kind, removed, left
):
    _fill(ai_cache)
    dry = admin_client_api.post("/api/aicache/invalidate/", {**body, "dry_run": True}, format="json").json()
    assert (dry["kind"], dry["count"], dry["dry_run"]) == (kind, removed, True)
    assert ai_cache.count_all() == 5  # a dry run changes nothing
    response = admin_client_api.post(
        "/api/aicache/invalidate/", {**body, "reason": "new prompt"}, format="json"
    )
    assert response.status_code == 200
    data = response.json()
    assert (data["kind"], data["count"], data["dry_run"]) == (kind, removed, False)
    assert data["context"] == "via=api user=superuser reason=new prompt"
    assert ai_cache.count_all() == left
    (event,) = ai_cache.monitor.export_metrics()["invalidations"]
    assert event["operation_context"] == "via=api user=superuser reason=new prompt"
    assert (event["invalidation_type"], event["keys_invalidated"]) == (kind, removed)


def test_invalidate_memory_tier(client_for, ai_cache):
    _fill(ai_cache)
    assert len(ai_cache.memory) == 5
    client = client_for("permitted")
    data = client.post("/api/aicache/invalidate/", {"memory": True, "everywhere": True}, format="json").json()
    assert (data["kind"], data["everywhere"], data["count"]) == ("memory", True, 5)
    assert len(ai_cache.memory) == 0 and ai_cache.count_all() == 5


def test_reset_clears_this_process_recorder(admin_client_api, ai_cache):
    _fill(ai_cache)
    ai_cache.get_cached_response(f"{TEXT} 0", "summarize")
    assert ai_cache.monitor.get_performance_stats()["cache_hits"] == 1
    data = admin_client_api.post("/api/aicache/reset/", format="json").json()
    assert data["live"] is True and data["caches"] == ["ai"] and ":" in data["process"]
    assert ai_cache.monitor.get_performance_stats()["cache_hits"] == 0


def test_invalidate_and_reset_share_a_per_user_throttle(admin_client_api, client_for, ai_cache, settings):
    settings.REST_FRAMEWORK = {
        **getattr(settings, "REST_FRAMEWORK", {}),
        "DEFAULT_THROTTLE_RATES": {"aicache_invalidate": "3/minute"},
    }
    assert api_settings.DEFAULT_THROTTLE_RATES["aicache_invalidate"] == "3/minute"
    codes = [
        admin_client_api.post("/api/aicache/invalidate/", {"all": True}, format="json").status_code,
        admin_client_api.post("/api/aicache/reset/", format="json").status_code,
        admin_client_api.post("/api/aicache/invalidate/", {"all": True}, format="json").status_code,
    ]
    assert codes == [200, 200, 200]
    throttled = admin_client_api.post("/api/aicache/invalidate/", {"all": True}, format="json")
    assert throttled.status_code == 429 and "Retry-After" in throttled
    assert "throttled" in throttled.json()["detail"].lower()
    # another user has their own budget
    assert client_for("permitted").post("/api/aicache/reset/", format="json").status_code == 200


def test_process_computes_then_hits(client_for, ai_cache):
    client = client_for("user")
    body = {"text": TEXT, "operation": "sentiment", "options": {"detail": 1}}
    first = client.post("/api/aicache/process/", body, format="json").json()
    assert first["cache"]["hit"] is False and first["cache"]["source"] == "compute"
    assert first["result"]["sentiment"] == "positive" and first["result"]["usage"]["total_tokens"] > 0
    assert "cache_hit" not in first["result"] and "text" not in first["result"]
    second = client.post("/api/aicache/process/", body, format="json").json()
    assert second["cache"]["hit"] is True and second["cache"]["source"] in ("memory", "redis")
    assert second["result"] == first["result"]
    assert second["cache"]["tier"] == "small" and second["cache"]["text_length"] == len(TEXT)


def test_process_cache_controls(client_for, ai_cache):
    client = client_for("user")
    body = {"text": TEXT, "operation": "summarize"}
    miss = client.post("/api/aicache/process/", {**body, "cache": "only-if-cached"}, format="json").json()
    assert miss == {"result": None, "cache": None}
    client.post("/api/aicache/process/", {**body, "cache": "no-store"}, format="json")
    assert ai_cache.count_all() == 0
    client.post("/api/aicache/process/", body, format="json")
    hit = client.post("/api/aicache/process/", {**body, "cache": "only-if-cached"}, format="json").json()
    assert hit["cache"]["hit"] is True


@pytest.mark.parametrize(
    "body,field",
    [
        ({"operation": "summarize"}, "text"),
        ({"text": "   ", "operation": "summarize"}, "text"),
        ({"text": "x" * 100_001, "operation": "summarize"}, "text"),
        ({"text": TEXT, "operation": "translate"}, "operation"),
        ({"text": TEXT, "operation": "qa"}, "question"),
        ({"text": TEXT, "operation": "qa", "question": "q" * 2001}, "question"),
        ({"text": TEXT, "operation": "summarize", "options": {"a": [1]}}, "options"),
        ({"text": TEXT, "operation": "summarize", "options": {str(i): i for i in range(11)}}, "options"),
        ({"text": TEXT, "operation": "summarize", "options": {"n": 2**60}}, "options"),
        ({"text": TEXT, "operation": "summarize", "cache": "always"}, "cache"),
        ({"text": TEXT, "operation": "summarize", "extra": 1}, "extra"),
        ({"text": 12345, "operation": "summarize"}, "text"),
        ({"text": TEXT, "operation": "qa", "question": 7}, "question"),
    ],
)
def test_process_validation(client_for, ai_cache, body, field):
    response = client_for("user").post("/api/aicache/process/", body, format="json")
    assert response.status_code == 400 and field in response.json(), response.content
    assert ai_cache.count_all() == 0


def test_process_is_throttled_per_user(client_for, ai_cache, settings):
    settings.REST_FRAMEWORK = {"DEFAULT_THROTTLE_RATES": {"aicache_process": "2/minute"}}
    client = client_for("user")
    body = {"text": TEXT, "operation": "sentiment"}
    codes = [client.post("/api/aicache/process/", body, format="json").status_code for _ in range(3)]
    assert codes == [200, 200, 429]


@pytest.fixture
def redis_down(ai_cache, monkeypatch):
    from redis.exceptions import ConnectionError as RedisConnectionError

    def down(*args, **kwargs):
        raise RedisConnectionError("Redis is down")

    for name in ("rename", "smembers", "scan_iter", "zcount", "pipeline", "register_script", "zrangebyscore"):
        monkeypatch.setattr(ai_cache.redis, name, down)
    return ai_cache


@pytest.mark.parametrize(
    "body", [{"operation": "summarize"}, {"all": True}, {"tags": ["t"]}, {"pattern": "s*"}]
)
def test_invalidate_with_redis_down_is_a_503_not_a_zero(admin_client_api, redis_down, body):
    for dry_run in (True, False):
        response = admin_client_api.post(
            "/api/aicache/invalidate/", {**body, "dry_run": dry_run}, format="json"
        )
        assert response.status_code == 503 and "Redis failed" in response.json()["detail"]


def test_command_and_admin_report_redis_down(redis_down, admin_client):
    from io import StringIO

    from django.core.management import CommandError, call_command

    with pytest.raises(CommandError, match="Redis failed"):
        call_command("aicache_invalidate", "--all", "--yes", stdout=StringIO(), stderr=StringIO())
    page = admin_client.get("/admin/aicache/invalidate/", {"kind": "all", "cache": "ai"})
    assert page.status_code == 503 and b"Redis failed" in page.content
