"""aicache's Redis Cluster layout on one plain redis-server: the ``buckets`` topology.

On one node every per-bucket name is built for the bucket ``""``, so a mistake in which bucket a
name is for (``ns.index(operation)`` where ``ns.index(operation, b)`` was meant) cannot show;
on a real cluster it can, but a cluster takes seconds to start (a new primary refuses writes for
its first 2 s). Here the cache believes it talks to a cluster (``OneNodeBuckets`` is a
``ClusterClient``: hash-tagged keys, sixteen buckets, every per-bucket path of
:mod:`aicache.invalidation`, no lean client) while its one raw client is django-redis's own on the
session's plain redis-server. A name built for the wrong bucket then names a key nobody else
reads, and ``OneSlotRedis`` refuses what a cluster node refuses (a script, MULTI or RENAME whose
keys hash to several slots), so the shared guarantees fail on such a mistake in a fraction of a
second. What needs several primaries (SCAN on each, redirects, failover) stays with ``cluster``."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis
from django_redis.client import DefaultClient
from redis.client import Pipeline
from redis.crc import key_slot
from redis.exceptions import ResponseError

from aicache.cluster import ClusterClient


class OneNodeBuckets(ClusterClient):
    """``ClusterClient`` in name (aicache's cluster layout), ``DefaultClient`` in its connections."""

    get_next_client_index = DefaultClient.get_next_client_index
    connect = DefaultClient.connect
    disconnect = DefaultClient.disconnect


def _keys(args: tuple[Any, ...]) -> list[Any]:
    """The keys a cluster node checks for one slot: a script's, or RENAME's two."""
    name = str(args[0]).upper()
    if name in ("EVAL", "EVALSHA"):
        return list(args[3 : 3 + int(args[2])])
    if name in ("RENAME", "RENAMENX"):
        return list(args[1:3])
    return []


def _one_slot(command: str, keys: Iterable[Any]) -> None:
    slots = {key_slot(key if isinstance(key, bytes) else str(key).encode()) for key in keys}
    if len(slots) > 1:
        raise ResponseError(f"CROSSSLOT Keys in request don't hash to the same slot ({command})")


class OneSlotPipeline(Pipeline):
    def execute(self, raise_on_error: bool = True) -> list[Any]:
        for args, _ in self.command_stack:
            _one_slot(str(args[0]), _keys(args))
        if self.transaction:  # MULTI: every command's keys (the first argument of a key command)
            _one_slot("MULTI", [key for args, _ in self.command_stack for key in _keys(args) or args[1:2]])
        return super().execute(raise_on_error)


class OneSlotRedis(redis.Redis):
    """redis-py's client, refusing what a cluster node refuses: keys of several slots in one script,
    RENAME or MULTI (multi-key DEL, UNLINK and MGET are split by slot by redis-py's ``RedisCluster``,
    so they pass here too)."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        _one_slot(str(args[0]), _keys(args))
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool = True, shard_hint: Any = None) -> OneSlotPipeline:
        return OneSlotPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
