"""Checking a call's inputs once, before anything is computed or sent to Redis.

Every argument is validated here and named in the error (``TypeError`` for a wrong type,
``ValueError`` for a wrong value), so a bad call fails before an LLM is paid.
"""

from __future__ import annotations

import inspect
import re
from bisect import bisect_left
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from aicache import conf
from aicache.codec import Codec
from aicache.keys import CacheKeyGenerator, canonical_options, validate_operation

#: Keys the cache adds to every response it returns. A response to store may not carry them:
#: they would be overwritten on the way out (test_backend.py::test_reserved_metadata_keys_refused).
META_KEYS = frozenset({"cache_hit", "cached_at", "tier", "text_length", "compression_used", "cache_source"})
MAX_TAGS = 16
TAG_RE = re.compile(r"[A-Za-z0-9_.:-]{1,64}")
_NO_OPTIONS = canonical_options(None)


@dataclass(slots=True)
class CacheRequest:
    key: str
    operation: str
    tier: str
    text_length: int
    use_memory: bool
    ttl: int
    keygen_seconds: float | None = None  # reported once, by the first step that records
    fence: tuple[str, ...] | None = None  # generations read before compute (aicache.invalidation)
    tags: tuple[str, ...] = ()
    saved: Any = None  # the hit entry's aicache.savings.Cost, reported with the lookup
    cost: Any = None  # what this call's own compute cost (shared with coalesced callers)
    decode_faulted: bool = False  # a decode fault was counted (get_or_compute re-reads the entry)


def check_tags(tags: Any, allow_empty: bool = True) -> tuple[str, ...]:
    """Up to MAX_TAGS distinct tags of 1-64 characters ``[A-Za-z0-9_.:-]`` (e.g. ``prompt:v3``)."""
    if isinstance(tags, str) or not isinstance(tags, (list, tuple, set, frozenset)):
        raise TypeError(f"tags must be a list of strings, got {type(tags).__name__}")
    if not tags and not allow_empty:
        raise ValueError("tags must name at least one tag")
    out = []
    for tag in tags:
        if not isinstance(tag, str) or not TAG_RE.fullmatch(tag):
            raise ValueError(f"each tag must be 1-64 characters of [A-Za-z0-9_.:-], got {tag!r}")
        if tag not in out:
            out.append(tag)
    if len(out) > MAX_TAGS:
        raise ValueError(f"at most {MAX_TAGS} tags per entry, got {len(out)}")
    return tuple(sorted(out))


class RequestBuilder:
    """Turns (text, operation, options, question, ttl) into a :class:`CacheRequest`."""

    def __init__(
        self, cfg: conf.CacheConfig, key_generator: CacheKeyGenerator, memory_tiers: frozenset
    ) -> None:
        self.cfg = cfg
        self.key_generator = key_generator
        self._known_operations: set[str] = set()
        self._tier_bounds = tuple(bound for _, bound in cfg.text_size_tiers)  # for bisect
        self._tier_names = (*(name for name, _ in cfg.text_size_tiers), conf.XLARGE)
        self._memory_tiers = memory_tiers

    def operation(self, operation: Any) -> str:
        if operation not in self._known_operations:  # validated once, then a set lookup
            validate_operation(operation)
            if len(self._known_operations) < 1024:
                self._known_operations.add(operation)
        return operation

    def ttl(self, operation: str, ttl: Any) -> int:
        if ttl is None:
            return self.cfg.operation_ttls.get(operation, self.cfg.default_ttl)
        if not isinstance(ttl, int) or isinstance(ttl, bool) or not 0 < ttl <= conf.MAX_TTL:
            raise ValueError(f"ttl must be a whole number of seconds from 1 to {conf.MAX_TTL}, got {ttl!r}")
        return ttl

    def build(
        self, text: Any, operation: Any, options: Any, question: Any, ttl: Any = None, tags: Any = None
    ) -> CacheRequest:
        cfg = self.cfg
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        n = len(text)
        if not n or text.isspace():
            raise ValueError("text must be a non-empty string")
        if n > cfg.max_text_length:
            raise ValueError(f"text is {n} characters long; MAX_TEXT_LENGTH is {cfg.max_text_length}")
        self.operation(operation)
        opts = _NO_OPTIONS if options is None else canonical_options(options)
        if question is not None:
            if not isinstance(question, str):
                raise TypeError(f"question must be a str or None, got {type(question).__name__}")
            if len(question) > cfg.max_text_length:
                raise ValueError(f"question is longer than MAX_TEXT_LENGTH ({cfg.max_text_length})")
        ttl = self.ttl(operation, ttl)
        tag_tuple = check_tags(tags) if tags is not None else ()
        tier = self._tier_names[bisect_left(self._tier_bounds, n)]  # a length equal to a bound: that tier
        started = perf_counter()
        key = self.key_generator.generate(text, operation, question=question, options_bytes=opts)
        keygen = perf_counter() - started
        return CacheRequest(key, operation, tier, n, tier in self._memory_tiers, ttl, keygen, tags=tag_tuple)

    def payload(self, codec: Codec, response: Any) -> bytes:
        """The serialized response; refuses reserved keys, non-JSON values and oversize."""
        if not isinstance(response, Mapping):
            raise TypeError(f"response must be a dict, got {type(response).__name__}")
        reserved = META_KEYS.intersection(response)
        if reserved:
            raise ValueError(
                f"response carries the reserved key(s) {sorted(reserved)}: the cache adds these to every "
                "response it returns; rename them in your response"
            )
        try:
            payload = codec.serialize(dict(response))
        except TypeError as exc:
            raise TypeError(f"response must be JSON-serialisable with str keys: {exc}") from exc
        limit = self.cfg.max_response_bytes
        if len(payload) > limit:
            raise ValueError(f"response is {len(payload)} bytes serialized; MAX_RESPONSE_BYTES is {limit}")
        return payload


def call_compute(compute: Callable[[], Any]) -> Any:
    result = compute()
    if inspect.isawaitable(result):
        if inspect.iscoroutine(result):
            result.close()
        raise TypeError("compute returned an awaitable; use aget_or_compute for async callables")
    return result


def computed_metadata(req: CacheRequest) -> dict[str, Any]:
    return {
        "cache_hit": False,
        "cached_at": None,
        "tier": req.tier,
        "text_length": req.text_length,
        "compression_used": False,
        "cache_source": "compute",
    }


def seconds(name: str, value: Any, default: float) -> float:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 < value <= conf.MAX_SECONDS:
        raise ValueError(
            f"{name} must be a positive number of seconds up to {conf.MAX_SECONDS}, got {value!r}"
        )
    return float(value)
