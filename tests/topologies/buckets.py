"""aicache's Redis Cluster layout on one plain redis-server: the ``buckets`` topology.

On one node every per-bucket name is built for the bucket ``""``, so a mistake in which bucket a
name is for (``ns.index(operation)`` where ``ns.index(operation, b)`` was meant) cannot show;
on a real cluster it can, but a cluster takes seconds to start (a new primary refuses writes for
its first 2 s). Here the cache believes it talks to a cluster (``OneNodeBuckets`` is a
``ClusterClient``: hash-tagged keys, sixteen buckets, every per-bucket path of
:mod:`aicache.invalidation`, no lean client) while its one raw client is django-redis's own on the
session's plain redis-server. A name built for the wrong bucket then names a key nobody else
reads, and ``OneSlotRedis`` refuses, with redis-py's own exceptions, what ``RedisCluster``
refuses before sending (a script or RENAME whose keys hash to several slots, a transaction across
slots, the commands a cluster pipeline blocks), so the shared guarantees fail on such a mistake in
a fraction of a second.

What it cannot tell stays with ``cluster``: several primaries (SCAN on each, redirects, failover,
the listener's watch per node), and a script touching a key it did not declare, which a node
refuses only when that key's slot is another node's."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import redis
from django_redis.client import DefaultClient
from redis.client import Pipeline
from redis.cluster import PIPELINE_BLOCKED_COMMANDS
from redis.crc import key_slot
from redis.exceptions import CrossSlotTransactionError, RedisClusterException

from aicache.cluster import ClusterClient


class OneNodeBuckets(ClusterClient):
    """``ClusterClient`` in name (aicache's cluster layout), ``DefaultClient`` in its connections."""

    get_next_client_index = DefaultClient.get_next_client_index
    connect = DefaultClient.connect
    disconnect = DefaultClient.disconnect


_SCRIPTS = {"EVAL", "EVALSHA"}
_RENAMES = {"RENAME", "RENAMENX"}
_SPLIT = {"DEL", "UNLINK", "EXISTS", "TOUCH"}  # split by slot by RedisCluster, one slot in a pipeline
_BLOCKED = {name for name in PIPELINE_BLOCKED_COMMANDS if " " not in name}  # EVALSHA, MGET, RENAME, SCAN...


def _keys(args: tuple[Any, ...], pipelined: bool) -> list[Any]:
    """The keys that must share a slot: a script's, RENAME's two, a pipelined DEL's; else the
    first argument (one key, or none that matters)."""
    name = str(args[0]).upper()
    if name in _SCRIPTS:
        return list(args[3 : 3 + int(args[2])])
    if name in _RENAMES or (pipelined and name in _SPLIT):
        return list(args[1:])
    return list(args[1:2])


def _one_slot(command: str, keys: Iterable[Any], error: type[Exception] = RedisClusterException) -> None:
    slots = {key_slot(key if isinstance(key, bytes) else str(key).encode()) for key in keys}
    if len(slots) > 1:
        raise error(f"{command} - all keys must map to the same key slot")


class OneSlotPipeline(Pipeline):
    """redis-py's pipeline, refusing what ``RedisCluster``'s refuses: the commands it blocks in a
    pipeline (EVALSHA, RENAME, MGET, SCAN, ...), DEL or UNLINK of several keys, a pipelined command
    whose keys span slots, and a transaction (MULTI) whose commands' keys do."""

    def pipeline_execute_command(self, *args: Any, **options: Any) -> Pipeline:
        name = str(args[0]).upper()
        if name in _BLOCKED:
            raise RedisClusterException(f"ERROR: Calling pipelined function {name.lower()} is blocked")
        if name in ("DEL", "UNLINK") and len(args) > 2:
            raise RedisClusterException(f"{name} of multiple keys is not implemented in pipeline command")
        return super().pipeline_execute_command(*args, **options)

    def execute(self, raise_on_error: bool = True) -> list[Any]:
        try:
            for args, _ in self.command_stack:
                _one_slot(str(args[0]), _keys(args, pipelined=True))
            if self.transaction or self.explicit_transaction:
                keys = [key for args, _ in self.command_stack for key in _keys(args, pipelined=True)]
                _one_slot("MULTI", keys, CrossSlotTransactionError)
        except RedisClusterException:
            self.reset()
            raise
        return super().execute(raise_on_error)


class OneSlotRedis(redis.Redis):
    """redis-py's client, refusing what ``RedisCluster`` refuses before sending: keys of several
    slots in one script or RENAME, and in a pipeline what ``OneSlotPipeline`` refuses. A multi-key
    DEL, UNLINK or EXISTS passes (``RedisCluster`` splits it by slot), and so does MGET (aicache's
    ``Cluster.mget`` splits it). Like ``RedisCluster.pipeline``, a pipeline is no transaction
    unless asked."""

    def execute_command(self, *args: Any, **options: Any) -> Any:
        _one_slot(str(args[0]), _keys(args, pipelined=False))
        return super().execute_command(*args, **options)

    def pipeline(self, transaction: bool | None = None, shard_hint: Any = None) -> OneSlotPipeline:
        return OneSlotPipeline(self.connection_pool, self.response_callbacks, transaction, shard_hint)
