"""The one fail-open boundary between aicache and Redis (mixed into the backend).

Every Redis call goes through :meth:`GuardMixin.guarded`: a fault becomes the call's default (a
miss, a skipped write, a zero count), is counted and logged at most once a minute per kind, trips
the circuit breaker when Redis is unreachable, and ends Redis use for the rest of that cache call,
so one call never waits longer than one socket timeout (test_faults.py). Any other exception is a
bug and propagates (after freeing the breaker's half-open probe).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

from django.core.exceptions import ImproperlyConfigured
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisClusterException, RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

logger = logging.getLogger("aicache")

T = TypeVar("T")

# Faults that mean "Redis is not answering": these trip the breaker. Other RedisErrors
# (WRONGTYPE, OOM, READONLY) are failures of one call: Redis answered, so the breaker closes.
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_LOG_EVERY_SECONDS = 60.0
MIN_REDIS_VERSION = (6, 2)  # client tracking BCAST + Lua scripts; nothing needs 7.0
_versions: dict[tuple[str, ...], tuple[int, ...]] = {}


def _server_info(client: Any) -> dict[str, Any]:
    try:
        return client.info("server")
    except ResponseError:
        return {}


def parse_version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split(".")[:3] if part.isdigit())


def too_old_message(server: str, version: tuple[int, ...]) -> str:
    return (
        f"aicache needs Redis {'.'.join(map(str, MIN_REDIS_VERSION))} or later; "
        f"{server} runs {'.'.join(map(str, version))}"
    )


class GuardMixin:
    # Provided by AIResponseCache.
    _state: Any
    _identity: tuple[str, ...]

    def _check_version(self, client: Any) -> None:
        """Once per process and cache, when Redis first answers: refuse a Redis that is too old."""
        info = self.guarded("info", None, _server_info, client)
        if info is None:
            return  # unreachable now: checked on a later call
        if not info:  # the server has no INFO (a test double): nothing to compare
            _versions[self._identity] = ()
            return
        version = parse_version(str(info.get("redis_version", "0")))
        _versions[self._identity] = version
        if version < MIN_REDIS_VERSION:
            raise ImproperlyConfigured(too_old_message(self._identity[0], version))

    def guarded(self, what: str, default: T, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one Redis call fail-open: the result, or ``default`` after a counted fault."""
        st = self._state
        if st.call_unreachable():
            return default  # this call met an unreachable Redis already: don't wait twice
        breaker = st.breaker
        if not breaker.allow():
            st.count_error("circuit_open", what)
            return default
        try:
            result = fn(*args, **kwargs)
        except _UNREACHABLE as exc:
            breaker.failure()
            st.mark_unreachable()
            self._fault("unreachable", what, exc)
            return default
        except RedisError as exc:
            breaker.success()
            self._fault("redis_error", what, exc)
            return default
        except BaseException:
            breaker.release()
            raise
        breaker.success()
        return result

    _guarded = guarded

    def redis_usable(self) -> bool:
        """Whether this call may still use Redis (no fault met yet, breaker not open)."""
        st = self._state
        return not st.call_unreachable() and st.breaker.would_allow()

    def _fault(self, kind: str, what: str, exc: BaseException) -> None:
        self._state.count_error(kind, what)
        if self._state.should_log(kind, _LOG_EVERY_SECONDS):
            consequence = "serving without Redis" if kind == "unreachable" else "treated as a miss"
            logger.warning("aicache %s failed (%s): %s; %s", what, kind, exc, consequence)

    def count(self, kind: str) -> None:
        self._state.count(kind)


_CONNECT_FAULTS = (RedisClusterException, RedisConnectionError, OSError)


class Unreachable:
    """Stands in for a client that could not be built: every command fails as unreachable."""

    def __init__(self, cause: BaseException) -> None:
        self.cause = cause

    def __getattr__(self, name: str) -> Any:
        return self._fail

    def _fail(self, *args: Any, **kwargs: Any) -> Any:
        raise RedisConnectionError(f"Redis unreachable: {self.cause}")

    def lock(self, name: str, **kwargs: Any) -> _UnreachableLock:
        """A lease that cannot be taken: single flight computes alone, as with Redis down."""
        return _UnreachableLock(name, self._fail)


class _UnreachableLock:
    def __init__(self, name: str, fail: Callable[..., Any]) -> None:
        self.name = name
        self.acquire = self.reacquire = self.release = fail
