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
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from fnmatch import fnmatchcase
from time import perf_counter
from typing import Any, NamedTuple, TypeVar

import orjson
from asgiref.sync import async_to_sync, sync_to_async
from django.core.exceptions import ImproperlyConfigured
from django_redis.cache import RedisCache
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aicache import conf, invalidation, state
from aicache.codec import Codec, CodecError, Encoded
from aicache.coherence import CLEAR_MESSAGE, events_channel
from aicache.instrument import build_monitor, timed_invalidation, timed_lookup, timed_store
from aicache.invalidation import Progress, glob_escape
from aicache.keys import CacheKeyGenerator, canonical_options, validate_operation
from aicache.memory import MISSING, MemoryTier
from aicache.monitoring.summaries import EMPTY_SUMMARY
from aicache.singleflight import single_flight
from aicache.state import ProcessState

logger = logging.getLogger("aicache")

T = TypeVar("T")

#: Keys the cache adds to every response it returns; stripped from responses before storing.
META_KEYS = frozenset({"cache_hit", "cached_at", "tier", "text_length", "compression_used", "cache_source"})
_MAX_PATTERN_LENGTH = 256
_NO_OPTIONS = canonical_options(None)
_MISSING_PLAIN = object()  # a sentinel: a cached None is a hit
CACHE_CONTROLS = ("default", "no-store", "refresh", "only-if-cached")
# Faults that mean "Redis is not answering": these trip the breaker. Other RedisErrors
# (WRONGTYPE, OOM, READONLY) are failures of one call, counted but not a reason to stop calling.
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_LOG_EVERY_SECONDS = 60.0


@dataclass(slots=True)
class CacheRequest:
    key: str
    operation: str
    tier: str
    text_length: int
    use_memory: bool
    ttl: int
    keygen_seconds: float | None = None  # reported once, by the first step that records


@dataclass(frozen=True, slots=True)
class Stored:
    entry: MemoryEntry
    encoded: Encoded
    written: bool


class MemoryEntry(NamedTuple):
    payload: bytes | memoryview  # serialized JSON; decoded per hit: callers never share a dict
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
        self._known_operations: set[str] = set()
        self._tier_bounds = tuple(bound for _, bound in cfg.text_size_tiers)  # for bisect
        self._tier_names = (*(name for name, _ in cfg.text_size_tiers), conf.XLARGE)
        memory_on = cfg.memory_cache_size > 0 and cfg.memory_cache_max_bytes > 0
        self._memory_tiers = cfg.memory_tiers if memory_on else frozenset()
        self._state_generation = -1
        self._state_cache: ProcessState | None = None

    @property
    def _state(self) -> ProcessState:
        """This process's shared state for this cache (re-fetched after a fork or a reset)."""
        if self._state_generation != state._generation:
            cfg = self.config
            self._state_cache = state.get_process_state(
                self._identity,
                cfg.memory_cache_size,
                cfg.memory_cache_max_bytes,
                cfg.circuit_breaker_failures,
                cfg.circuit_breaker_reset_seconds,
                cfg.memory_coherence,
                lambda memory: build_monitor(cfg, self._identity[1], memory),
            )
            self._state_generation = state.generation()
        return self._state_cache

    @property
    def memory(self) -> MemoryTier:
        return self._state.memory

    @property
    def monitor(self) -> Any:
        """This process's monitor for this cache (a ``CachePerformanceMonitor`` by default)."""
        self._check_config()
        return self._state.monitor

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
            state.count_error("circuit_open", what)
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
        self._state.count_error(kind, what)
        if self._state.should_log(kind, _LOG_EVERY_SECONDS):
            consequence = "serving without Redis" if kind == "unreachable" else "treated as a miss"
            logger.warning("aicache %s failed (%s): %s; %s", what, kind, exc, consequence)

    def _request(
        self, text: Any, operation: Any, options: Any, question: Any, ttl: Any = None
    ) -> CacheRequest:
        cfg = self.config
        if cfg is None:
            self._check_config()
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        n = len(text)
        if not n or text.isspace():
            raise ValueError("text must be a non-empty string")
        if n > cfg.max_text_length:
            raise ValueError(f"text is {n} characters long; MAX_TEXT_LENGTH is {cfg.max_text_length}")
        if operation not in self._known_operations:  # validated once, then a set lookup
            validate_operation(operation)
            if len(self._known_operations) < 1024:
                self._known_operations.add(operation)
        opts = _NO_OPTIONS if options is None else canonical_options(options)
        if question is not None:
            if not isinstance(question, str):
                raise TypeError(f"question must be a str or None, got {type(question).__name__}")
            if len(question) > cfg.max_text_length:
                raise ValueError(f"question is longer than MAX_TEXT_LENGTH ({cfg.max_text_length})")
        if ttl is None:
            ttl = cfg.operation_ttls.get(operation, cfg.default_ttl)
        elif not isinstance(ttl, int) or isinstance(ttl, bool) or ttl <= 0:
            raise ValueError(f"ttl must be a positive integer (seconds), got {ttl!r}")
        tier = self._tier_names[bisect_left(self._tier_bounds, n)]  # a length equal to a bound: that tier
        started = perf_counter()
        key = self.key_generator.generate(text, operation, question=question, options_bytes=opts)
        keygen = perf_counter() - started
        return CacheRequest(key, operation, tier, n, tier in self._memory_tiers, ttl, keygen)

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

    def _memory_usable(self, req: CacheRequest, coherence: Any) -> bool:
        if not req.use_memory:
            return False
        if coherence.status == "starting":
            coherence.ensure_started(self.redis.connection_pool)
        return coherence.memory_usable

    @timed_lookup
    def _lookup(self, req: CacheRequest) -> dict[str, Any] | None:
        shared = self._state_cache if self._state_generation == state._generation else self._state
        coherence = shared.coherence
        use_memory = req.use_memory and (coherence.memory_usable or self._memory_usable(req, coherence))
        if use_memory:
            entry = shared.memory.get(req.key)
            if entry is not MISSING:
                return self._respond(orjson.loads(entry.payload), req, entry, "memory")
            token = coherence.fill_token(req.key)
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
        if use_memory:
            self._fill(req, entry, token, decoded.cached_at + decoded.ttl - time.time())
        return self._respond(value, req, entry, "redis")

    def _fill(self, req: CacheRequest, entry: MemoryEntry, token: tuple[int, int], ttl: float) -> None:
        """Copy an entry into the memory tier unless it was invalidated since ``token`` was read
        (the read/invalidate race: filling then would keep a stale value until its TTL)."""
        if self._state.coherence.fill_token(req.key) == token:
            self.memory.set(req.key, entry, len(entry.payload), min(ttl, req.ttl))

    @timed_store
    def _store(self, req: CacheRequest, payload: bytes) -> Stored:
        encoded = self.codec.encode(payload, req.ttl)
        coherence = self._state.coherence
        use_memory = self._memory_usable(req, coherence)
        if use_memory:
            token = coherence.fill_token(req.key)
            expecting = coherence.expect_own_write(req.key)
        written = self._guarded("set", False, self._write, req, encoded.data)
        if use_memory and expecting and not written:
            coherence.cancel_own_write(req.key)
        entry = MemoryEntry(payload, time.time(), encoded.compression_used)
        if use_memory:
            # Filled even when Redis is down: the tier keeps serving, and the coherence
            # listener clears it when Redis comes back.
            self._fill(req, entry, token, req.ttl)
        return Stored(entry, encoded, written)

    def _write(self, req: CacheRequest, data: bytes) -> bool:
        pipe = self.redis.pipeline(transaction=False)
        pipe.set(req.key, data, ex=req.ttl)
        invalidation.index_write(pipe, self.config.key_prefix, req.operation, req.key, req.ttl)
        pipe.execute()
        return True

    def _compute(self, req: CacheRequest, compute: Callable[[], Any], store: bool = True) -> dict[str, Any]:
        """Call ``compute``, check its result, store it (unless told not to) and return it."""
        result = compute()
        if inspect.isawaitable(result):
            if inspect.iscoroutine(result):
                result.close()
            raise TypeError("compute returned an awaitable; use aget_or_compute for async callables")
        clean, payload = self._serialize_response(result)
        if store:
            entry = self._store(req, payload)
            cached_at, compressed = entry.cached_at, entry.compression_used
        else:
            cached_at, compressed = None, False
        clean.update(
            cache_hit=False,
            cached_at=cached_at,
            tier=req.tier,
            text_length=req.text_length,
            compression_used=compressed,
            cache_source="compute",
        )
        return clean

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
        *,
        cache: str = "default",
        lock_timeout: float | None = None,
        wait_timeout: float | None = None,
    ) -> dict[str, Any] | None:
        """The cached response, or ``compute()``'s result, cached and returned.

        Concurrent misses for the same request, in any process, make one ``compute()`` call
        (single flight); the others wait up to ``wait_timeout`` seconds for its result. The lock
        lease is ``lock_timeout`` seconds: if its holder dies, a waiter computes after it.
        An exception from ``compute`` propagates and nothing is cached.

        ``cache`` controls this call like HTTP cache directives: ``"default"``; ``"no-store"``
        (bypass: compute, neither read nor write); ``"refresh"`` (compute and overwrite);
        ``"only-if-cached"`` (never compute: the cached response or None).
        """
        if not callable(compute):
            raise TypeError(f"compute must be callable, got {type(compute).__name__}")
        if inspect.iscoroutinefunction(compute):
            raise TypeError("compute is an async function; use aget_or_compute for async callables")
        if cache not in CACHE_CONTROLS:
            raise ValueError(f"cache must be one of {list(CACHE_CONTROLS)}, got {cache!r}")
        cfg = self._check_config()
        lock_timeout = _seconds("lock_timeout", lock_timeout, cfg.single_flight_lock_timeout)
        wait_timeout = _seconds("wait_timeout", wait_timeout, cfg.single_flight_wait_timeout)
        req = self._request(text, operation, options, question, ttl)
        if cache == "no-store":
            return self._compute(req, compute, store=False)
        if cache == "refresh":
            return self._compute(req, compute)
        hit = self._lookup(req)
        if hit is not None or cache == "only-if-cached":
            return hit
        return single_flight(self, req, compute, lock_timeout, wait_timeout)

    @timed_invalidation("pattern", lambda pattern, operation_context="": (pattern, operation_context))
    def invalidate_pattern(self, pattern: str, operation_context: str = "") -> int:
        """Remove the entries of every operation whose name matches ``pattern``, a Redis-style glob
        over the operation segment of the key (``*``, ``?``, ``[...]``): ``"summarize"``,
        ``"summ*"``, ``"qa_v[12]"``, ``"*"``. A trailing ``:`` is ignored (the seed's
        ``"summarize:"``). A pattern never matches inside a digest: keys are
        ``{prefix}:{operation}:{hex digest}`` and neither part holds a ``:``."""
        cfg = self._check_config()
        op_glob = _operation_glob(pattern)
        _check_context(operation_context)
        self.memory.delete_where(_memory_matcher(cfg.key_prefix, op_glob))
        return self._scan_unlink(f"{glob_escape(cfg.key_prefix)}:{op_glob}:*", cfg.key_prefix)

    def count_pattern(self, pattern: str) -> int:
        """How many entries :meth:`invalidate_pattern` would remove now (SCAN, no deletion)."""
        cfg = self._check_config()
        op_glob = _operation_glob(pattern)
        progress = Progress()
        self._guarded(
            "count",
            None,
            invalidation.scan_count,
            self.redis,
            f"{glob_escape(cfg.key_prefix)}:{op_glob}:*",
            progress,
        )
        return progress.removed

    def count_by_operation(self, operation: str) -> int:
        """Live entries of one operation, from its index (no scan of the keyspace)."""
        cfg = self._check_config()
        validate_operation(operation)
        return int(
            self._guarded("count", 0, invalidation.live_entries, self.redis, cfg.key_prefix, [operation])
        )

    def count_all(self) -> int:
        """Live entries of every operation, from the indexes (no scan of the keyspace)."""
        cfg = self._check_config()
        return int(self._guarded("count", 0, invalidation.live_entries, self.redis, cfg.key_prefix))

    @timed_invalidation("operation", lambda operation, operation_context="": (operation, operation_context))
    def invalidate_by_operation(self, operation: str, operation_context: str = "") -> int:
        """Remove every entry of one operation, in time proportional to that operation's entries
        (a per-operation index, see ``aicache.invalidation``)."""
        cfg = self._check_config()
        validate_operation(operation)
        _check_context(operation_context)
        self.memory.delete_prefix(self.key_generator.operation_prefix(operation))
        max_ttl = max([cfg.default_ttl, *cfg.operation_ttls.values()])
        progress = Progress()
        self._guarded(
            "invalidate",
            None,
            invalidation.drain_index,
            self.redis,
            cfg.key_prefix,
            operation,
            max_ttl,
            progress,
        )
        return progress.removed

    @timed_invalidation("all", lambda operation_context="": ("*", operation_context))
    def invalidate_all(self, operation_context: str = "") -> int:
        """Remove every aicache entry (only keys under KEY_PREFIX; other data is untouched)."""
        cfg = self._check_config()
        _check_context(operation_context)
        self.memory.clear()
        removed = self._scan_unlink(f"{glob_escape(cfg.key_prefix)}:*")
        self._guarded("invalidate", None, invalidation.drop_indexes, self.redis, cfg.key_prefix)
        return removed

    @timed_invalidation(
        "memory", lambda operation_context="", everywhere=False: ("memory", operation_context)
    )
    def invalidate_memory_cache(self, operation_context: str = "", everywhere: bool = False) -> int:
        """Clear this process's memory tier (returns the entries dropped here); with
        ``everywhere=True`` every process listening to this Redis clears its tier too."""
        cfg = self._check_config()
        _check_context(operation_context)
        if not isinstance(everywhere, bool):
            raise TypeError(f"everywhere must be a bool, got {type(everywhere).__name__}")
        dropped = self.memory.clear()
        if everywhere:
            self._guarded("publish", None, self.redis.publish, events_channel(cfg.key_prefix), CLEAR_MESSAGE)
        return dropped

    def start_coherence(self, wait: float = 0.0) -> str:
        """Start this process's coherence listener now instead of on first use (e.g. from a
        gunicorn ``post_fork`` hook), waiting up to ``wait`` seconds for it; returns its status
        (``live``, ``starting``, ``disconnected``, ``unsupported`` or ``local``)."""
        self._check_config()
        coherence = self._state.coherence
        coherence.ensure_started(self.redis.connection_pool)
        if wait > 0:
            coherence.wait_live(wait)
        return coherence.status

    def _scan_unlink(self, match: str, prefix: str | None = None) -> int:
        """The exact number removed, even if Redis fails midway (what went before counts)."""
        progress = Progress()
        self._guarded("invalidate", None, invalidation.scan_unlink, self.redis, match, progress, prefix)
        return progress.removed

    # ----------------------------------------------------------------- plain API
    def get(self, key: Any, default: Any = None, version: Any = None, client: Any = None) -> Any:
        try:
            return super().get(key, default=default, version=version, client=client)
        except CodecError as exc:
            if self.config is not None:
                self._fault("corrupt_entry", "get", exc)
            return default

    def get_many(self, keys: Any, version: Any = None, client: Any = None) -> dict[Any, Any]:
        """As Django's, but one corrupt value is a miss for that key, not an error for all."""
        keys = list(keys)
        try:
            return super().get_many(keys, version=version, client=client)
        except CodecError:
            found = {}
            for key in keys:
                value = self.get(key, _MISSING_PLAIN, version=version, client=client)
                if value is not _MISSING_PLAIN:
                    found[key] = value
            return found

    def get_performance_summary(self) -> dict[str, Any]:
        """A short view of this process's figures for this cache (zeros with monitoring off)."""
        summary = getattr(self.monitor, "summary", None)
        return {**(summary() if summary is not None else EMPTY_SUMMARY), "errors": self.error_counts()}

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
        **controls: Any,
    ) -> dict[str, Any] | None:
        """Async twin of :meth:`get_or_compute`; ``compute`` may be sync or async."""
        if not callable(compute):
            raise TypeError(f"compute must be callable, got {type(compute).__name__}")

        def sync_compute() -> Any:
            result = compute()
            if inspect.isawaitable(result):
                return async_to_sync(_await)(result)
            return result

        return await sync_to_async(self.get_or_compute, thread_sensitive=False)(
            text, operation, sync_compute, options, question, ttl, **controls
        )


async def _await(awaitable: Any) -> Any:
    return await awaitable


def _seconds(name: str, value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")
    return float(value)


_OPERATION_GLOB_RE = re.compile(rf"[a-z0-9_\-*?\[\]^]{{1,{_MAX_PATTERN_LENGTH}}}")


def _operation_glob(pattern: Any) -> str:
    """``pattern`` checked as a glob over operation names ([a-z0-9_-] plus ``* ? [ ] ^``)."""
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a str, got {type(pattern).__name__}")
    glob = pattern[:-1] if pattern.endswith(":") else pattern
    if not _OPERATION_GLOB_RE.fullmatch(glob):
        raise ValueError(
            f"pattern must be a glob over operation names: 1-{_MAX_PATTERN_LENGTH} characters of "
            f"[a-z0-9_-] and * ? [ ] ^, got {pattern!r}; use invalidate_all() for everything"
        )
    return glob


def _memory_matcher(prefix: str, op_glob: str) -> Callable[[str], bool]:
    """The memory-tier side of a pattern: Redis's ``[^...]`` is fnmatch's ``[!...]``."""
    head = len(prefix) + 1
    translated = op_glob.replace("[^", "[!")

    def match(key: str) -> bool:
        operation = key[head:].partition(":")[0]
        return fnmatchcase(operation, translated)

    return match


def _check_context(operation_context: Any) -> None:
    if not isinstance(operation_context, str):
        raise TypeError(f"operation_context must be a str, got {type(operation_context).__name__}")
