"""Removing entries without blocking Redis: no KEYS, only bounded SCANs, ZPOPMINs and UNLINKs.

Per-operation index: every write also records its key in a sorted set ``{prefix}!idx:{operation}``
scored by expiry time (expired members are trimmed on each write, and the index itself expires
with its longest-lived entry). Invalidating an operation RENAMEs that index to a private drain key
(atomically: writes that land meanwhile start a fresh index and survive) and pops it in batches,
UNLINKing the popped keys, so the cost follows that operation's entries, not the keyspace. A
generation number in the key would make invalidation O(1), but could not say how many entries it
removed and would leave dead entries occupying Redis memory until their TTLs ran out.

The index keys sit outside ``{prefix}:`` on purpose: client tracking (coherence) watches that
prefix, and pattern invalidation scans it; neither should see index traffic.
"""

from __future__ import annotations

import re
import time
import uuid
from typing import Any

from redis.exceptions import ResponseError

UNLINK_BATCH = 500
SCAN_COUNT = 1000
_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis MATCH pattern."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


def index_key(prefix: str, operation: str) -> str:
    return f"{prefix}!idx:{operation}"


def operations_key(prefix: str) -> str:
    """A set of the operations that have an index: lets readers find them without a SCAN."""
    return f"{prefix}!ops"


def index_write(pipe: Any, prefix: str, operation: str, key: str, ttl: int) -> None:
    """Queue the index upkeep of one write on ``pipe`` (same round trip as the SET)."""
    idx = index_key(prefix, operation)
    now_ms = int(time.time() * 1000)
    pipe.sadd(operations_key(prefix), operation)
    pipe.zadd(idx, {key: now_ms + ttl * 1000})
    pipe.zremrangebyscore(idx, "-inf", now_ms)
    pipe.expire(idx, ttl, nx=True)
    pipe.expire(idx, ttl, gt=True)


class Progress:
    """How many keys were removed so far; survives a fault midway, so counts stay exact."""

    __slots__ = ("removed",)

    def __init__(self) -> None:
        self.removed = 0


def live_entries(client: Any, prefix: str, operations: list[str] | None = None) -> int:
    """Unexpired aicache entries (of ``operations``, default all), from the indexes (ZCOUNT by
    expiry): no scan of the keyspace."""
    now_ms = int(time.time() * 1000)
    if operations is None:
        operations = sorted(op.decode() for op in client.smembers(operations_key(prefix)))
    pipe = client.pipeline(transaction=False)
    for operation in operations:
        pipe.zcount(index_key(prefix, operation), now_ms, "+inf")
    return sum(pipe.execute()) if operations else 0


def drop_indexes(client: Any, prefix: str) -> None:
    """Remove every index and the set naming them (``invalidate_all``)."""
    operations = [op.decode() for op in client.smembers(operations_key(prefix))]
    client.unlink(operations_key(prefix), *(index_key(prefix, op) for op in operations))


def scan_unlink(client: Any, match: str, progress: Progress, prefix: str | None = None) -> None:
    """UNLINK every key matching ``match`` in batches of 500 (SCAN, never KEYS). With ``prefix``,
    the removed keys also leave their operation's index, so index counts stay exact."""
    batch: list[bytes] = []
    for key in client.scan_iter(match=match, count=SCAN_COUNT):
        batch.append(key)
        if len(batch) >= UNLINK_BATCH:
            _unlink_batch(client, batch, progress, prefix)
            batch = []
    if batch:
        _unlink_batch(client, batch, progress, prefix)


def _unlink_batch(client: Any, batch: list[bytes], progress: Progress, prefix: str | None) -> None:
    if prefix is None:
        progress.removed += client.unlink(*batch)
        return
    by_operation: dict[str, list[bytes]] = {}
    head = len(prefix) + 1
    for key in batch:
        by_operation.setdefault(key[head:].partition(b":")[0].decode(), []).append(key)
    pipe = client.pipeline(transaction=False)
    pipe.unlink(*batch)
    for operation, keys in by_operation.items():
        pipe.zrem(index_key(prefix, operation), *keys)
    progress.removed += pipe.execute()[0]


def scan_count(client: Any, match: str, progress: Progress) -> None:
    """Count the keys matching ``match`` (SCAN, never KEYS); ``progress.removed`` holds the count."""
    for _ in client.scan_iter(match=match, count=SCAN_COUNT):
        progress.removed += 1


def drain_index(client: Any, prefix: str, operation: str, max_ttl: int, progress: Progress) -> None:
    """UNLINK every key recorded in the operation's index (members already gone count 0)."""
    idx = index_key(prefix, operation)
    drain = f"{idx}:drain:{uuid.uuid4().hex}"
    try:
        client.rename(idx, drain)
    except ResponseError as exc:
        if "no such key" in str(exc).lower():
            return  # nothing of this operation is cached
        raise
    client.expire(drain, max_ttl)  # a crash mid-drain leaves nothing behind for long
    while True:
        popped = client.zpopmin(drain, UNLINK_BATCH)
        if not popped:
            break
        progress.removed += client.unlink(*(member for member, _ in popped))
