"""``AIResponseCache``: a django-redis ``RedisCache`` that caches AI responses.

Read path (``get_cached_response`` / ``get_or_compute``)::

    validate inputs -> key = CacheKeyGenerator.generate(...) -> tier by text length
        -> memory tier (tiers in MEMORY_TIERS) --hit--> decode payload, add metadata
        -> Redis GET --hit--> Codec.decode (decompress, check frame) -> fill memory tier
        -> miss -> compute() -> Codec.encode -> Redis SET EX <operation TTL> (+ memory tier)

The backend composes the parts (keys, codec, memory tier, circuit breaker); it does not do their
work. Every Redis call goes through :meth:`_guarded`, the one fail-open boundary: a Redis fault
becomes a miss, a skipped write or a zero count, is counted, and trips the circuit breaker, so a
dead Redis costs one bounded timeout per breaker window, not one per request.

The plain Django cache API (``get``/``set``/...) works on the same backend through django-redis,
with a JSON serializer instead of pickle: nothing read from Redis is ever unpickled.
"""

from __future__ import annotations

import inspect
import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, TypeVar

import orjson
from asgiref.sync import async_to_sync, sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django_redis.cache import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aicache import conf, state
from aicache.codec import Codec, CodecError
from aicache.keys import CacheKeyGenerator, canonical_options, validate_operation
from aicache.memory import MISSING, MemoryTier
from aicache.state import ProcessState

logger = logging.getLogger("aicache")

T = TypeVar("T")

#: Keys the cache adds to every response it returns; stripped from responses before storing.
META_KEYS = frozenset({"cache_hit", "cached_at", "tier", "text_length", "compression_used", "cache_source"})
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")
_UNLINK_BATCH = 500
_SCAN_COUNT = 1000
_MAX_PATTERN_LENGTH = 256
# Faults that mean "Redis is not answering": these trip the breaker. Other RedisErrors
# (WRONGTYPE, OOM, READONLY) are failures of one call, counted but not a reason to stop calling.
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_LOG_EVERY_SECONDS = 60.0


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis MATCH pattern."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


@dataclass(frozen=True, slots=True)
class CacheRequest:
    key: str
    operation: str
    tier: str
    text_length: int
    use_memory: bool
    ttl: int


@dataclass(frozen=True, slots=True)
class MemoryEntry:
    payload: bytes  # serialized JSON; decoded per hit so callers never share a mutable dict
    cached_at: float
    compression_used: bool


def _async_twin(name: str) -> Callable[..., Any]:
    """``a<name>``: the sync method run in a worker thread (as Django's BaseCache does)."""

    async def twin(self: AIResponseCache, *args: Any, **kwargs: Any) -> Any:
        return await sync_to_async(getattr(self, name), thread_sensitive=False)(*args, **kwargs)

    twin.__name__ = twin.__qualname__ = f"a{name}"
    twin.__doc__ = f"Async twin of :meth:`{name}`."
    return twin


class AIResponseCache(RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        params = dict(params)
        options = dict(params.get("OPTIONS") or {})
        raw = conf.merged(options)
        self.config_problems = conf.validate(raw)
        valid = not self.config_problems
        # Safer defaults than django-redis's for the plain API on this backend.
        options.setdefault("SERIALIZER", "aicache.codec.SafeSerializer")
        options.setdefault("IGNORE_EXCEPTIONS", True)
        if valid:
            options.setdefault("SOCKET_TIMEOUT", raw["SOCKET_TIMEOUT"])
            options.setdefault("SOCKET_CONNECT_TIMEOUT", raw["SOCKET_CONNECT_TIMEOUT"])
        params["OPTIONS"] = options
        super().__init__(server, params)
        self._raw_client: Any = None
        if not valid:
            # Never raise here: Django instantiates every cache during `manage.py check`, which
            # must be able to report the aicache.E0xx errors. Use of the AI API raises instead.
            self.config = None
            return
        self.config = conf.parse(raw)
        cfg = self.config
        self.key_generator = CacheKeyGenerator(cfg.key_prefix, cfg.hash_algorithm)
        self.codec = Codec(cfg.compression_algorithm, cfg.compression_level, cfg.compression_threshold)
        self._identity = (str(server), cfg.key_prefix)
        self._state_generation = -1
        self._state_cache: ProcessState | None = None

    @property
    def _state(self) -> ProcessState:
        """This process's shared state for this cache (re-fetched after a fork or a reset)."""
        if self._state_generation != state.generation():
            cfg = self.config
            self._state_cache = state.get_process_state(
                self._identity,
                cfg.memory_cache_size,
                cfg.memory_cache_max_bytes,
                cfg.circuit_breaker_failures,
                cfg.circuit_breaker_reset_seconds,
            )
            self._state_generation = state.generation()
        return self._state_cache

    @property
    def memory(self) -> MemoryTier:
        return self._state.memory

    # ----------------------------------------------------------------- plumbing
    def _check_config(self) -> conf.CacheConfig:
        if self.config is None:
            raise ImproperlyConfigured(
                "aicache is misconfigured (run `manage.py check`): "
                + "; ".join(p.message for p in self.config_problems)
            )
        return self.config

    @property
    def redis(self) -> Any:
        """The raw redis-py client (from django-redis's pool) used for aicache entries."""
        if self._raw_client is None:
            self._raw_client = self.client.get_client(write=True)
        return self._raw_client

    def _guarded(self, what: str, default: T, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        """Run one Redis call fail-open: the result, or ``default`` after a counted fault."""
        state = self._state
        breaker = state.breaker
        if not breaker.allow():
            state.count_error("circuit_open")
            return default
        try:
            result = fn(*args, **kwargs)
        except _UNREACHABLE as exc:
            breaker.failure()
            self._fault("unreachable", what, exc)
            return default
        except RedisError as exc:
            self._fault("redis_error", what, exc)
            return default
        breaker.success()
        return result

    def _fault(self, kind: str, what: str, exc: BaseException) -> None:
        self._state.count_error(kind)
        if self._state.should_log(kind, _LOG_EVERY_SECONDS):
            logger.warning("aicache %s failed (%s): %s; serving without Redis", what, kind, exc)

    def _request(
        self, text: Any, operation: Any, options: Any, question: Any, ttl: Any = None
    ) -> CacheRequest:
        cfg = self._check_config()
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        n = len(text)
        if not n or text.isspace():
            raise ValueError("text must be a non-empty string")
        if n > cfg.max_text_length:
            raise ValueError(f"text is {n} characters long; MAX_TEXT_LENGTH is {cfg.max_text_length}")
        validate_operation(operation)
        opts = canonical_options(options)
        if question is not None:
            if not isinstance(question, str):
                raise TypeError(f"question must be a str or None, got {type(question).__name__}")
            if len(question) > cfg.max_text_length:
                raise ValueError(f"question is longer than MAX_TEXT_LENGTH ({cfg.max_text_length})")
        if ttl is None:
            ttl = cfg.ttl_for(operation)
        elif not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
            raise ValueError(f"ttl must be a positive integer (seconds), got {ttl!r}")
        tier = cfg.tier_for(n)
        key = self.key_generator.generate(text, operation, question=question, options_bytes=opts)
        return CacheRequest(key, operation, tier, n, tier in cfg.memory_tiers and self.memory.enabled, ttl)

    def _serialize_response(self, response: Any) -> tuple[dict[str, Any], bytes]:
        if not isinstance(response, Mapping):
            raise TypeError(f"response must be a dict, got {type(response).__name__}")
        clean = {k: v for k, v in response.items() if k not in META_KEYS}
        try:
            payload = self.codec.serialize(clean)
        except TypeError as exc:
            raise TypeError(f"response must be JSON-serialisable with str keys: {exc}") from exc
        limit = self.config.max_response_bytes
        if len(payload) > limit:
            raise ValueError(f"response is {len(payload)} bytes serialized; MAX_RESPONSE_BYTES is {limit}")
        return clean, payload

    @staticmethod
    def _respond(value: dict[str, Any], req: CacheRequest, entry: MemoryEntry, source: str) -> dict[str, Any]:
        value["cache_hit"] = True
        value["cached_at"] = entry.cached_at
        value["tier"] = req.tier
        value["text_length"] = req.text_length
        value["compression_used"] = entry.compression_used
        value["cache_source"] = source
        return value

    def _lookup(self, req: CacheRequest) -> dict[str, Any] | None:
        if req.use_memory:
            entry = self.memory.get(req.key)
            if entry is not MISSING:
                return self._respond(orjson.loads(entry.payload), req, entry, "memory")
        data = self._guarded("get", None, self.redis.get, req.key)
        if data is None:
            return None
        try:
            decoded = self.codec.decode(data)
            value = self.codec.deserialize(decoded.payload)
            if not isinstance(value, dict):
                raise CodecError(f"entry holds a {type(value).__name__}, not a response dict")
        except CodecError as exc:
            self._fault("corrupt_entry", "decode", exc)
            return None
        entry = MemoryEntry(decoded.payload, decoded.cached_at, decoded.compression_used)
        if req.use_memory:
            remaining = decoded.cached_at + decoded.ttl - time.time()
            self.memory.set(req.key, entry, len(decoded.payload), min(remaining, req.ttl))
        return self._respond(value, req, entry, "redis")

    def _store(self, req: CacheRequest, payload: bytes) -> MemoryEntry:
        encoded = self.codec.encode(payload, req.ttl)
        self._guarded("set", None, self.redis.set, req.key, encoded.data, ex=req.ttl)
        entry = MemoryEntry(payload, time.time(), encoded.compression_used)
        if req.use_memory:
            # Filled even when Redis is down: the tier keeps serving, and a process that could
            # not see invalidations meanwhile clears its tier when Redis comes back.
            self.memory.set(req.key, entry, len(payload), req.ttl)
        return entry

    # ----------------------------------------------------------------- public API
    def get_cached_response(
        self,
        text: str,
        operation: str,
        options: Mapping[str, Any] | None = None,
        question: str | None = None,
    ) -> dict[str, Any] | None:
        """The cached response with metadata (``cache_hit`` True, ``cached_at``, ``tier``,
        ``text_length``, ``compression_used``, ``cache_source``), or None on a miss."""
        return self._lookup(self._request(text, operation, options, question))

    def cache_response(
        self,
        text: str,
        operation: str,
        options: Mapping[str, Any] | None,
        response: Mapping[str, Any],
        question: str | None = None,
        ttl: int | None = None,
    ) -> None:
        """Store ``response`` (a JSON-serialisable dict) for the operation's TTL (or ``ttl``)."""
        req = self._request(text, operation, options, question, ttl)
        _, payload = self._serialize_response(response)
        self._store(req, payload)

    def get_or_compute(
        self,
        text: str,
        operation: str,
        compute: Callable[[], Mapping[str, Any]],
        options: Mapping[str, Any] | None = None,
        question: str | None = None,
        ttl: int | None = None,
    ) -> dict[str, Any]:
        """The cached response, or ``compute()``'s result, cached and returned.

        An exception from ``compute`` propagates and nothing is cached.
        """
        if not callable(compute):
            raise TypeError(f"compute must be callable, got {type(compute).__name__}")
        if inspect.iscoroutinefunction(compute):
            raise TypeError("compute is an async function; use aget_or_compute for async callables")
        req = self._request(text, operation, options, question, ttl)
        hit = self._lookup(req)
        if hit is not None:
            return hit
        result = compute()
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise TypeError("compute returned an awaitable; use aget_or_compute for async callables")
        clean, payload = self._serialize_response(result)
        entry = self._store(req, payload)
        clean.update(
            cache_hit=False,
            cached_at=entry.cached_at,
            tier=req.tier,
            text_length=req.text_length,
            compression_used=entry.compression_used,
            cache_source="compute",
        )
        return clean

    def invalidate_pattern(self, pattern: str, operation_context: str = "") -> int:
        """Remove entries whose key (after the prefix) contains ``pattern`` literally.

        Glob characters in ``pattern`` match themselves, so user input cannot widen the match.
        """
        cfg = self._check_config()
        if not isinstance(pattern, str):
            raise TypeError(f"pattern must be a str, got {type(pattern).__name__}")
        if not pattern or len(pattern) > _MAX_PATTERN_LENGTH:
            raise ValueError(
                f"pattern must be 1-{_MAX_PATTERN_LENGTH} characters; use invalidate_all() for all"
            )
        _check_context(operation_context)
        head = len(cfg.key_prefix) + 1
        self.memory.delete_many([k for k in self.memory_keys() if pattern in k[head:]])
        return self._scan_unlink(f"{glob_escape(cfg.key_prefix)}:*{glob_escape(pattern)}*")

    def invalidate_by_operation(self, operation: str, operation_context: str = "") -> int:
        """Remove every entry of one operation (an exact key-prefix match)."""
        self._check_config()
        validate_operation(operation)
        _check_context(operation_context)
        prefix = self.key_generator.operation_prefix(operation)
        self.memory.delete_prefix(prefix)
        return self._scan_unlink(glob_escape(prefix) + "*")

    def invalidate_all(self, operation_context: str = "") -> int:
        """Remove every aicache entry (only keys under KEY_PREFIX; other data is untouched)."""
        cfg = self._check_config()
        _check_context(operation_context)
        self.memory.clear()
        return self._scan_unlink(f"{glob_escape(cfg.key_prefix)}:*")

    def invalidate_memory_cache(self, operation_context: str = "") -> int:
        """Clear this process's memory tier; returns the number of entries dropped."""
        self._check_config()
        _check_context(operation_context)
        return self.memory.clear()

    def memory_keys(self) -> list[str]:
        return self.memory.keys()

    def _scan_unlink(self, match: str) -> int:
        """SCAN + UNLINK in batches (never KEYS); the exact number removed, even if Redis
        fails midway (what was removed before the fault is counted)."""
        removed = [0]

        def run() -> None:
            client = self.redis
            batch: list[bytes] = []
            for key in client.scan_iter(match=match, count=_SCAN_COUNT):
                batch.append(key)
                if len(batch) >= _UNLINK_BATCH:
                    removed[0] += client.unlink(*batch)
                    batch.clear()
            if batch:
                removed[0] += client.unlink(*batch)

        self._guarded("invalidate", None, run)
        return removed[0]

    # ----------------------------------------------------------------- plain API
    def get(self, key: Any, default: Any = None, version: Any = None, client: Any = None) -> Any:
        try:
            return super().get(key, default=default, version=version, client=client)
        except CodecError as exc:
            if self.config is not None:
                self._fault("corrupt_entry", "get", exc)
            return default

    def ping(self) -> bool:
        """True if Redis answers (fail-open: False, never an exception)."""
        return self.config is not None and bool(self._guarded("ping", False, self.redis.ping))

    def error_counts(self) -> dict[str, int]:
        """Faults counted in this process: unreachable, redis_error, corrupt_entry, circuit_open."""
        return self._state.error_snapshot()

    aget_cached_response = _async_twin("get_cached_response")
    acache_response = _async_twin("cache_response")
    ainvalidate_pattern = _async_twin("invalidate_pattern")
    ainvalidate_by_operation = _async_twin("invalidate_by_operation")
    ainvalidate_all = _async_twin("invalidate_all")
    ainvalidate_memory_cache = _async_twin("invalidate_memory_cache")

    async def aget_or_compute(
        self,
        text: str,
        operation: str,
        compute: Callable[[], Any],
        options: Mapping[str, Any] | None = None,
        question: str | None = None,
        ttl: int | None = None,
    ) -> dict[str, Any]:
        """Async twin of :meth:`get_or_compute`; ``compute`` may be sync or async."""
        if not callable(compute):
            raise TypeError(f"compute must be callable, got {type(compute).__name__}")

        def sync_compute() -> Any:
            result = compute()
            if inspect.isawaitable(result):
                return async_to_sync(_await)(result)
            return result

        return await sync_to_async(self.get_or_compute, thread_sensitive=False)(
            text, operation, sync_compute, options, question, ttl
        )


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _check_context(operation_context: Any) -> None:
    if not isinstance(operation_context, str):
        raise TypeError(f"operation_context must be a str, got {type(operation_context).__name__}")
