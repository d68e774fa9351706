"""``AIResponseCache``: a django-redis ``RedisCache`` that caches AI responses.

Read path of ``get_or_compute`` (README "Many processes, one truth" gives the reasons)::

    RequestBuilder.build: validate every argument, key = {prefix}:{operation}:{digest}, tier
    memory tier (tiers in MEMORY_TIERS, only while coherence is proven) --hit--> respond
    Flights.join(key): one leader per key in this process; followers share its outcome
      leader: Redis GET --hit--> fill the tier if unchanged since the read began --> respond
              miss --> Redis lease (renewed while computing) --> read the fence --> compute()
                   --> store fenced (SET + index in one script) --> fill only if acknowledged
    one lookup record per call: memory | redis | coalesced | miss

The backend composes the parts (``Namespace``, ``CoherentTier`` + ``Listener``, ``Flights`` +
single-flight lease, ``invalidation``); it does not do their work. Every Redis call goes through
:meth:`guarded`, the one fail-open boundary: a fault becomes a miss, a skipped write or a zero
count, is counted, trips the circuit breaker, and ends Redis use for the rest of that call, so a
dead or hung Redis costs one socket timeout per call at most (and redis-py's own retries are off).

The plain Django cache API (``get``/``set``/...) works on the same backend through django-redis,
with a JSON serializer instead of pickle: nothing read from Redis is ever unpickled.
"""

from __future__ import annotations

import hashlib
import inspect
import logging
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any, NamedTuple, TypeVar

import orjson
from django.core.exceptions import ImproperlyConfigured
from django.utils.module_loading import import_string
from django_redis.cache import RedisCache
from redis.backoff import NoBackoff
from redis.retry import Retry

from aicache import conf, dictionaries, invalidation, lean, singleflight, state
from aicache.aio import AsyncMixin
from aicache.cluster import ClusterClient
from aicache.codec import Codec, CodecError, Encoded, ForgedEntry, UnknownDictionary
from aicache.guard import (
    _CONNECT_FAULTS,
    MIN_REDIS_VERSION,
    GuardMixin,
    Unreachable,
    _versions,
    too_old_message,
)
from aicache.instrument import NullMonitor, build_monitor, timed_lookup, timed_store
from aicache.invalidation_api import InvalidationMixin
from aicache.keys import CacheKeyGenerator
from aicache.listener import WAKE_PREFIX
from aicache.memory import MISSING
from aicache.namespace import Namespace
from aicache.plain import PlainAPIMixin
from aicache.request import META_KEYS, CacheRequest, RequestBuilder, call_compute, computed_metadata, seconds
from aicache.savings import Cost, measure_cost
from aicache.state import ProcessState

logger = logging.getLogger("aicache")

T = TypeVar("T")

__all__ = ["META_KEYS", "AIResponseCache", "CacheRequest"]

CACHE_CONTROLS = ("default", "no-store", "refresh", "only-if-cached")


@dataclass(frozen=True, slots=True)
class Stored:
    entry: MemoryEntry
    encoded: Encoded
    written: bool


class MemoryEntry(NamedTuple):
    payload: bytes | memoryview  # serialized JSON; decoded per hit: callers never share a dict
    cached_at: float
    compression_used: bool
    cost: Cost | None = None  # what computing it cost (reported as saved on each hit)
    tags: tuple[str, ...] = ()


#: What a decode error counts as (any other CodecError: ``corrupt_entry``).
_DECODE_FAULTS = {ForgedEntry: "forged_entry", UnknownDictionary: "unknown_dictionary"}


class AIResponseCache(AsyncMixin, PlainAPIMixin, GuardMixin, InvalidationMixin, RedisCache):
    def __init__(self, server: str, params: dict[str, Any]) -> None:
        params = dict(params)
        options = dict(params.get("OPTIONS") or {})
        raw = conf.merged(options)
        self.config_problems = conf.validate(raw)
        valid = not self.config_problems
        # Safer defaults than django-redis's for the plain API on this backend.
        options.setdefault("SERIALIZER", "aicache.codec.SafeSerializer")
        options.setdefault("IGNORE_EXCEPTIONS", True)
        # redis-py retries a timed-out command 3 times with backoff by default: a hung Redis would
        # hold a request ~9 s instead of one socket timeout
        # (test_faults.py::test_default_socket_timeout_bounds_a_hung_call).
        pool_kwargs = dict(options.get("CONNECTION_POOL_KWARGS") or {})
        pool_kwargs.setdefault("retry", Retry(NoBackoff(), 0))
        options["CONNECTION_POOL_KWARGS"] = pool_kwargs
        if valid:
            options.setdefault("SOCKET_TIMEOUT", raw["SOCKET_TIMEOUT"])
            options.setdefault("SOCKET_CONNECT_TIMEOUT", raw["SOCKET_CONNECT_TIMEOUT"])
        params["OPTIONS"] = options
        super().__init__(server, params)
        self._raw_client: Any = None
        self._replica_client: Any = None
        self._getter: Callable[[str], bytes | None] | None = None
        self._lean: lean.LeanClient | None = None  # GET and the store script (aicache.lean)
        self._lean_decided = False
        if not valid:
            # Never raise here: Django instantiates every cache during `manage.py check`, which
            # must be able to report the aicache.E0xx errors. Use of the AI API raises instead.
            self.config = None
            return
        self.config = cfg = conf.parse(raw)
        clustered = issubclass(self._client_cls, ClusterClient)  # names share slots by hash tags
        self.ns = Namespace(cfg.key_prefix, clustered)
        self.key_generator = CacheKeyGenerator(cfg.key_prefix, cfg.hash_algorithm, clustered)
        # Caches on the same Redis and prefix share one process state only if configured alike:
        # another alias's memory size, breaker or history setting must never be used silently.
        fingerprint = hashlib.sha256(repr(cfg).encode()).hexdigest()[:16]
        self._identity = (str(server), cfg.key_prefix, fingerprint)
        self.dictionaries = dictionaries.DictionaryClient(
            self._identity,
            cfg.key_prefix,
            cfg.dictionary_refresh_seconds,
            self._fetch_dictionary,
            self._fault,
        )
        # Writers use a trained dictionary only with zstd (readers decode dictionary frames always).
        self._write_dictionaries = cfg.compression_dictionaries and cfg.compression_algorithm == "zstd"
        self.codec = Codec(
            cfg.compression_algorithm,
            cfg.compression_level,
            cfg.compression_threshold,
            cfg.signing_keys,
            self.dictionaries,
        )
        memory_on = cfg.memory_cache_size > 0 and cfg.memory_cache_max_bytes > 0
        self.requests = RequestBuilder(
            cfg, self.key_generator, cfg.memory_tiers if memory_on else frozenset()
        )
        self._max_ttl = max([cfg.default_ttl, *cfg.operation_ttls.values()])
        self._state_generation = -1
        self._state_cache: ProcessState | None = None
        self._store_script: Any = None
        self._usage_extractor = import_string(cfg.usage_extractor) if cfg.usage_extractor else None

    @property
    def _state(self) -> ProcessState:
        """This process's shared state for this cache (re-fetched after a fork or a reset)."""
        if self._state_generation != state._generation:
            cfg = self.config
            self._state_cache = state.get_process_state(
                self._identity, cfg, lambda memory: build_monitor(cfg, cfg.key_prefix, memory)
            )
            self._state_generation = state.generation()
            self._store_script = None
        return self._state_cache

    @property
    def memory(self) -> Any:
        return self._state.memory

    @property
    def coherence(self) -> Any:
        """This process's coherent memory tier (``.status``: live, starting, disconnected, ...)."""
        return self._state.coherence

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
            try:
                self._raw_client = self.client.get_client(write=True)
            except _CONNECT_FAULTS as exc:
                # redis-py's RedisCluster connects when built: with every startup node down, each
                # call meets a client that fails as unreachable (fail-open, counted) and the next
                # call builds it again.
                return Unreachable(exc)
        version = _versions.get(self._identity)
        if version is None:
            if self.config is not None:
                self._check_version(self._raw_client)
        elif version and version < MIN_REDIS_VERSION:
            raise ImproperlyConfigured(too_old_message(self._identity[0], version))
        return self._raw_client

    @property
    def replica_redis(self) -> Any:
        """django-redis's read client (a replica under Sentinel), for READ_FROM_REPLICAS."""
        if self._replica_client is None:
            try:
                self._replica_client = self.client.get_client(write=False)
            except _CONNECT_FAULTS as exc:
                return Unreachable(exc)
        return self._replica_client

    def _request(
        self, text: Any, operation: Any, options: Any, question: Any, ttl: Any = None, tags: Any = None
    ) -> CacheRequest:
        self._check_config()
        req = self.requests.build(text, operation, options, question, ttl, tags)
        st = self._state
        st.begin_call()
        if req.use_memory and st.listener is not None and not st.listener.connected_once:
            st.listener.ensure_started(self.redis)
        return req

    @staticmethod
    def _respond(value: dict[str, Any], req: CacheRequest, entry: MemoryEntry, source: str) -> dict[str, Any]:
        value["cache_hit"] = True
        value["cached_at"] = entry.cached_at
        value["tier"] = req.tier
        value["text_length"] = req.text_length
        value["compression_used"] = entry.compression_used
        value["cache_source"] = source
        return value

    # ----------------------------------------------------------------- read path
    def _memory_hit(self, req: CacheRequest) -> dict[str, Any] | None:
        if not req.use_memory:
            return None
        entry = self._state.coherence.get(req.key)
        if entry is MISSING:
            return None
        req.saved = entry.cost
        return self._respond(orjson.loads(entry.payload), req, entry, "memory")

    @timed_lookup
    def _lookup(self, req: CacheRequest) -> dict[str, Any] | None:
        hit = self._memory_hit(req)
        return hit if hit is not None else self.read_redis(req)

    def read_redis(self, req: CacheRequest) -> dict[str, Any] | None:
        """GET, decode, and fill the memory tier if nothing touched the key since the GET began."""
        tier = self._state.coherence
        if self.config.read_from_replicas:  # possibly stale: read, never fill the memory tier
            token = None
            data = self.guarded("get", None, self.replica_redis.get, req.key)
        else:
            token = tier.token(req.key) if req.use_memory else None
            getter = self._getter or self._lean_getter()
            data = self.guarded("get", None, getter, req.key)
        if data is None:
            return None
        try:
            decoded = self.codec.decode(data)
            value = self.codec.deserialize(decoded.payload)
            if not isinstance(value, dict):
                raise CodecError(f"entry holds a {type(value).__name__}, not a response dict")
        except CodecError as exc:
            # One call, one fault: get_or_compute reads the same entry again under its lock.
            if not req.decode_faulted:
                req.decode_faulted = True
                self._fault(_DECODE_FAULTS.get(type(exc), "corrupt_entry"), "decode", exc)
            return None
        meta = decoded.meta
        if meta is None:
            entry = MemoryEntry(decoded.payload, decoded.cached_at, decoded.compression_used)
        else:
            tags = meta.get("t")
            entry = MemoryEntry(
                decoded.payload,
                decoded.cached_at,
                decoded.compression_used,
                Cost.from_meta(meta),
                tuple(tags) if isinstance(tags, list) else (),
            )
        req.saved = entry.cost
        if token is not None:
            # The frame's own expiry (written before the SET) bounds the copy: never outlives Redis.
            left = min(decoded.cached_at + decoded.ttl - time.time(), req.ttl)
            tier.fill(req.key, entry, len(entry.payload), token, time.monotonic() + left)
        return self._respond(value, req, entry, "redis")

    # ----------------------------------------------------------------- write path
    @timed_store
    def _store(self, req: CacheRequest, payload: bytes) -> Stored:
        started = time.monotonic()
        cost = req.cost  # set when this call computed the response (savings accounting)
        meta = cost.to_meta() if cost is not None else {}
        if req.tags:
            meta["t"] = list(req.tags)
        # A per-call ttl above the longest configured one is written without a dictionary: a
        # retired dictionary outlives only the TTLs it can know of (dictionaries.longest_ttl).
        use_dictionary = self._write_dictionaries and req.ttl <= self._max_ttl
        dictionary = self.dictionaries.for_write(req.operation) if use_dictionary else None
        try:
            encoded = self.codec.encode(payload, req.ttl, meta=meta or None, dictionary=dictionary)
        except CodecError as exc:  # the dictionary's bytes in Redis are corrupt: write without it
            if dictionary is None:
                raise
            self._fault("corrupt_entry", "dictionary", exc)
            self.dictionaries.unusable(req.operation)
            encoded = self.codec.encode(payload, req.ttl, meta=meta or None)
        tier = self._state.coherence
        token = tier.begin_write(req.key) if req.use_memory else None
        written = self.guarded("set", False, self._write, req, encoded.data, req.fence)
        entry = MemoryEntry(payload, time.time(), encoded.compression_used, cost, req.tags)
        if token is not None:
            # Filled only if Redis acknowledged the write (a failed SET never fills: item 3).
            tier.end_write(req.key, token, entry, len(payload), bool(written), started + req.ttl)
        if written is None:
            self._state.count("fenced_stores")
        return Stored(entry, encoded, bool(written))

    def _write(self, req: CacheRequest, data: bytes, fence: invalidation.Fence | None) -> bool | None:
        """True when stored; None when the fence refused it (an invalidation came first)."""
        if self._store_script is None:
            self._store_script = self.redis.register_script(invalidation.STORE_LUA)
        stored = invalidation.store(
            self._store_script,
            self._lean_client() or self.redis,
            self.ns,
            req.operation,
            req.key,
            data,
            req.ttl,
            fence,
            req.tags,
        )
        return True if stored else None

    def compute_and_store(self, req: CacheRequest, compute: Callable[[], Any]) -> dict[str, Any]:
        """Read the fence, call ``compute`` (timed, for savings), check its result, store it fenced
        with what it cost, return it."""
        fence = self.guarded(
            "fence", None, invalidation.read_fence, self.redis, self.ns, req.operation, req.tags, req.key
        )
        started = perf_counter()
        result = call_compute(compute)
        seconds = perf_counter() - started
        payload = self.requests.payload(self.codec, result)  # checked whether stored or not
        req.cost = measure_cost(result, seconds, self._usage_extractor)
        if fence is None:  # no fence (Redis unreachable, failing, or its breaker open): no store
            return {**result, **computed_metadata(req)}
        req.fence = fence
        entry = self._store(req, payload)
        return self._respond(dict(result), req, entry, "compute") | {"cache_hit": False}

    def _lean_getter(self) -> Callable[[str], bytes | None]:
        """GET without redis-py's per-command overhead where that is safe (aicache.lean)."""
        client = self.redis
        if isinstance(client, Unreachable):  # not built yet: try again on the next call
            return client.get
        lean_client = self._lean_client()
        self._getter = lean_client.get if lean_client is not None else client.get
        return self._getter

    def _lean_client(self) -> lean.LeanClient | None:
        """The GET and store-script sender for a plain ``redis.Redis`` (aicache.lean), else None."""
        if self._lean is None and not self._lean_decided:
            client = self.redis
            if isinstance(client, Unreachable):  # not built yet: decide on a later call
                return None
            self._lean = lean.LeanClient(client) if lean.usable(client) else None
            self._lean_decided = True
        return self._lean

    def _fetch_dictionary(self, key: str) -> bytes | None:
        """One dictionary key or pointer (fail-open: None when Redis cannot answer)."""
        return self.guarded("dictionary", None, self.redis.get, key)

    def announce_abandoned(self, key: str) -> None:
        self.guarded("publish", None, self.redis.publish, self.ns.events, WAKE_PREFIX + key.encode())

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
        *,
        tags: list[str] | None = None,
    ) -> None:
        """Store ``response`` (a JSON-serialisable dict) for the operation's TTL (or ``ttl``),
        under ``tags`` (see :meth:`invalidate_tags`)."""
        req = self._request(text, operation, options, question, ttl, tags)
        self._store(req, self.requests.payload(self.codec, response))

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
        tags: list[str] | None = None,
    ) -> dict[str, Any] | None:
        """The cached response, or ``compute()``'s result, cached (under ``tags``) and returned.

        Concurrent misses for the same request make one ``compute()`` call: in this process
        always (Redis up, down or hung), across processes while Redis answers. The others wait
        up to ``wait_timeout`` seconds and share its outcome, exception included. The Redis lease
        lasts ``lock_timeout`` seconds and is renewed while the compute runs; if its holder dies, a
        waiter computes after it. A compute that started before an invalidation of its operation
        (or of everything) returns its result but does not cache it.

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
        lock_timeout = seconds("lock_timeout", lock_timeout, cfg.single_flight_lock_timeout)
        wait_timeout = seconds("wait_timeout", wait_timeout, cfg.single_flight_wait_timeout)
        req = self._request(text, operation, options, question, ttl, tags)
        if cache == "no-store":
            result = call_compute(compute)
            self.requests.payload(self.codec, result)  # the same checks as a stored response
            return {**result, **computed_metadata(req)}
        if cache == "refresh":
            return self.compute_and_store(req, compute)
        if cache == "only-if-cached":
            return self._lookup(req)
        started = perf_counter()
        hit = self._memory_hit(req)
        if hit is not None:
            self._record(req, "memory", perf_counter() - started)
            return hit
        st = self._state
        flight, leader = st.flights.join(req.key)
        if not leader:
            return self._follow(req, flight, compute, started, wait_timeout)
        try:
            hit = self.read_redis(req)
            lookup_seconds = perf_counter() - started
            if hit is not None:
                result, source = hit, "redis"
            else:
                lock = self.redis.lock(self.ns.lock(req.key), timeout=lock_timeout, thread_local=False)
                result, source = singleflight.lead(
                    self, req, compute, lock, lock_timeout, wait_timeout, st.coherence
                )
            if source == "coalesced":
                st.count("single_flight_coalesced", report=False)  # the monitor counts coalesced lookups
                result["cache_source"] = "coalesced"
                lookup_seconds = perf_counter() - started
            # Serialized by finish() below only if a follower joined: before our caller can change it.
            flight.value = result
            flight.cost = req.saved if source != "compute" else req.cost
        except BaseException as exc:
            flight.error = exc
            self._record(req, "", perf_counter() - started)  # the miss happened; compute failed
            raise
        finally:
            st.flights.finish(req.key, flight)
        # One record per call: a miss is the lookup that missed, not the compute after it.
        self._record(req, "" if source == "compute" else source, lookup_seconds)
        return result

    def _follow(
        self, req: CacheRequest, flight: Any, compute: Callable[[], Any], started: float, wait_timeout: float
    ) -> dict[str, Any]:
        """Share the outcome of this process's flight for the key, exception included."""
        st = self._state
        st.count("single_flight_waits")
        if not flight.done.wait(wait_timeout):
            st.count("single_flight_wait_timeouts")
            result = self.compute_and_store(req, compute)
            self._record(req, "", perf_counter() - started)
            return result
        if flight.error is not None:
            raise flight.error
        st.count("single_flight_coalesced", report=False)  # the monitor counts coalesced lookups
        shared = orjson.loads(flight.result)  # callers never share a dict
        shared["cache_hit"], shared["cache_source"] = True, "coalesced"
        req.saved = flight.cost  # one compute served this caller too
        self._record(req, "coalesced", perf_counter() - started)
        return shared

    def _record(self, req: CacheRequest, source: str, duration: float) -> None:
        """The one lookup record of a call (memory | redis | coalesced | miss); a hit on an entry
        whose computing cost is known also reports that cost as saved."""
        keygen, req.keygen_seconds = req.keygen_seconds, None
        monitor = self._state.monitor
        monitor.record_lookup(req.operation, req.tier, source, duration, keygen, req.text_length)
        cost = req.saved
        if source and cost is not None:
            monitor.record_saving(
                req.operation,
                cost.model,
                cost.compute_seconds,
                cost.prompt_tokens,
                cost.completion_tokens,
                duration,
            )

    def start_coherence(self, wait: float = 0.0) -> str:
        """Start this process's coherence listener now instead of on first use (e.g. from a
        gunicorn ``post_fork`` hook), waiting up to ``wait`` seconds for its first liveness proof;
        returns its status (``live``, ``starting``, ``disconnected``, ``unsupported`` or ``local``)."""
        if isinstance(wait, bool) or not isinstance(wait, (int, float)) or not 0 <= wait <= conf.MAX_SECONDS:
            raise ValueError(f"wait must be a number of seconds from 0 to {conf.MAX_SECONDS}, got {wait!r}")
        self._check_config()
        st = self._state
        if st.listener is not None:
            st.listener.ensure_started(self.redis)
            st.listener.wait_live(wait)  # 0: returns at once
        return st.coherence.status

    def get_performance_summary(self) -> dict[str, Any]:
        """A short view of this process's figures for this cache, every one from the same window
        (since the monitor started or was reset; errors too). With monitoring off: zeros, and the
        faults counted since the process started."""
        monitor = self.monitor
        summary = getattr(monitor, "summary", None) or NullMonitor().summary
        result = summary()
        if getattr(monitor, "counters", None) is None or "errors" not in result:
            result["errors"] = self.error_counts()  # the monitor counts no faults of its own
        return result

    def ping(self) -> bool:
        """True if Redis answers (fail-open: False, never an exception)."""
        if self.config is None:
            return False
        self._state.begin_call()
        return bool(self.guarded("ping", False, self.redis.ping))

    def error_counts(self) -> dict[str, int]:
        """Faults counted in this process: unreachable, redis_error, corrupt_entry, circuit_open."""
        return self._state.error_snapshot()
