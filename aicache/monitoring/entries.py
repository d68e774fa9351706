"""Live cache entries, a page at a time, for the admin's entry browser.

Entries are never all loaded: without an operation a page is a few ``SCAN MATCH {prefix}:*``
steps (the cursor is the page token); with one, a page is a slice of the operation's index
``{prefix}!idx:{operation}`` (members scored by expiry, so soonest-to-expire first; the offset is
the page token). On Redis Cluster the token also names where the walk is: SCAN goes through every
primary in turn (the primary's position in the top bits), an index through its 16 buckets.
For each key only the frame header is read (``GETRANGE`` of its first bytes),
with ``STRLEN`` and ``PTTL``: the digest, operation, bytes stored, compression, TTL left and age
come from those, never from the cached value. Nothing read is unpickled.

The text-size tier is not recorded in an entry (the key holds only a digest of the text), so the
"tier" shown is where the entry lives: Redis, or Redis and this process's memory tier.

A preview of the cached value (truncated, JSON) is read only when ``ADMIN_ENTRY_PREVIEW_CHARS`` is
above 0 and the viewer is a superuser; the request's own text is never stored and so never shown.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass
from time import perf_counter
from typing import Any

from redis.exceptions import RedisError

from aicache import invalidation
from aicache.codec import (
    BUILTIN_COMPRESSORS,
    HEADER,
    HEADER_SIZE,
    MAGIC,
    MAGIC_META,
    META_LENGTH,
    SIGNED,
    ZSTD_DICT_FLAG,
    CodecError,
    read_meta,
)
from aicache.conf import OPERATION_RE
from aicache.monitoring import actions
from aicache.monitoring.admin import duration_text
from aicache.namespace import Namespace
from aicache.request import TAG_RE

MAX_PAGE_SIZE = 500
#: SCAN steps per page at most: a keyspace mostly made of other data still answers quickly.
MAX_SCAN_STEPS = 50
META_PEEK = 2048  # bytes of frame metadata read per entry: tags (16 x 64 characters) fit
COMPRESSION_NAMES = {cls.flag: cls.name for cls in BUILTIN_COMPRESSORS.values()} | {
    ZSTD_DICT_FLAG: "zstd+dictionary"
}
STORAGE_TIERS = ("memory", "redis")
_DIGEST_RE = re.compile(r"[0-9a-f]{16,128}")
_SLOTTED_DIGEST_RE = re.compile(r"\{[0-9a-f]\}[0-9a-f]{15,127}")  # Cluster: the first digit as hash tag
_BUCKET_SHIFT = 40  # page token of an index walk: bucket << 40 | offset
_NODE_SHIFT = 56  # page token of a SCAN walk on Cluster: primary << 56 | cursor


@dataclass(frozen=True)
class Entry:
    key: str
    operation: str
    digest: str
    stored_bytes: int | None  # frame size in Redis (header included)
    compression: str  # "none", "zlib", "zstd", "zstd+dictionary", or "unreadable" (no aicache frame)
    ttl_left: float | None  # seconds; None: no expiry
    age: float | None  # seconds since it was cached
    in_memory: bool  # also in this process's memory tier
    preview: str = ""
    tags: tuple[str, ...] = ()

    @property
    def storage_tier(self) -> str:
        return "memory" if self.in_memory else "redis"

    @property
    def ttl_text(self) -> str:
        return "no expiry" if self.ttl_left is None else duration_text(self.ttl_left)

    @property
    def age_text(self) -> str:
        return "-" if self.age is None else duration_text(self.age)


@dataclass(frozen=True)
class Page:
    entries: list[Entry]
    next_token: str  # "" when this is the last page
    scanned: int  # keys looked at (SCAN can return other keys under the prefix)


def parse_key(prefix: str | Namespace, key: str) -> tuple[str, str] | None:
    """(operation, digest) of an entry key ``{prefix}:{operation}:{digest}``, else ``None``. With
    a clustered :class:`Namespace` (``cache.ns``) the digest carries its hash tag: ``{3}fa9...``."""
    ns = prefix if isinstance(prefix, Namespace) else Namespace(prefix)
    if not isinstance(key, str) or not ns.is_entry(key):
        return None
    operation = ns.operation_of(key)
    digest = key[len(ns.operation_prefix(operation)) :]
    digest_re = _SLOTTED_DIGEST_RE if ns.clustered else _DIGEST_RE
    if not OPERATION_RE.fullmatch(operation) or not digest_re.fullmatch(digest):
        return None
    return operation, digest


def _primaries(client: Any) -> list[Any]:
    """The plain client of each primary, in a stable order (one: the client itself off Cluster)."""
    if not hasattr(client, "get_primaries"):
        return [client]
    nodes = sorted(client.get_primaries(), key=lambda node: node.name)
    return [client.get_redis_connection(node) for node in nodes]


def _index_page(client: Any, indexes: list[str], token: int, size: int) -> tuple[list[str], str]:
    """``size`` live members from ``indexes`` (an index's buckets) in turn, from ``token``."""
    bucket, start = divmod(token, 1 << _BUCKET_SHIFT)
    now_ms = int(time.time() * 1000)
    keys: list[str] = []
    while bucket < len(indexes):
        want = size - len(keys)
        members = client.zrangebyscore(indexes[bucket], now_ms, "+inf", start=start, num=want + 1)
        keys.extend(m.decode() for m in members[:want])
        if len(members) > want:
            return keys, str(bucket << _BUCKET_SHIFT | (start + want))
        bucket, start = bucket + 1, 0
        if len(keys) == size:
            return keys, str(bucket << _BUCKET_SHIFT) if bucket < len(indexes) else ""
    return keys, ""


def _scan_page(client: Any, match: str, token: int, size: int) -> tuple[list[str], str, int]:
    """A few SCAN steps over each primary in turn, from ``token``."""
    nodes = _primaries(client)
    node, cursor = divmod(token, 1 << _NODE_SHIFT)
    keys: list[str] = []
    scanned = 0
    for _ in range(MAX_SCAN_STEPS):
        if node >= len(nodes):
            return keys, "", scanned
        # small steps: a page overshoots ``size`` by at most about one step
        cursor, found = nodes[node].scan(cursor=cursor, match=match, count=max(10, size // 4))
        keys.extend(k.decode() for k in found)
        scanned += len(found)
        if cursor == 0:
            node += 1
        if len(keys) >= size:
            break
    if node >= len(nodes):
        return keys, "", scanned
    return keys, str(node << _NODE_SHIFT | cursor), scanned


def page(
    cache: Any,
    *,
    operation: str = "",
    tier: str = "",
    tag: str = "",
    token: str = "",
    size: int = 50,
    preview_chars: int = 0,
) -> Page:
    """One page of live entries (``ValueError`` for a bad argument). ``tier`` "memory" keeps the
    entries also held in this process's memory tier, "redis" those that are not."""
    ns = cache.ns
    if operation and not OPERATION_RE.fullmatch(operation):
        raise ValueError("operation must be 1-64 characters of [a-z0-9_-]")
    if tag and not TAG_RE.fullmatch(tag):
        raise ValueError("tag must be 1-64 characters of [A-Za-z0-9_.:-]")
    if tag and operation:
        raise ValueError("filter by operation or by tag, not both")
    if tier and tier not in STORAGE_TIERS:
        raise ValueError(f"tier must be one of {', '.join(STORAGE_TIERS)}")
    if not isinstance(size, int) or not 1 <= size <= MAX_PAGE_SIZE:
        raise ValueError(f"size must be between 1 and {MAX_PAGE_SIZE}")
    if token and not (token.isascii() and token.isdigit() and int(token) < 2**64):
        raise ValueError("page token must be a non-negative 64-bit integer")
    start = int(token or 0)
    client = cache.redis
    if operation or tag:
        indexes = [ns.index(operation, b) if operation else ns.tag_index(tag, b) for b in ns.buckets]
        keys, next_token = _index_page(client, indexes, start, size)
        scanned = len(keys)
    else:
        keys, next_token, scanned = _scan_page(client, ns.entries_match(), start, size)
    entries = describe(cache, keys, preview_chars=preview_chars)
    if tag:  # the index may name a key rewritten without the tag since
        entries = [e for e in entries if tag in e.tags]
    if tier:
        entries = [e for e in entries if e.storage_tier == tier]
    return Page(entries, next_token, scanned)


def describe(cache: Any, keys: list[str], *, preview_chars: int = 0) -> list[Entry]:
    """Header facts of each key that is still there (gone keys are left out)."""
    parsed = [(k, parse_key(cache.ns, k)) for k in keys]
    parsed = [(k, p) for k, p in parsed if p is not None]
    if not parsed:
        return []
    pipe = cache.redis.pipeline(transaction=False)
    for key, _ in parsed:
        pipe.getrange(key, 0, HEADER_SIZE + META_LENGTH.size + META_PEEK - 1)  # header + metadata
        pipe.strlen(key)
        pipe.pttl(key)
        if preview_chars > 0:
            pipe.get(key)
    replies = pipe.execute()
    step = 4 if preview_chars > 0 else 3
    now = time.time()
    in_memory = set(cache.memory.keys())
    out = []
    for i, (key, (operation, digest)) in enumerate(parsed):
        header, length, pttl = replies[i * step : i * step + 3]
        if not length:  # expired or deleted since it was listed
            continue
        compression, age = "unreadable", None
        tags: tuple[str, ...] = ()
        if len(header) >= HEADER_SIZE:
            magic, flag, stamp, _ttl = HEADER.unpack_from(header)
            magic &= ~SIGNED  # signed frames: same layout, a signature at the end
            if magic in (MAGIC, MAGIC_META) and flag in COMPRESSION_NAMES:  # with or without metadata
                compression, age = COMPRESSION_NAMES[flag], max(0.0, now - stamp / 1000.0)
            if magic == MAGIC_META:
                tags = _tags(header)
        preview = ""
        if preview_chars > 0:
            preview = _preview(cache, replies[i * step + 3], preview_chars)
        out.append(
            Entry(
                key=key,
                operation=operation,
                digest=digest,
                stored_bytes=length,
                compression=compression,
                ttl_left=pttl / 1000.0 if pttl >= 0 else None,
                age=age,
                in_memory=key in in_memory,
                preview=preview,
                tags=tags,
            )
        )
    return out


def _tags(head: bytes) -> tuple[str, ...]:
    """The tags in a frame's metadata, if the metadata fits in what was read (else none shown)."""
    try:
        meta, _ = read_meta(head)
    except CodecError:
        return ()
    tags = meta.get("t")
    return tuple(t for t in tags if isinstance(t, str)) if isinstance(tags, list) else ()


def _preview(cache: Any, data: bytes | None, chars: int) -> str:
    if data is None:
        return ""
    try:
        text = bytes(cache.codec.decode(data).payload).decode("utf-8", errors="replace")
    except CodecError:
        return "(not an aicache frame)"
    return text if len(text) <= chars else text[:chars] + "…"


def delete(cache: Any, keys: list[str], *, actor: str, reason: str = "") -> int:
    """Remove the selected entries (and their index members and memory-tier copies); recorded as
    one invalidation event of type ``keys`` whose context names the actor, like every admin action.
    ``ValueError`` if a key is not an entry key of this cache (nothing is removed then)."""
    ns = cache.ns
    if not keys:
        raise ValueError("select at least one entry")
    if len(keys) > MAX_PAGE_SIZE:
        raise ValueError(f"at most {MAX_PAGE_SIZE} entries at once")
    for key in keys:
        if not isinstance(key, str) or parse_key(ns, key) is None:
            raise ValueError(f"not an aicache entry key: {str(key)[:120]!r}")
    # The same context format as every other action (the reason is validated there too).
    ctx = actions.context(actions.Invalidation("all", reason=reason), actor=actor, via="admin")
    started = perf_counter()
    tier = cache.coherence
    tier.delete_keys(list(keys))
    progress = invalidation.Progress()
    status, fault = "success", ""
    try:
        # The same batch the invalidations use: UNLINK and the index members in one script.
        invalidation.unlink_entries(cache.redis, ns, [k.encode() for k in keys], progress)
        tier.delete_keys(list(keys))  # again: a read that raced the removal fills nothing
    except RedisError as exc:  # recorded as failed, then the view says Redis did not answer
        status, fault = "failed", type(exc).__name__
        raise
    finally:
        cache.monitor.record_invalidation_event(
            f"{len(keys)} selected entries",
            progress.removed,
            perf_counter() - started,
            "keys",
            ctx,
            status=status,
            reason=fault,
        )
    return progress.removed
