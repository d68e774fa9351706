"""The cache against a real redis-server: round trips, TTLs, faults and recovery."""

import time

import pytest
from django.core.cache import caches
from django.test import Client

from aicache import state
from tests.helpers import FakeClock, wait_for

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


@pytest.mark.parametrize("coherence", ["tracking", "local"])
def test_redis_stopped_mid_test_and_restarted(settings, real_cache, redis_server, monkeypatch, coherence):
    """README "Faults" with aicache's default breaker (3 failures, 5 s) and 0.5 s timeouts: reads
    miss, writes are skipped, counts are 0; the memory tier is bypassed under tracking (nobody can
    prove what changed in Redis meanwhile) and keeps serving under MEMORY_COHERENCE="local"; the
    outage costs exactly 3 failed attempts, then the breaker answers every call at once."""
    settings.CACHES = {
        **settings.CACHES,
        "down": {
            "BACKEND": "aicache.backend.AIResponseCache",
            "LOCATION": f"{redis_server.url}/0",
            "OPTIONS": {"MEMORY_COHERENCE": coherence},
        },
    }
    cache = caches["down"]
    assert cache.start_coherence(wait=5) == ("live" if coherence == "tracking" else "local")
    cache.cache_response(SMALL, "summarize", None, RESPONSE)
    cache.cache_response(MEDIUM, "summarize", None, RESPONSE)
    cache.set("plain", {"a": 1})
    if coherence == "tracking":  # the writer keeps nothing: its next read fills the tier
        wait_for(lambda: cache.get_cached_response(SMALL, "summarize")["cache_source"] == "memory")
    assert cache.get_cached_response(SMALL, "summarize")["cache_source"] == "memory"
    # The breaker's clock stands still: however slow this machine, its 5 s window covers the loop.
    clock = FakeClock(state.time.monotonic())
    monkeypatch.setattr(state, "time", clock)
    redis_server.stop()
    if coherence == "tracking":
        wait_for(lambda: cache.coherence.status == "disconnected", what="the listener to notice")

    started = time.monotonic()
    computed = []
    for _ in range(20):
        small = cache.get_cached_response(SMALL, "summarize")
        if coherence == "tracking":  # cleared when the proof lapsed, and bypassed
            assert small is None and len(cache.memory) == 0
        else:
            assert small["summary"] == RESPONSE["summary"] and small["cache_source"] == "memory"
        assert cache.get_cached_response(MEDIUM, "summarize") is None
        cache.cache_response(MEDIUM, "sentiment", None, {"label": "positive"})
        result = cache.get_or_compute(MEDIUM, "qa", lambda: computed.append(1) or {"answer": "42"})
        assert result["answer"] == "42" and result["cache_hit"] is False
        assert cache.invalidate_by_operation("sentiment") == 0
        assert cache.invalidate_pattern("qa:") == 0
        assert cache.get("plain", "fallback") == "fallback"
        assert cache.ping() is False
    assert cache.invalidate_all() == 0
    elapsed = time.monotonic() - started
    assert len(computed) == 20
    errors = cache.error_counts()
    # 161 calls against a dead server: exactly CIRCUIT_BREAKER_FAILURES reached it, the rest were
    # refused by the open breaker; README's cost is those 3 attempts, each bounded by the 0.5 s
    # socket timeout (a stopped server refuses at once), plus 0.5 s for the refused calls.
    assert errors["unreachable"] == 3 and errors["circuit_open"] >= 100
    assert elapsed < 3 * 0.5 + 0.5, elapsed

    redis_server.start()
    assert cache.ping() is False  # still inside the breaker's 5 s
    clock.now += 5.0
    wait_for(cache.ping, what="the cache to recover")
    cache.cache_response(MEDIUM, "summarize", None, RESPONSE)
    assert cache.get_cached_response(MEDIUM, "summarize")["cache_source"] == "redis"


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


def test_start_coherence_waits_for_the_first_proof_up_to_its_bound(proxied_cache):
    """start_coherence(wait=s) returns once the listener's first liveness proof came back, or after
    s seconds without one; never sooner, never later."""
    fresh, _ = proxied_cache("fresh")  # a new identity (the proxy's address): no listener yet
    assert fresh.start_coherence(wait=1.0) == "live"
    hung, _ = proxied_cache("hung", accept_only=True, SOCKET_TIMEOUT=0.3, SOCKET_CONNECT_TIMEOUT=0.3)
    started = time.monotonic()
    status = hung.start_coherence(wait=0.4)
    elapsed = time.monotonic() - started
    assert status != "live" and 0.4 <= elapsed < 1.5, (status, elapsed)


def test_ping_answers_false_when_misconfigured(settings):
    settings.AICACHE = {"HASH_ALGORITHM": "crc32"}
    assert caches["ai"].config is None and caches["ai"].ping() is False
