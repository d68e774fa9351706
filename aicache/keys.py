"""Cache keys: ``{prefix}:{operation}:{digest}``, built here and nowhere else.

The digest is a cryptographic hash over length-framed parts (canonical options, question, then the
text), so no two different requests share a key and no separator trick can make them. Raw text
never appears in a key: SCAN output, logs and metrics carry no user data, and a key contains no
glob characters, which makes an operation prefix match exact.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping
from typing import Any

import orjson

from aicache.conf import OPERATION_RE

# Texts longer than this are hashed in slices, so a 1 MB text never exists twice as bytes.
_CHUNK_CHARS = 64 * 1024
_EMPTY_OPTIONS = b"{}"
_NO_QUESTION = b"\xff" * 8  # cannot be a length prefix, so it differs from every question


def validate_operation(operation: Any) -> str:
    if not isinstance(operation, str):
        raise TypeError(f"operation must be a str, got {type(operation).__name__}")
    if not OPERATION_RE.fullmatch(operation):
        raise ValueError(f"operation must be a 1-64 character [a-z0-9_-] token, got {operation!r}")
    return operation


def canonical_options(options: Any) -> bytes:
    """Sorted-key JSON of ``options``; ``None`` and ``{}`` are the same request."""
    if options is None:
        return _EMPTY_OPTIONS
    if not isinstance(options, Mapping):
        raise TypeError(f"options must be a mapping or None, got {type(options).__name__}")
    try:
        # Plain JSON only: dataclasses, datetimes and the like would be serialized without the
        # NaN check below (and a datetime's text is no stable key).
        data = orjson.dumps(
            dict(options),
            option=orjson.OPT_SORT_KEYS | orjson.OPT_PASSTHROUGH_DATACLASS | orjson.OPT_PASSTHROUGH_DATETIME,
        )
    except TypeError as exc:
        raise TypeError(f"options must be JSON-serialisable with str keys: {exc}") from exc
    # orjson writes NaN and +-inf as null, which would share a key with a real null: refuse them.
    if b"null" in data and _has_non_finite(options):
        raise ValueError("options must not contain NaN or infinite numbers (JSON has no such value)")
    return data


def _has_non_finite(value: Any) -> bool:
    if isinstance(value, float):
        return not math.isfinite(value)
    if isinstance(value, Mapping):
        return any(_has_non_finite(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return any(_has_non_finite(v) for v in value)
    return False


class CacheKeyGenerator:
    """Deterministic, fixed-length keys for (text, operation, options, question)."""

    def __init__(
        self, prefix: str = "ai_cache", hash_algorithm: str = "sha256", clustered: bool = False
    ) -> None:
        if hash_algorithm == "sha256":
            self._new = hashlib.sha256
        elif hash_algorithm == "blake2b":
            self._new = lambda: hashlib.blake2b(digest_size=32)
        else:
            raise ValueError(f"hash_algorithm must be 'sha256' or 'blake2b', got {hash_algorithm!r}")
        self.prefix = prefix
        self.hash_algorithm = hash_algorithm
        # Redis Cluster: the digest's first digit becomes a hash tag (aicache.namespace, buckets).
        self.clustered = clustered
        # The common request has no options and no question: hash that framing once and copy it.
        self._plain = self._new()
        self._plain.update(len(_EMPTY_OPTIONS).to_bytes(8, "big") + _EMPTY_OPTIONS + _NO_QUESTION)

    def operation_prefix(self, operation: str) -> str:
        return f"{self.prefix}:{operation}:"

    def generate(
        self,
        text: str,
        operation: str,
        options: Mapping[str, Any] | None = None,
        question: str | None = None,
        *,
        options_bytes: bytes | None = None,
    ) -> str:
        """The key for a request; ``options_bytes`` skips re-canonicalising known options.

        ``question`` of ``None`` and ``""`` are the same request: both mean "no question".
        """
        # Every part before the text is length-framed and the text runs to the end of the
        # stream, so the encoding is injective: different requests never hash the same bytes.
        opts = canonical_options(options) if options_bytes is None else options_bytes
        if not question and opts == _EMPTY_OPTIONS:
            h = self._plain.copy()
        else:
            h = self._new()
            h.update(len(opts).to_bytes(8, "big"))
            h.update(opts)
            if question:
                q = question.encode("utf-8", "surrogatepass")
                h.update(len(q).to_bytes(8, "big"))
                h.update(q)
            else:
                h.update(_NO_QUESTION)
        n = len(text)
        if n <= _CHUNK_CHARS:
            h.update(text.encode("utf-8", "surrogatepass"))
        else:
            for start in range(0, n, _CHUNK_CHARS):
                h.update(text[start : start + _CHUNK_CHARS].encode("utf-8", "surrogatepass"))
        digest = h.hexdigest()
        if self.clustered:
            return f"{self.prefix}:{operation}:{{{digest[0]}}}{digest[1:]}"
        return f"{self.prefix}:{operation}:{digest}"
