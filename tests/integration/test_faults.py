"""Faults with the defaults a user gets: bounded waits, the breaker's threshold, the Redis version."""

import time

import pytest
from django.core.cache import caches
from django.core.exceptions import ImproperlyConfigured

from aicache import guard as backend_module
from aicache.checks import E_REDIS_VERSION, check_redis_version
from tests.helpers import tcp_proxy

pytestmark = pytest.mark.integration

TEXT = "Faults are where a cache earns its keep or loses a customer. " * 2


@pytest.fixture
def default_cache(settings, redis_server):
    """caches["plain"] through a proxy with aicache's own defaults (no test overrides)."""
    with tcp_proxy("127.0.0.1", redis_server.port) as proxy:
        settings.CACHES = {
            **settings.CACHES,
            "plain": {"BACKEND": "aicache.backend.AIResponseCache", "LOCATION": f"{proxy.url}/0"},
        }
        cache = caches["plain"]
        cache.redis.flushdb()
        yield cache, proxy


def test_default_socket_timeout_bounds_a_hung_call(default_cache):
    """README: SOCKET_TIMEOUT 0.5 s by default, and redis-py's retries are off, so one call on a
    Redis that stopped answering returns after about half a second (not 4x, not 30 s)."""
    cache, proxy = default_cache
    cache.cache_response(TEXT, "summarize", None, {"v": 1})
    cache.invalidate_memory_cache()
    proxy.blackhole()
    started = time.monotonic()
    assert cache.get_cached_response(TEXT, "summarize") is None
    elapsed = time.monotonic() - started
    assert 0.4 < elapsed < 0.9, elapsed
    assert cache.error_counts()["unreachable"] == 1


def test_default_breaker_opens_after_three_failures_for_five_seconds(default_cache):
    cache, proxy = default_cache
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
