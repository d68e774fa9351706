"""Trained zstd dictionaries, one per operation: trained in the background, published in Redis,
loaded lazily by every process.

Small responses (most LLM answers are 0.5-5 KB) compress badly on their own: zstd-3 keeps about
0.64 of an 800 B answer. A dictionary trained on the operation's own responses holds what they
share (field names, phrasing, the usage block), and the same answer shrinks to a fraction of that
(docs/performance.md, "Dictionaries").

Life of a dictionary::

    train (a command or the Celery beat task, never a request): sample the operation's newest
    entries from its index, decode them, zstandard.train_dictionary, keep it only if it
    compresses the sample better than plain zstd
      --> SET {prefix}!zdict:{id} NX         (a random 31-bit id, claimed: never reused, even
                                             after Redis lost its data)
      --> SET {prefix}!zdict!op:{op} id GET  (writers switch within DICTIONARY_REFRESH_SECONDS)
      --> EXPIRE the previous dictionary after the longest TTL (the operation index's last
          expiry, or the longest configured TTL if later) + the refresh interval, so every frame
          written with it has expired before it goes (a per-call ttl above the longest
          configured TTL is written without a dictionary)

    write: DictionaryRegistry.for_write(op), the pointer re-read at most every
      DICTIONARY_REFRESH_SECONDS, so a process picks up a retrained dictionary on its own; a
      pointer that is not an id, or a dictionary zstd cannot use, is a counted ``corrupt_entry``
      and the response is written without a dictionary (a write never fails on one)
    read: the frame names its dictionary id; an id not loaded yet is fetched once (GET) and
      kept; an id Redis no longer has reads as a miss counted as ``unknown_dictionary``, and is
      not asked for again for MISSING_RETRY_SECONDS

Retraining is safe while other processes read older frames: ids are never reused (random, claimed
with SET NX, so not even after Redis lost its data and a process still holds the old dictionaries),
a dictionary's bytes never change, and the old one outlives every frame that names it.
"""

from __future__ import annotations

import logging
import math
import secrets
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from aicache import conf, invalidation, namespace, state
from aicache.codec import SMALL_DICTIONARY_LEVEL, CodecError

logger = logging.getLogger("aicache")

#: An id Redis did not have is asked for again after this long (a stream of frames naming a gone
#: dictionary costs one GET per interval, not one per read).
MISSING_RETRY_SECONDS = 5.0
#: Most dictionaries one process keeps loaded per cache (each is DICTIONARY_SIZE bytes).
MAX_LOADED = 256
#: Dictionaries are trained on at most this many of an operation's newest entries.
DEFAULT_SAMPLES = conf.DICTIONARY_SAMPLES  # DICTIONARY_MIN_SAMPLES is checked against it
FETCH_BATCH = 200
#: ``fault(kind, action, exc)``: count and log a fault (the backend's ``_fault``).
Fault = Callable[[str, str, BaseException], None]
#: Dictionary ids are random in [MIN_ID, MAX_ID] (zstd keeps ids below 32768 for registered
#: public dictionaries; 31 bits), claimed with SET NX. Not a counter: an INCR restarts at 1 once
#: Redis loses its data (FLUSHDB, a failover to a lagging replica), and a process still holding
#: the old dictionary 1 would read and write the new dictionary 1's frames with the wrong one.
#: Two random ids meet with odds of about 1 in 2**31 per dictionary a process holds.
MIN_ID = 32768
MAX_ID = 2**31 - 1
CLAIM_ATTEMPTS = 8


class DictionaryRegistry:
    """This process's dictionaries of one cache (shared by its threads): loaded ids, and the id
    each operation writes with. ``fetch(key)`` reads one Redis key (fail-open: None)."""

    def __init__(self, prefix: str, refresh_seconds: float) -> None:
        self.prefix = prefix
        self.refresh_seconds = refresh_seconds
        self._loaded: dict[int, Any] = {}
        self._missing: dict[int, float] = {}
        self._writers: dict[str, tuple[float, tuple[int, Any] | None]] = {}
        self._lock = threading.Lock()

    def get(self, dict_id: int, fetch: Callable[[str], bytes | None]) -> Any:
        """The dictionary ``dict_id`` (a ``zstandard.ZstdCompressionDict``), or None if Redis has
        none by that id."""
        zdict = self._loaded.get(dict_id)
        if zdict is not None:
            return zdict
        if self._missing.get(dict_id, 0.0) > time.monotonic():
            return None
        raw = fetch(namespace.dictionary_key(self.prefix, dict_id))
        if not raw:
            if len(self._missing) >= MAX_LOADED:  # frames naming many gone ids: stay bounded
                self._missing.clear()
            self._missing[dict_id] = time.monotonic() + MISSING_RETRY_SECONDS
            return None
        import zstandard

        zdict = zstandard.ZstdCompressionDict(bytes(raw))
        with self._lock:
            if len(self._loaded) >= MAX_LOADED:
                self._loaded.pop(next(iter(self._loaded)))
            self._loaded[dict_id] = zdict
            self._missing.pop(dict_id, None)
        return zdict

    def for_write(
        self, operation: str, fetch: Callable[[str], bytes | None], fault: Fault | None = None
    ) -> tuple[int, Any] | None:
        """``(id, dictionary)`` the operation's writers use now, or None (none trained yet, or a
        pointer that is not an id: a fault told to ``fault``, then no dictionary until the next
        re-read)."""
        now = time.monotonic()
        cached = self._writers.get(operation)
        if cached is not None and cached[0] > now:
            return cached[1]
        raw = fetch(namespace.dictionary_pointer(self.prefix, operation))
        current = None
        if raw:
            dict_id = parse_id(raw)
            if dict_id is None:
                if fault is not None:
                    problem = (
                        f"the dictionary pointer of {operation!r} is not a dictionary id: {bytes(raw)[:32]!r}"
                    )
                    fault("corrupt_entry", "dictionary", CodecError(problem))
            else:
                zdict = self.get(dict_id, fetch)
                current = None if zdict is None else (dict_id, zdict)
        self._writers[operation] = (now + self.refresh_seconds, current)
        return current

    def unusable(self, operation: str) -> None:
        """The operation's dictionary could not compress (corrupt bytes in Redis): write without
        one until its pointer is re-read."""
        self._writers[operation] = (time.monotonic() + self.refresh_seconds, None)

    def forget_writers(self) -> None:
        """Re-read every operation's pointer on its next write (after this process trained one)."""
        self._writers.clear()


def parse_id(raw: bytes | str) -> int | None:
    """A dictionary id read from Redis (a frame's u32), or None if ``raw`` is not one."""
    text = raw.encode() if isinstance(raw, str) else bytes(raw)
    if not text.isdigit() or len(text) > 10:
        return None
    value = int(text)
    return value if 0 < value <= 0xFFFFFFFF else None


class DictionaryClient:
    """What one backend instance hands its codec: this process's registry (found again after a
    process-state reset), read through this instance's fail-open Redis access."""

    __slots__ = ("_generation", "_identity", "_prefix", "_refresh", "_registry", "fault", "fetch")

    def __init__(
        self,
        identity: tuple[Any, ...],
        prefix: str,
        refresh_seconds: float,
        fetch: Callable[[str], bytes | None],
        fault: Fault | None = None,
    ) -> None:
        self._identity, self._prefix, self._refresh = identity, prefix, refresh_seconds
        self._generation = -1
        self._registry: DictionaryRegistry | None = None
        self.fetch = fetch
        self.fault = fault

    @property
    def registry(self) -> DictionaryRegistry:
        if self._generation != state._generation or self._registry is None:
            self._registry = registry(self._identity, self._prefix, self._refresh)
            self._generation = state._generation
        return self._registry

    def get(self, dict_id: int) -> Any:
        return self.registry.get(dict_id, self.fetch)

    def for_write(self, operation: str) -> tuple[int, Any] | None:
        return self.registry.for_write(operation, self.fetch, self.fault)

    def unusable(self, operation: str) -> None:
        self.registry.unusable(operation)


_registries: dict[tuple[Any, ...], DictionaryRegistry] = {}
_registries_lock = threading.Lock()


def registry(identity: tuple[Any, ...], prefix: str, refresh_seconds: float) -> DictionaryRegistry:
    """One registry per process, cache identity and process-state generation (a reset, e.g. a
    test's flushed Redis, starts empty: ids are only unique within one Redis)."""
    key = (*identity, state.generation())
    found = _registries.get(key)
    if found is None:
        with _registries_lock:
            found = _registries.get(key)
            if found is None:
                for stale in [k for k in _registries if k[-1] != key[-1]]:
                    del _registries[stale]
                found = _registries[key] = DictionaryRegistry(prefix, refresh_seconds)
    return found


# ---------------------------------------------------------------------- training (background only)
@dataclass(frozen=True, slots=True)
class TrainResult:
    operation: str
    outcome: str  # "trained", "too_few_samples", "no_gain", "failed"
    samples: int
    dict_id: int | None = None
    ratio_plain: float | None = None  # stored/JSON with plain zstd, over the sample
    ratio_dictionary: float | None = None  # ... with the new dictionary
    detail: str = ""


def sample_payloads(cache: Any, operation: str, limit: int) -> list[bytes]:
    """The serialized responses of up to ``limit`` of the operation's newest entries (from its
    index, never a keyspace scan); entries that do not decode are skipped.

    On a cluster the index is split into buckets (``cache.ns.buckets``), each in its own slot: the
    newest ``limit`` of every bucket are read (one pipeline, each ZRANGE sent to its bucket's
    node), and the newest ``limit`` of those kept. The MGETs are split by slot (``Cluster.mget``).
    """
    redis = cache.redis
    pipe = redis.pipeline(transaction=False)
    for bucket in cache.ns.buckets:
        pipe.zrange(cache.ns.index(operation, bucket), -limit, -1, withscores=True)
    scored = [member for members in pipe.execute() for member in members]
    scored.sort(key=lambda member: member[1])  # by expiry: the newest last, as in one index
    keys = [key for key, _ in scored[-limit:]]
    out: list[bytes] = []
    for start in range(0, len(keys), FETCH_BATCH):
        for data in redis.mget(keys[start : start + FETCH_BATCH]):
            if data is None:
                continue
            try:
                out.append(bytes(cache.codec.decode(data).payload))
            except CodecError:
                continue
    return out


def _ratio(compress: Callable[[bytes], bytes], payloads: Iterable[bytes]) -> float:
    total = packed = 0
    for payload in payloads:
        total += len(payload)
        packed += len(compress(payload))
    return packed / total if total else 1.0


def train_operation(
    cache: Any, operation: str, *, min_samples: int | None = None, samples: int = DEFAULT_SAMPLES
) -> TrainResult:
    """Train, check and publish a dictionary for ``operation`` of ``cache`` (an
    ``AIResponseCache``). Slow (tens of ms to seconds): call it from a command or a task."""
    import zstandard

    cfg = cache.config
    needed = cfg.dictionary_min_samples if min_samples is None else min_samples
    payloads = sample_payloads(cache, operation, samples)
    if len(payloads) < max(needed, 2):
        return TrainResult(operation, "too_few_samples", len(payloads), detail=f"needs {needed}")
    # Train on most of the sample, judge on the rest: a dictionary must help answers it never saw.
    held_out = payloads[::5] if len(payloads) >= 10 else payloads
    training = [p for i, p in enumerate(payloads) if i % 5] if len(payloads) >= 10 else payloads
    zstd_level = cfg.compression_algorithm == "zstd" and cfg.compression_level is not None
    # Unconfigured, small frames are written at SMALL_DICTIONARY_LEVEL: train for that level (a
    # dictionary trained at 3 gained little at 5; aicache.codec has the figures).
    level = cfg.compression_level if zstd_level else SMALL_DICTIONARY_LEVEL
    size = min(cfg.dictionary_size, max(256, sum(map(len, training)) // 2))
    dict_id = new_id()
    try:
        zdict = zstandard.train_dictionary(size, training, dict_id=dict_id, level=level)
    except zstandard.ZstdError as exc:
        return TrainResult(operation, "failed", len(payloads), detail=str(exc))
    plain = zstandard.ZstdCompressor(level=level)
    with_dict = zstandard.ZstdCompressor(level=level, dict_data=zdict, write_dict_id=False)
    ratio_plain = _ratio(plain.compress, held_out)
    ratio_dict = _ratio(lambda p: b"1234" + with_dict.compress(p), held_out)  # + the frame's id
    if ratio_dict >= ratio_plain:
        return TrainResult(operation, "no_gain", len(payloads), None, ratio_plain, ratio_dict)
    claimed = publish(cache, operation, dict_id, zdict.as_bytes())
    if claimed is None:
        return TrainResult(operation, "failed", len(payloads), None, ratio_plain, ratio_dict, "no free id")
    return TrainResult(operation, "trained", len(payloads), claimed, ratio_plain, ratio_dict)


def new_id() -> int:
    """A random dictionary id in [MIN_ID, MAX_ID] (claimed with SET NX by :func:`publish`)."""
    return MIN_ID + secrets.randbelow(MAX_ID - MIN_ID + 1)


def publish(cache: Any, operation: str, dict_id: int, raw: bytes) -> int | None:
    """Store the dictionary under ``dict_id`` (or, if Redis has a dictionary by that id, under
    another random id), point the operation's writers at it, and return the id it got (None if
    CLAIM_ATTEMPTS random ids were all taken). The dictionary it replaces expires once every frame
    it compressed has (longest TTL + the refresh interval)."""
    cfg = cache.config
    redis = cache.redis
    for _ in range(CLAIM_ATTEMPTS):
        # SET NX: a dictionary's bytes never change, so an id Redis holds is never taken over.
        if redis.set(namespace.dictionary_key(cfg.key_prefix, dict_id), raw, nx=True):
            break
        dict_id = new_id()
    else:
        return None
    old = redis.set(namespace.dictionary_pointer(cfg.key_prefix, operation), str(dict_id), get=True)
    old_id = parse_id(old) if old else None  # a corrupt pointer names no dictionary to retire
    if old_id is not None and old_id != dict_id:
        grace = longest_ttl(cache, operation) + math.ceil(cfg.dictionary_refresh_seconds) + 60
        redis.expire(namespace.dictionary_key(cfg.key_prefix, old_id), grace)
    cache.dictionaries.registry.forget_writers()
    return dict_id


def longest_ttl(cache: Any, operation: str) -> int:
    """Seconds the operation's frames written so far may still live: until its index's last
    expiry (every bucket; an entry's score is its expiry in ms), or the longest TTL configured
    here, whichever is later. Frames written after the switch (by a writer that has not re-read
    the pointer yet) use a dictionary only up to that writer's longest configured TTL (a per-call
    ``ttl`` above it is written without one), so they are covered too."""
    ns = cache.ns
    pipe = cache.redis.pipeline(transaction=False)
    for bucket in ns.buckets:
        pipe.zrange(ns.index(operation, bucket), -1, -1, withscores=True)
    latest_ms = max((score for members in pipe.execute() for _, score in members), default=0.0)
    return max(cache._max_ttl, math.ceil(latest_ms / 1000 - time.time()))


def train_all(
    cache: Any,
    operations: Iterable[str] | None = None,
    *,
    min_samples: int | None = None,
    samples: int = DEFAULT_SAMPLES,
) -> list[TrainResult]:
    """:func:`train_operation` for ``operations`` (default: every operation with an index). An
    operation whose Redis commands fail is a ``failed`` result (the others still train); a failure
    to list the operations raises ``redis.RedisError``."""
    import redis

    if operations is None:
        operations = invalidation.known_operations(cache.redis, cache.ns)  # every bucket's set
    results = []
    for op in operations:
        try:
            results.append(train_operation(cache, op, min_samples=min_samples, samples=samples))
        except redis.RedisError as exc:
            results.append(TrainResult(op, "failed", 0, detail=f"Redis: {exc}"))
    return results


def train_cache(
    alias: str,
    cache: Any,
    operations: Iterable[str] | None = None,
    *,
    min_samples: int | None = None,
    samples: int = DEFAULT_SAMPLES,
) -> list[tuple[str, bool]]:
    """``(line, failed)`` per operation of the cache ``alias``, or one ``{alias}: failed (...)``
    line when its Redis cannot even list them."""
    import redis

    try:
        results = train_all(cache, operations, min_samples=min_samples, samples=samples)
    except redis.RedisError as exc:
        return [(f"{alias}: failed (Redis: {exc})", True)]
    return [(f"{alias} {describe(r)}", r.outcome == "failed") for r in results]


def describe(result: TrainResult) -> str:
    """One line for a command's output or a task's log."""
    line = f"{result.operation}: {result.outcome} ({result.samples} samples"
    if result.ratio_plain is not None:
        line += f"; stored/JSON {result.ratio_plain:.3f} plain zstd"
        line += f", {result.ratio_dictionary:.3f} with dictionary"
    if result.dict_id is not None:
        line += f"; dictionary {result.dict_id}"
    return line + (f"; {result.detail})" if result.detail else ")")


def aicache_caches(alias: str | None = None) -> list[tuple[str, Any]]:
    """``(alias, backend)`` of every configured AIResponseCache, or of ``alias`` (ValueError if
    it is not one)."""
    from django.conf import settings
    from django.core.cache import caches

    from aicache.backend import AIResponseCache

    aliases = [alias] if alias else list(settings.CACHES)
    out = []
    for name in aliases:
        if name not in settings.CACHES:
            raise ValueError(f"no cache named {name!r} in CACHES")
        backend = caches[name]
        if isinstance(backend, AIResponseCache) and backend.config is not None:
            out.append((name, backend))
        elif alias:
            raise ValueError(f"cache {name!r} is not a configured aicache.backend.AIResponseCache")
    return out


def train_configured(alias: str | None = None) -> list[str]:
    """Train every configured aicache cache whose writers use dictionaries (COMPRESSION_DICTIONARIES
    on, algorithm zstd): the beat task. Failures (Redis down, ...) are logged as warnings and
    returned as ``failed`` lines; one cache's failure never stops the others."""
    lines = []
    for name, backend in aicache_caches(alias):
        if not backend._write_dictionaries:
            continue
        for line, failed in train_cache(name, backend):
            (logger.warning if failed else logger.info)("aicache dictionary training: %s", line)
            lines.append(line)
    return lines
