"""Writing and removing entries without blocking Redis and without losing to a race.

**Writes** go through one Lua script (:data:`STORE_SCRIPT`): SET the entry, record it in its
operation's index (a sorted set scored by expiry, trimmed of expired members; no TTL, so
``volatile-*`` eviction never takes it, and deleted through the sweep set once all its members
expired) and, for computed results, check the fence first. Being one script, a write
and its index entry can never be separated by an invalidation (test_invalidation_races.py).

**Fencing.** ``get_or_compute`` reads the generations of "everything" and of its operation before
calling ``compute``; every invalidation bumps the generations it covers before removing anything.
The store compares them atomically, so a compute that started before an invalidation never
stores its result after it (the caller still gets the result; it is not cached).

**Removal** never blocks Redis: no KEYS, only bounded SCANs, ZPOPMINs and UNLINKs in batches of
500. Invalidating an operation RENAMEs its index to a private drain key (writes landing meanwhile
start a fresh index and survive) and pops it in batches, so the cost follows that operation's
entries, not the keyspace; the count is exact (UNLINK counts what existed). A pattern or
``invalidate_all`` SCANs; each batch leaves the keyspace and the indexes in one script, so index
counts stay exact. We chose the index over a generation number in the key because a generation
cannot say how many entries it removed and leaves dead entries in Redis memory until their TTLs.

**Redis Cluster.** Every step above touches one hash slot at a time: the namespace's buckets
(aicache.namespace) put an entry, its indexes, drains and mirrored generations in one slot, so the
store script, each RENAME and each batch's removal script stay single-slot; fencing bumps the
generations of every bucket before removing anything, and removal walks every bucket. SCAN runs on
every primary (redis-py's ``RedisCluster.scan_iter``); counts stay exact while slots migrate
(tests/topologies/test_cluster.py). On one node there is one bucket, ``""``.
"""

from __future__ import annotations

import time
import uuid
from typing import Any

from aicache.namespace import Namespace

UNLINK_BATCH = 500
SCAN_COUNT = 1000
SWEEP_PER_WRITE = 4  # dead index/drain keys a write deletes at most

# KEYS: entry, index, operations set, generation of everything, generation of the operation,
#       then n tag indexes and n tag generations, then the bucket's sweep set
# ARGV: data, ttl seconds, now ms, operation, fenced ("1"/"0"), expected gen all, expected gen op,
#       n, then n expected tag generations
# Indexes carry no TTL, so volatile-* eviction never takes one and leaves its entries beyond the
# reach of an invalidation; the sweep set (score: the latest expiry of anything in the key) lets
# each write delete up to SWEEP_PER_WRITE keys whose every member has expired, so indexes of
# operations and tags nobody writes any more still go.
STORE_LUA = """
local n = tonumber(ARGV[8])
if ARGV[5] == '1' then
  local a = redis.call('GET', KEYS[4]) or ''
  local o = redis.call('GET', KEYS[5]) or ''
  if a ~= ARGV[6] or o ~= ARGV[7] then return 0 end
  for i = 1, n do
    if (redis.call('GET', KEYS[5 + n + i]) or '') ~= ARGV[8 + i] then return 0 end
  end
end
local ttl = tonumber(ARGV[2])
local now = tonumber(ARGV[3])
local sweep = KEYS[6 + 2 * n]
redis.call('SET', KEYS[1], ARGV[1], 'EX', ttl)
redis.call('SADD', KEYS[3], ARGV[4])
for i = 0, n do
  local idx = KEYS[2]
  if i > 0 then idx = KEYS[5 + i] end
  redis.call('ZADD', idx, now + ttl * 1000, KEYS[1])
  redis.call('ZREMRANGEBYSCORE', idx, '-inf', now)
  redis.call('PERSIST', idx)
  redis.call('ZADD', sweep, 'GT', now + ttl * 1000, idx)
end
local dead = redis.call('ZRANGEBYSCORE', sweep, '-inf', now, 'LIMIT', 0, SWEEP_PER_WRITE)
for _, key in ipairs(dead) do
  redis.call('DEL', key)
  redis.call('ZREM', sweep, key)
end
return 1
""".replace("SWEEP_PER_WRITE", str(SWEEP_PER_WRITE))


# A batch of a tag's index: only the entries whose frame still carries the tag go (a key rewritten
# without it keeps a stale index member, which must not take the new entry with it). Mode "unlink"
# UNLINKs them, drops them from their operation's index and the batch from the drain; "list"
# returns them. Frame layout: aicache.codec (magic, meta length at bytes 15-16, meta JSON after).
# KEYS: the batch (one bucket). ARGV: tag, key prefix, drain key ("" for none), mode, the bucket's
# index suffix (":{b}" in a cluster, "" on one node).
TAG_BATCH_LUA = """
local tag, prefix, drain, mode = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local found, n = {}, 0
for _, key in ipairs(KEYS) do
  local head = redis.call('GETRANGE', key, 0, 15)
  local carries = false
  if #head == 16 and (string.byte(head, 1) == 162 or string.byte(head, 1) == 178) then
    local len = string.byte(head, 15) * 256 + string.byte(head, 16)
    local ok, meta = pcall(cjson.decode, redis.call('GETRANGE', key, 16, 15 + len))
    if ok and type(meta) == 'table' and type(meta['t']) == 'table' then
      for _, t in ipairs(meta['t']) do
        if t == tag then carries = true break end
      end
    end
  end
  if carries then
    if mode == 'unlink' then
      n = n + redis.call('UNLINK', key)
      local rest = string.sub(key, #prefix + 2)
      local colon = string.find(rest, ':', 1, true)
      if colon then
        redis.call('ZREM', prefix .. '!idx:' .. string.sub(rest, 1, colon - 1) .. (ARGV[5] or ''), key)
      end
    else
      table.insert(found, key)
    end
  end
  if mode == 'unlink' and drain ~= '' then redis.call('ZREM', drain, key) end
end
if mode == 'unlink' then return n end
return found
"""


# One batch of entries leaves the keyspace and its indexes atomically (one slot in a cluster).
# KEYS: n entries, then each entry's operation index, then (optional) the drain.
# ARGV: n, "1" when a drain key follows.
UNLINK_LUA = """
local n = tonumber(ARGV[1])
local removed = redis.call('UNLINK', unpack(KEYS, 1, n))
for i = 1, n do redis.call('ZREM', KEYS[n + i], KEYS[i]) end
if ARGV[2] == '1' then redis.call('ZREM', KEYS[2 * n + 1], unpack(KEYS, 1, n)) end
return removed
"""


# An index becomes a drain, named in its registry, in one step (one slot): a fault can never leave
# a drain nobody names. Neither carries a TTL (eviction must not take them); the bucket's sweep set
# deletes them once everything they name has expired, if no invalidation finished them first.
# KEYS: index, drain, registry, sweep. Returns 0 when nothing is indexed.
DRAIN_START_LUA = """
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('RENAME', KEYS[1], KEYS[2])
redis.call('PERSIST', KEYS[2])
local top = redis.call('ZRANGE', KEYS[2], -1, -1, 'WITHSCORES')
redis.call('SADD', KEYS[3], KEYS[2])
redis.call('PERSIST', KEYS[3])
if top[2] then
  redis.call('ZADD', KEYS[4], 'GT', top[2], KEYS[2])
  redis.call('ZADD', KEYS[4], 'GT', top[2], KEYS[3])
end
return 1
"""


def _script(client: Any, source: str) -> Any:
    """One registered script per client and source (redis-py's Script caches its sha)."""
    scripts = client.__dict__.setdefault("_aicache_scripts", {})
    script = scripts.get(source)
    if script is None:
        script = scripts[source] = client.register_script(source)
    return script


class Progress:
    """How many keys were removed so far; survives a fault midway, so counts stay exact. With
    ``collect``, also which keys were asked to go (so the caller can drop them locally)."""

    __slots__ = ("keys", "removed")

    def __init__(self, collect: bool = False) -> None:
        self.removed = 0
        self.keys: list[bytes] | None = [] if collect else None


Fence = tuple[str, ...]  # generations as read: everything, the operation, then each tag


def read_fence(
    client: Any, ns: Namespace, operation: str, tags: tuple[str, ...] = (), key: str = ""
) -> Fence:
    """The generations a store of ``key`` will compare (its bucket's copies in a cluster)."""
    b = ns.bucket(key)
    values = client.mget(ns.gen_all(b), ns.generation(operation, b), *(ns.tag_generation(t, b) for t in tags))
    return tuple((value or b"").decode() for value in values)


def store(
    script: Any,
    client: Any,
    ns: Namespace,
    operation: str,
    key: str,
    data: bytes,
    ttl: int,
    fence: Fence | None,
    tags: tuple[str, ...] = (),
) -> bool:
    """SET + indexes in one step; with ``fence``, only if no invalidation covering the entry's
    operation, tags or everything happened since it was read."""
    n = len(tags)
    args: list[Any] = [data, ttl, int(time.time() * 1000), operation]
    if fence is not None:
        args += ["1", fence[0], fence[1], n, *fence[2:]]
    else:
        args += ["0", "", "", n, *([""] * n)]
    b = ns.bucket(key)
    keys = [key, ns.index(operation, b), ns.operations(b), ns.gen_all(b), ns.generation(operation, b)]
    keys += [ns.tag_index(t, b) for t in tags] + [ns.tag_generation(t, b) for t in tags]
    keys.append(ns.sweep(b))
    # aicache.lean.LeanClient: EVALSHA without Script.__call__ (a 5 KB store 137 -> 116 us, pinned)
    run = getattr(client, "run_script", None)
    if run is not None:
        return bool(run(script, keys, args))
    return bool(script(keys=keys, args=args, client=client))


def bump(
    client: Any, ns: Namespace, operations: list[str] | None, tags: tuple[str, ...] = (), ttl: int = 0
) -> None:
    """Fence in-flight computes: of these operations and tags, or (``None``) of everything. Tag
    generations go after ``ttl`` (the longest entry TTL; tags can be per document) through the
    bucket's sweep set, never by a TTL: an evicted generation could let a stale compute store."""
    if operations is None and not tags and not ns.clustered:
        client.incr(ns.gen_all())
        return
    now_ms = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    for b in ns.buckets:
        if operations is None and not tags:
            pipe.incr(ns.gen_all(b))
        for operation in operations or ():
            pipe.incr(ns.generation(operation, b))
        for tag in tags:
            pipe.incr(ns.tag_generation(tag, b))
            if ttl:
                pipe.persist(ns.tag_generation(tag, b))
                pipe.zadd(ns.sweep(b), {ns.tag_generation(tag, b): now_ms + ttl * 1000}, gt=True)
    pipe.execute()


def known_operations(client: Any, ns: Namespace) -> list[str]:
    if not ns.clustered:
        return sorted(op.decode() for op in client.smembers(ns.operations()))
    pipe = client.pipeline(transaction=False)
    for b in ns.buckets:
        pipe.smembers(ns.operations(b))
    return sorted({op.decode() for members in pipe.execute() for op in members})


def live_entries(client: Any, ns: Namespace, operations: list[str]) -> int:
    """Unexpired entries of ``operations``, from their indexes (ZCOUNT by expiry): no scan of the
    keyspace, one round trip (none for no operation: redis-py sends an empty pipeline nowhere)."""
    now_ms = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    for operation in operations:
        for b in ns.buckets:
            pipe.zcount(ns.index(operation, b), now_ms, "+inf")
    return sum(pipe.execute())


def live_all(client: Any, ns: Namespace) -> int:
    """Live entries of every operation, from the indexes and, for an operation whose drain a fault
    interrupted, from those drains too (``live_of_operation``): what the indexes let
    ``invalidate_all`` remove now. One pipeline when no drain is pending."""
    operations = known_operations(client, ns)
    if not operations:
        return 0
    pipe = client.pipeline(transaction=False)
    for operation in operations:
        for b in ns.buckets:
            pipe.exists(ns.drains(operation, b))
    pending = pipe.execute()
    n = len(ns.buckets)
    interrupted = [op for i, op in enumerate(operations) if any(pending[i * n : (i + 1) * n])]
    calm = [op for op in operations if op not in interrupted]
    live = live_entries(client, ns, calm)
    return live + sum(live_of_operation(client, ns, operation) for operation in interrupted)


def scan_unlink(client: Any, ns: Namespace, match: str, progress: Progress) -> None:
    """UNLINK every entry matching ``match`` in batches of 500 (SCAN, never KEYS); each batch
    also leaves its operations' indexes, in the same MULTI."""
    batch: list[bytes] = []
    for key in client.scan_iter(match=match, count=SCAN_COUNT):
        batch.append(key)
        if len(batch) >= UNLINK_BATCH:
            unlink_entries(client, ns, batch, progress)
            batch = []
    if batch:
        unlink_entries(client, ns, batch, progress)


def unlink_entries(
    client: Any, ns: Namespace, batch: list[bytes], progress: Progress, drain: str | None = None
) -> None:
    """UNLINK ``batch`` and remove it from its operations' indexes (and from ``drain``) in one
    script per bucket (one slot): a fault leaves all of a bucket's part in place, to be retried,
    never entries nobody indexes."""
    if progress.keys is not None:
        progress.keys.extend(batch)
    by_bucket: dict[str, list[bytes]] = {}
    for key in batch:
        by_bucket.setdefault(ns.bucket(key), []).append(key)
    script = _script(client, UNLINK_LUA)
    for b, keys in by_bucket.items():
        indexes = [ns.index(ns.operation_of(key), b) for key in keys]
        tail = [drain] if drain is not None else []
        progress.removed += script(
            keys=[*keys, *indexes, *tail], args=[len(keys), "1" if tail else "0"], client=client
        )


def scan_count(client: Any, match: str, progress: Progress) -> None:
    """Count the keys matching ``match`` (SCAN, never KEYS); ``progress.removed`` holds the count."""
    for _ in client.scan_iter(match=match, count=SCAN_COUNT):
        progress.removed += 1


def drain_tag(client: Any, ns: Namespace, tag: str, progress: Progress) -> None:
    """UNLINK every entry that still carries ``tag``; each batch also leaves its operations'
    indexes (one script), so per-operation counts stay exact. An entry under several drained tags
    counts once: UNLINK counts only what existed. A key rewritten without the tag survives."""
    script = _script(client, TAG_BATCH_LUA)
    token = uuid.uuid4().hex

    def batch(members: list[bytes], drain: str, b: str) -> None:
        if progress.keys is not None:
            progress.keys.extend(members)
        progress.removed += script(
            keys=members, args=[tag, ns.prefix, drain, "unlink", ns.bucket_suffix(b)], client=client
        )

    parts = [(b, ns.tag_index(tag, b), ns.tag_drain(token, b), ns.tag_drains(tag, b)) for b in ns.buckets]
    _drain(client, ns, parts, progress, batch)


def live_tagged(client: Any, ns: Namespace, tags: tuple[str, ...]) -> int:
    """Distinct live entries that still carry any of ``tags`` (checked against their frames): in
    the tag indexes and in the tag drains a fault interrupted, which the next invalidation finishes
    (test_invalidation_races.py::test_count_tags_sees_a_tag_drain_a_fault_left_half_done)."""
    script = _script(client, TAG_BATCH_LUA)
    now_ms = int(time.time() * 1000)
    parts = [(tag, b) for tag in tags for b in ns.buckets]
    pipe = client.pipeline(transaction=False)
    for tag, b in parts:
        pipe.smembers(ns.tag_drains(tag, b))
    sources: dict[str, str] = {}  # a tag index or drain -> its tag
    for (tag, b), pending in zip(parts, pipe.execute(), strict=True):
        sources[ns.tag_index(tag, b)] = tag
        sources.update((drain.decode(), tag) for drain in sorted(pending))
    carrying: set[bytes] = set()
    for source, members in _read_sorted(client, dict.fromkeys(sources, now_ms)).items():
        for i in range(0, len(members), UNLINK_BATCH):
            keys = [member for member, _ in members[i : i + UNLINK_BATCH]]
            carrying.update(
                script(keys=keys, args=[sources[source], ns.prefix, "", "list", ""], client=client)
            )
    return len(carrying)


def drain_index(client: Any, ns: Namespace, operation: str, progress: Progress) -> None:
    """UNLINK every key recorded in the operation's index (members already gone count 0)."""
    token = uuid.uuid4().hex
    parts = [
        (b, ns.index(operation, b), ns.drain(operation, token, b), ns.drains(operation, b))
        for b in ns.buckets
    ]
    _drain(client, ns, parts, progress)


def _drain(
    client: Any,
    ns: Namespace,
    parts: list[tuple[str, str, str, str]],
    progress: Progress,
    batch: Any = None,
) -> None:
    """For each bucket's ``(bucket, index, drain, registry)``: finish any drain a fault interrupted
    earlier; then RENAME every bucket's live index to its drain (writes landing meanwhile start
    fresh indexes and survive) and only then remove the drains' members in batches. Members leave
    a drain only in the script that UNLINKs them, so a fault midway orphans nothing: the drain
    stays named in its registry and the next invalidation finishes it (or, if none comes, the
    sweep set deletes it once its members have expired)."""
    if batch is None:

        def batch(members: list[bytes], drain: str, b: str) -> None:
            unlink_entries(client, ns, members, progress, drain)

    for b, _, _, registry in parts:
        for leftover in sorted(client.smembers(registry)):
            _drain_members(client, leftover.decode(), registry, b, batch)
    start = _script(client, DRAIN_START_LUA)
    renamed = []
    for b, index, drain, registry in parts:
        if start(keys=[index, drain, registry, ns.sweep(b)], client=client):
            renamed.append((b, drain, registry))
    for b, drain, registry in renamed:
        _drain_members(client, drain, registry, b, batch)


def _drain_members(client: Any, drain: str, registry: str, b: str, batch: Any) -> None:
    while True:
        members = client.zrange(drain, 0, UNLINK_BATCH - 1)
        if not members:
            break
        batch(members, drain, b)
    client.srem(registry, drain)


def _read_sorted(client: Any, sources: dict[str, Any]) -> dict[str, list[tuple[bytes, float]]]:
    """Every member (with its score) of each sorted set in ``sources`` scored from its value up,
    UNLINK_BATCH per set and round trip: one pipeline a round, however many sets (and buckets)."""
    found: dict[str, list[tuple[bytes, float]]] = {source: [] for source in sources}
    pending, start = list(sources), 0
    while pending:
        pipe = client.pipeline(transaction=False)
        for source in pending:
            pipe.zrangebyscore(
                source, sources[source], "+inf", start=start, num=UNLINK_BATCH, withscores=True
            )
        replies = pipe.execute()
        for source, members in zip(pending, replies, strict=True):
            found[source].extend(members)
        pending = [
            source for source, members in zip(pending, replies, strict=True) if len(members) == UNLINK_BATCH
        ]
        start += UNLINK_BATCH
    return found


def live_of_operation(client: Any, ns: Namespace, operation: str) -> int:
    """Distinct live entries of ``operation``: in its index and in the drains a fault interrupted,
    which the next invalidation finishes (what ``invalidate_by_operation`` would remove now). A
    bucket with no such drain is counted by ZCOUNT; one with drains by its members: a key
    rewritten after the drain began is in both but counts once, with the expiry of its last write
    (the index's score), and a drain member whose expiry passed counts 0, as UNLINK will
    (test_invalidation_races.py::test_count_by_operation_is_exact_after_a_fault_midway)."""
    now_ms = int(time.time() * 1000)
    pipe = client.pipeline(transaction=False)
    for b in ns.buckets:
        pipe.smembers(ns.drains(operation, b))
    registries = pipe.execute()
    pipe = client.pipeline(transaction=False)
    sources: dict[str, Any] = {}
    indexes = []
    for b, drains in zip(ns.buckets, registries, strict=True):
        if not drains:
            pipe.zcount(ns.index(operation, b), now_ms, "+inf")
            continue
        indexes.append(ns.index(operation, b))
        sources[indexes[-1]] = "-inf"  # all of it: a member it holds, live or not, is decided here
        sources.update((drain.decode(), now_ms) for drain in drains)
    live = sum(pipe.execute())
    if not sources:
        return live
    members = _read_sorted(client, sources)
    indexed = {member for index in indexes for member, _ in members[index]}
    counted = {member for index in indexes for member, score in members[index] if score >= now_ms}
    for source in sources.keys() - set(indexes):
        counted.update(member for member, _ in members[source] if member not in indexed)
    return live + len(counted)
