"""The cache against a real redis-server: round trips, TTLs, faults and recovery."""

import time

import pytest
from django.test import Client

from tests.helpers import wait_for

pytestmark = pytest.mark.integration

SMALL = "Small texts live in the memory tier as well as in Redis. " * 2
MEDIUM = "Medium texts are only kept in Redis, compressed when their answers are large. " * 20
RESPONSE = {"summary": " ".join(f"Finding {i}: answers repeat, so cache them." for i in range(50))}


def test_round_trip_compression_and_ttl(real_cache):
    real_cache.cache_response(MEDIUM, "summarize", {"length": "short"}, RESPONSE)
    hit = real_cache.get_cached_response(MEDIUM, "summarize", {"length": "short"})
    assert hit["summary"] == RESPONSE["summary"]
    assert hit["compression_used"] is True and hit["cache_source"] == "redis" and hit["tier"] == "medium"
    key = real_cache.key_generator.generate(MEDIUM, "summarize", {"length": "short"})
    assert 7190 <= real_cache.redis.ttl(key) <= 7200
    assert real_cache.redis.strlen(key) < len(RESPONSE["summary"]) / 2


def test_invalidation_on_real_redis(real_cache):
    for i in range(300):
        real_cache.cache_response(f"{SMALL} {i}", "sentiment", None, {"label": "neutral"})
        real_cache.cache_response(f"{SMALL} {i}", "qa", None, {"answer": "yes"}, question="Is it?")
    assert real_cache.invalidate_by_operation("sentiment") == 300
    assert real_cache.get_cached_response(f"{SMALL} 7", "qa", question="Is it?")["answer"] == "yes"
    assert real_cache.invalidate_pattern("qa:") == 300
    assert not list(real_cache.redis.scan_iter("ai_cache:*:*"))


def test_redis_stopped_mid_test_and_restarted(real_cache, redis_server):
    real_cache.cache_response(SMALL, "summarize", None, RESPONSE)
    real_cache.cache_response(MEDIUM, "summarize", None, RESPONSE)
    real_cache.set("plain", {"a": 1})
    redis_server.stop()
    wait_for(lambda: real_cache.coherence.status == "disconnected", what="the listener to notice")

    started = time.monotonic()
    computed = []
    for _ in range(20):
        # Nobody can prove what changed in Redis meanwhile: the memory tier is bypassed too.
        assert real_cache.get_cached_response(SMALL, "summarize") is None
        assert real_cache.get_cached_response(MEDIUM, "summarize") is None
        real_cache.cache_response(MEDIUM, "sentiment", None, {"label": "positive"})
        result = real_cache.get_or_compute(MEDIUM, "qa", lambda: computed.append(1) or {"answer": "42"})
        assert result["answer"] == "42" and result["cache_hit"] is False
        assert real_cache.invalidate_by_operation("sentiment") == 0
        assert real_cache.invalidate_pattern("qa:") == 0
        assert real_cache.get("plain", "fallback") == "fallback"
        assert real_cache.ping() is False
    assert real_cache.invalidate_all() == 0
    elapsed = time.monotonic() - started
    assert len(computed) == 20
    # 200 calls against a dead server: the breaker keeps this to a few failed connects, not 200.
    assert elapsed < 5, elapsed
    errors = real_cache.error_counts()
    assert errors["unreachable"] >= 1 and errors["circuit_open"] >= 100

    redis_server.start()
    deadline = time.monotonic() + 10
    while not real_cache.ping():
        assert time.monotonic() < deadline, "cache did not recover"
        time.sleep(0.1)
    real_cache.cache_response(MEDIUM, "summarize", None, RESPONSE)
    assert real_cache.get_cached_response(MEDIUM, "summarize")["cache_source"] == "redis"


@pytest.mark.django_db
def test_health_endpoint_reports_redis_state(real_cache, redis_server):
    client = Client()
    body = client.get("/health/").json()
    assert body == {"status": "ok", "database": "ok", "caches": {"ai": "ok"}}
    redis_server.stop()
    response = client.get("/health/")
    assert response.status_code == 200
    assert response.json()["caches"] == {"ai": "unreachable"} and response.json()["status"] == "degraded"
    home = client.get("/")
    assert home.status_code == 200 and b"unreachable" in home.content
