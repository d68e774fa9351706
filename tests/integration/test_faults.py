"""Faults with the defaults a user gets: bounded waits, the breaker's threshold, the Redis version."""

import time

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from aicache import guard as backend_module
from aicache.checks import E_REDIS_VERSION, check_redis_version
from tests.helpers import pooled_connection, wait_for

pytestmark = pytest.mark.integration

TEXT = "Faults are where a cache earns its keep or loses a customer. " * 2


def test_default_socket_timeout_bounds_a_hung_call(proxied_cache):
    """README: SOCKET_TIMEOUT 0.5 s by default, and redis-py's retries are off, so one call on a
    Redis that stopped answering returns after one socket timeout (not 4x, not 30 s)."""
    cache, proxy = proxied_cache("plain")  # aicache's own defaults (no test overrides)
    cache.cache_response(TEXT, "summarize", None, {"v": 1})
    cache.invalidate_memory_cache()
    with pooled_connection(cache) as connection:  # what a call really gets (before the silence)
        assert connection._sock.gettimeout() == connection.socket_timeout == 0.5
        assert connection.retry.get_retries() == 0
    proxy.blackhole()
    started = time.monotonic()
    assert cache.get_cached_response(TEXT, "summarize") is None
    elapsed = time.monotonic() - started
    # It waited on the silent Redis, once; the upper bound is loose for a loaded machine.
    assert 0.4 < elapsed < 5, elapsed
    assert cache.error_counts()["unreachable"] == 1


def test_no_retry_unless_the_user_gives_a_retry_policy(cache_with):
    """redis-py retries once when ``retry_on_timeout`` (or ``retry_on_error``) is set and no
    ``retry`` is given; aicache's own policy (no retry: fail open after one socket timeout) still
    applies then, and only a ``retry`` the user passes replaces it."""
    from redis.backoff import NoBackoff
    from redis.retry import Retry

    # databases no other test uses: django-redis keeps one pool per URL for the whole process
    cache = cache_with(alias="retry_on_timeout", db=14, CONNECTION_POOL_KWARGS={"retry_on_timeout": True})
    with pooled_connection(cache) as connection:
        assert connection.retry.get_retries() == 0
    cache = cache_with(alias="own_retry", db=15, CONNECTION_POOL_KWARGS={"retry": Retry(NoBackoff(), 2)})
    with pooled_connection(cache) as connection:
        assert connection.retry.get_retries() == 2


def test_default_breaker_opens_after_three_failures_for_five_seconds(proxied_cache):
    cache, proxy = proxied_cache("plain")
    proxy.blackhole()
    breaker = cache._state.breaker
    assert (breaker.threshold, breaker.reset) == (3, 5.0)
    for i in range(2):
        cache.get_cached_response(f"{TEXT} {i}", "qa")
    assert breaker.state == "closed"
    cache.get_cached_response(f"{TEXT} 2", "qa")
    assert breaker.state == "open"
    opened_at = time.monotonic()
    started = time.monotonic()
    for i in range(50):  # refused at once while open
        assert cache.get_cached_response(f"{TEXT} {i}", "qa") is None
    assert time.monotonic() - started < 0.5
    assert cache.error_counts()["circuit_open"] == 50
    assert breaker._open_until - opened_at == pytest.approx(5.0, abs=0.2)


def test_redis_too_old_is_refused_on_first_use_and_by_the_check(real_cache, monkeypatch):
    """Issue 9.13: the server version is checked once, with a clear message."""
    monkeypatch.setattr(backend_module, "_server_info", lambda client: {"redis_version": "6.0.9"})
    backend_module._versions.clear()
    fresh = caches["ai"].__class__(real_cache._identity[0], {"OPTIONS": {}})
    with pytest.raises(ImproperlyConfigured, match=r"needs Redis 6\.2 or later; .* runs 6\.0\.9"):
        fresh.get_cached_response(TEXT, "summarize")
    import aicache.checks  # noqa: F401 - the check imports _server_info from the backend at call time

    messages = check_redis_version()
    assert [m.id for m in messages] == [E_REDIS_VERSION]
    assert "6.0.9" in messages[0].msg
    monkeypatch.undo()
    backend_module._versions.clear()
    assert check_redis_version() == []  # the real 7.x server passes


def test_a_too_old_redis_is_refused_on_every_call(real_cache, monkeypatch):
    monkeypatch.setattr(backend_module, "_server_info", lambda client: {"redis_version": "6.0.9"})
    backend_module._versions.clear()
    fresh = caches["ai"].__class__(real_cache._identity[0], {"OPTIONS": {}})
    for _ in range(3):
        with pytest.raises(ImproperlyConfigured, match=r"6\.0\.9"):
            fresh.get_cached_response(TEXT, "summarize")
    monkeypatch.undo()
    backend_module._versions.clear()


def test_an_oom_on_the_liveness_probe_is_a_lapse_not_unsupported(real_cache, redis_server):
    """Review finding: a brief OOM made the listener give up for good (status unsupported)."""
    client = redis_server.client()
    listener = real_cache._state.listener
    lapses = listener.lapses + listener.reconnects
    client.config_set("maxmemory-policy", "noeviction")
    client.config_set("maxmemory", "1")
    try:
        wait_for(lambda: real_cache.coherence.status == "disconnected", timeout=10, what="the probe to fail")
    finally:
        client.config_set("maxmemory", "0")
    assert listener.wait_live(10)
    assert real_cache.coherence.status == "live" and listener.lapses + listener.reconnects > lapses


def test_the_renewer_keeps_trying_through_faults_and_stops_when_the_lease_is_lost():
    from aicache import singleflight

    answers = iter([None, True, None, True, False, True])
    seen = []

    class Host:
        def guarded(self, what, default, fn, *args):
            seen.append(what)
            return next(answers)

    renewer = singleflight._Renewer(Host(), lock=None, lease=0.03)
    wait_for(lambda: len(seen) >= 5, timeout=5)
    renewer._thread.join(5)
    assert not renewer._thread.is_alive()  # it stopped at the lost lease (False)...
    assert len(seen) == 5 and renewer.renewals == 2  # ...not at the faults (None) before it


def test_redis_refusing_client_tracking_disables_the_memory_tier(settings, redis_server):
    """README: if Redis refuses client tracking (ACLs), the tier is disabled, not served stale."""
    admin = redis_server.client()
    admin.execute_command(
        "ACL", "SETUSER", "notrack", "on", ">secret", "~*", "&*", "+@all", "-client|tracking"
    )
    try:
        settings.CACHES = {
            **settings.CACHES,
            "acl": {
                "BACKEND": "aicache.backend.AIResponseCache",
                "LOCATION": f"redis://notrack:secret@127.0.0.1:{redis_server.port}/0",
            },
        }
        cache = caches["acl"]
        cache.start_coherence(wait=0)
        wait_for(lambda: cache.coherence.status == "unsupported", timeout=10, what="the refusal")
        cache.cache_response(TEXT, "qa", None, {"a": 1})
        for _ in range(2):
            assert cache.get_cached_response(TEXT, "qa")["cache_source"] == "redis"
        assert len(cache.memory) == 0
    finally:
        admin.execute_command("ACL", "DELUSER", "notrack")
