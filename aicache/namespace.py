"""Every Redis name aicache uses, built here and nowhere else.

::

    {prefix}:{operation}:{digest}       an entry (the only names under the tracked prefix that
                                        carry two colons; neither part can hold a colon)
    {prefix}:!live!{process}!{seq}      a liveness probe: under the tracked prefix on purpose, so
                                        its invalidation message travels the path entries' do
    {prefix}!idx:{operation}            per-operation index: sorted set of entry keys by expiry
    {prefix}!idx:{operation}:drain:{id} an index being drained by an invalidation
    {prefix}!ops                        set of operations that have an index
    {prefix}!gen:{operation}            per-operation generation (fences in-flight computes)
    {prefix}!gen                        generation of "everything" (bumped by invalidate_all)
    {prefix}!tag:{tag}                  per-tag index: sorted set of entry keys by expiry
    {prefix}!gen:tag:{tag}              per-tag generation (``:`` cannot occur in an operation)
    {prefix}!drain:{token}              a tag index being drained
    {prefix}!drains:{op} / !drains!tag:{tag}  drains not finished (a fault midway): the next
                                        invalidation of that operation or tag finishes them
    {prefix}!sweep                      sorted set: index, drain and tag-generation names by the
                                        expiry of the last thing they hold; writes delete the dead
    {prefix}!lock:{operation}:{digest}  single-flight lease of one entry
    {prefix}!events                     pub/sub: ``clear`` and ``w<key>`` (wake waiters)

Indexes, drains and generations carry no TTL, so ``volatile-*`` eviction can never take an index
and leave its entries beyond an invalidation's reach; the sweep set bounds them instead.

Only entries and probes live under ``{prefix}:``, the prefix that client tracking watches and that
pattern invalidation scans; index, lock and generation traffic never reaches a listener.

**Redis Cluster** (``Namespace(prefix, clustered=True)``): a Lua script or a RENAME may only touch
keys of one hash slot, so the keyspace is cut into ``BUCKETS`` (16) buckets by the first hex digit
of an entry's digest, written as a hash tag: the entry ``{prefix}:{operation}:{3}fa9...`` and every
name a write or an invalidation of it must touch atomically (its operation's index, drain and drain
registry, the operations set, the generations of everything, of the operation and of each tag, the
tag indexes, its lease) end in ``:{3}`` (the lease carries the entry's own tag), so they share its
slot. Entries still spread over 16 slots (and so over the primaries); an invalidation touches each
bucket (16 small steps, pipelined per node). Generations are mirrored per bucket and every
invalidation bumps all 16 before removing anything, so the store script still checks its fence
atomically, in the entry's own slot (tests/unit/test_cluster_names.py; on a live cluster,
tests/topologies/test_cluster.py::test_single_flight_lease_and_fence_in_every_bucket). On one node
``bucket`` is ``""`` and every name is as above.
"""

from __future__ import annotations

import re

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis MATCH pattern."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


BUCKET_DIGITS = "0123456789abcdef"


def _tag(bucket: str) -> str:
    return f":{{{bucket}}}" if bucket else ""


class Namespace:
    __slots__ = ("_head", "buckets", "clustered", "events", "prefix", "tracking_prefix")

    def __init__(self, prefix: str, clustered: bool = False) -> None:
        self.prefix = prefix
        self.tracking_prefix = f"{prefix}:"
        self._head = len(prefix) + 1
        self.events = f"{prefix}!events"
        self.clustered = clustered
        # Every bucket an invalidation must visit ("" alone on one node).
        self.buckets: tuple[str, ...] = tuple(BUCKET_DIGITS) if clustered else ("",)

    def bucket(self, key: str | bytes) -> str:
        """The bucket (hash tag) of an entry key: ``""`` on one node."""
        if not self.clustered:
            return ""
        if isinstance(key, bytes):
            key = key.decode()
        start = key.find("{", self._head)
        return key[start + 1 : start + 2] if start >= 0 else ""

    def slotted_digest(self, digest: str) -> str:
        """The digest segment of an entry key: in a cluster its first digit becomes the hash tag."""
        return f"{{{digest[0]}}}{digest[1:]}" if self.clustered else digest

    @staticmethod
    def bucket_suffix(bucket: str) -> str:
        """What every per-bucket name ends with: ``":{b}"``, or ``""`` on one node."""
        return _tag(bucket)

    def operations(self, bucket: str = "") -> str:
        return f"{self.prefix}!ops{_tag(bucket)}"

    def gen_all(self, bucket: str = "") -> str:
        return f"{self.prefix}!gen{_tag(bucket)}"

    # ------------------------------------------------------------------ entries
    def operation_prefix(self, operation: str) -> str:
        return f"{self.prefix}:{operation}:"

    def entry(self, operation: str, digest: str) -> str:
        return f"{self.prefix}:{operation}:{self.slotted_digest(digest)}"

    def operation_of(self, key: str | bytes) -> str:
        """The operation segment of an entry key."""
        if isinstance(key, bytes):
            key = key.decode()
        return key[self._head :].partition(":")[0]

    def entries_match(self, operation_glob: str = "*") -> str:
        """SCAN MATCH pattern for the entries of operations matching ``operation_glob`` (a glob
        over operation names, already validated): probes never match (they have one colon)."""
        return f"{glob_escape(self.prefix)}:{operation_glob}:*"

    def is_entry(self, key: str) -> bool:
        return key.startswith(self.tracking_prefix) and key.count(":", self._head) == 1

    # ------------------------------------------------------------------ coordination
    def probe(self, process: str, seq: int) -> str:
        return f"{self.prefix}:!live!{process}!{seq}"

    def probe_prefix(self, process: str) -> str:
        return f"{self.prefix}:!live!{process}!"

    def lock(self, key: str) -> str:
        return f"{self.prefix}!lock:{key[self._head :]}"

    def index(self, operation: str, bucket: str = "") -> str:
        return f"{self.prefix}!idx:{operation}{_tag(bucket)}"

    def drain(self, operation: str, token: str, bucket: str = "") -> str:
        return f"{self.prefix}!idx:{operation}{_tag(bucket)}:drain:{token}"

    def generation(self, operation: str, bucket: str = "") -> str:
        return f"{self.prefix}!gen:{operation}{_tag(bucket)}"

    def tag_index(self, tag: str, bucket: str = "") -> str:
        return f"{self.prefix}!tag:{tag}{_tag(bucket)}"

    def tag_generation(self, tag: str, bucket: str = "") -> str:
        return f"{self.prefix}!gen:tag:{tag}{_tag(bucket)}"

    def tag_drain(self, token: str, bucket: str = "") -> str:
        return f"{self.prefix}!drain:{token}{_tag(bucket)}"

    def drains(self, operation: str, bucket: str = "") -> str:
        return f"{self.prefix}!drains:{operation}{_tag(bucket)}"

    def tag_drains(self, tag: str, bucket: str = "") -> str:
        return f"{self.prefix}!drains!tag:{tag}{_tag(bucket)}"

    def sweep(self, bucket: str = "") -> str:
        return f"{self.prefix}!sweep{_tag(bucket)}"


# ---------------------------------------------------------------------- trained dictionaries
# Kept apart from Namespace (a small, separate addition): aicache.dictionaries only. Outside the
# tracked ``{prefix}:`` space, so invalidation never scans or removes them and no listener hears
# them; every command on them names one key.
#     {prefix}!zdict:{id}              a trained zstd dictionary (raw bytes), never rewritten
#     {prefix}!zdict!op:{operation}    the id of the dictionary the operation's writers use now
def dictionary_key(prefix: str, dict_id: int) -> str:
    return f"{prefix}!zdict:{dict_id}"


def dictionary_pointer(prefix: str, operation: str) -> str:
    return f"{prefix}!zdict!op:{operation}"
