"""The cache against a real redis-server: round trips, TTLs, faults and recovery."""

import time

import pytest
from django.core.cache import caches
from django.test import Client

from aicache import state
from tests.helpers import FakeClock, run_threads, wait_for, write_and_settle

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
    if coherence == "tracking":  # README: the dropped connection is noticed within the liveness bound
        wait_for(
            lambda: cache.coherence.status == "disconnected",
            timeout=cache.config.coherence_liveness_seconds,
            what="the listener to notice",
        )

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


def test_local_tier_serves_while_redis_is_down_until_each_entrys_ttl(
    settings, real_cache, redis_server, monkeypatch
):
    """README "Faults": under MEMORY_COHERENCE="local" the memory tier keeps serving what it holds
    while Redis is down, each entry until its own TTL and not after (a clock the test moves).
    ``real_cache`` empties Redis first and starts it again afterwards."""
    from aicache import backend, coherence, memory

    clock = FakeClock(1_000.0, wall_offset=time.time() - 1_000.0)
    for module in (backend, coherence, memory, state):
        monkeypatch.setattr(module, "time", clock)
    settings.CACHES = {
        **settings.CACHES,
        "local": {
            "BACKEND": "aicache.backend.AIResponseCache",
            "LOCATION": f"{redis_server.url}/0",
            "OPTIONS": {"MEMORY_COHERENCE": "local"},
        },
    }
    cache = caches["local"]
    short, long = f"{SMALL} 60 s", f"{SMALL} 120 s"
    cache.cache_response(short, "summarize", None, RESPONSE, ttl=60)
    cache.cache_response(long, "summarize", None, RESPONSE, ttl=120)
    redis_server.stop()

    def source(text):
        hit = cache.get_cached_response(text, "summarize")
        return hit and hit["cache_source"]

    clock.now += 59.9
    assert (source(short), source(long)) == ("memory", "memory")
    clock.now += 0.1
    assert (source(short), source(long)) == (None, "memory")
    clock.now += 60.0
    assert source(long) is None
    assert cache.error_counts()["unreachable"] >= 1  # the misses went to Redis, which is down


def test_start_coherence_waits_for_the_first_proof_up_to_its_bound(proxied_cache):
    """start_coherence(wait=s) returns once the listener's first liveness proof came back, or after
    s seconds without one; never sooner, never later."""
    fresh, _ = proxied_cache("fresh")  # a new identity (the proxy's address): no listener yet
    assert fresh.start_coherence(wait=5) == "live"
    # A Redis that accepts and never answers; every command of it times out after 0.1 s.
    hung, _ = proxied_cache("hung", accept_only=True, SOCKET_TIMEOUT=0.1, SOCKET_CONNECT_TIMEOUT=0.1)
    started = time.monotonic()
    hung.start_coherence()  # no wait by default: the listener starts, the call returns
    assert time.monotonic() - started < 0.5
    # Its first command times out; from then on it reconnects and times out again, "disconnected"
    # throughout (a Redis that never answers proves nothing).
    wait_for(lambda: hung.coherence.status == "disconnected", what="the listener's first timeout")

    def start(_):
        started = time.monotonic()
        return hung.start_coherence(wait=0.4), time.monotonic() - started

    # In a thread: a wait without a bound fails here after 5 s, not at pytest's timeout.
    ((status, elapsed),) = run_threads(start, 1, timeout=5)
    assert status == "disconnected" and 0.4 <= elapsed < 1.5, (status, elapsed)


def test_the_first_lookup_starts_the_coherence_listener(cache_with):
    """Nobody calls start_coherence(): the first call that may use the memory tier starts the
    listener, and once it is live the tier serves (README, "Many processes, one truth")."""
    cache = cache_with(alias="first_use", MEMORY_COHERENCE="tracking")
    listener = cache._state.listener
    assert not listener.connected_once and cache.coherence.status != "live"
    assert cache.get_cached_response(SMALL, "summarize") is None
    assert listener.wait_live(5), "the first lookup did not start the listener"
    key = cache.key_generator.generate(SMALL, "summarize")
    # our own write's invalidation message comes back too: once it is in, nothing drops the fill
    write_and_settle(cache, key, lambda: cache.cache_response(SMALL, "summarize", None, {"v": 1}))
    assert cache.get_cached_response(SMALL, "summarize")["cache_source"] == "redis"  # fills the tier
    assert cache.get_cached_response(SMALL, "summarize")["cache_source"] == "memory"


@pytest.mark.parametrize("wait", ["5", -1, -0.5, True, None, float("nan"), float("inf"), 86_401])
def test_start_coherence_refuses_a_bad_wait_and_starts_nothing(proxied_cache, wait):
    cache, _ = proxied_cache("refused")  # a new identity: no listener has started for it yet
    with pytest.raises(ValueError, match="wait must be a number of seconds from 0 to 86400"):
        cache.start_coherence(wait=wait)
    assert cache._state.listener._thread is None  # the listener was not started either
    assert cache.start_coherence(wait=86_400) == "live"  # the bound itself is a good wait (live: returns)


def test_ping_answers_false_when_misconfigured(settings):
    settings.AICACHE = {"HASH_ALGORITHM": "crc32"}
    assert caches["ai"].config is None and caches["ai"].ping() is False


def test_a_failed_ping_is_counted_under_its_own_action(proxied_cache):
    """Each fault is counted as ``error:<kind>:<action>`` (README, "Monitoring"), a ping's under
    ``ping``."""
    cache, proxy = proxied_cache("pinged", SOCKET_TIMEOUT=0.1, SOCKET_CONNECT_TIMEOUT=0.1)
    assert cache.ping() is True  # Redis known (its version checked), then it stops answering
    proxy.blackhole()
    assert cache.ping() is False
    cache.monitor.summary()  # folds what was recorded
    errors = {name: n for name, n in cache.monitor.counters.items() if name.startswith("error:")}
    assert errors == {"error:unreachable:ping": 1}


def test_reads_and_stores_go_through_the_lean_client_on_a_plain_redis(real_cache, monkeypatch):
    """GET and the store script are sent by aicache.lean (without redis-py's per-command layers:
    docs/performance.md); redis-py's own GET and Script.__call__ are not used for them."""
    from aicache import lean

    sent, read = [], []
    run_script, get = lean.LeanClient.run_script, lean.LeanClient.get

    def counted_script(self, script, keys, args):
        sent.append(keys[0])
        return run_script(self, script, keys, args)

    def counted_get(self, key):
        read.append(key)
        return get(self, key)

    monkeypatch.setattr(lean.LeanClient, "run_script", counted_script)
    monkeypatch.setattr(lean.LeanClient, "get", counted_get)
    real_cache.cache_response(SMALL, "summarize", None, RESPONSE)
    real_cache.invalidate_memory_cache()
    assert real_cache.get_cached_response(SMALL, "summarize")["summary"] == RESPONSE["summary"]
    key = real_cache.key_generator.generate(SMALL, "summarize")
    assert (sent, read) == ([key], [key])
