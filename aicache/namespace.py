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
    {prefix}!lock:{operation}:{digest}  single-flight lease of one entry
    {prefix}!events                     pub/sub: ``clear`` and ``w<key>`` (wake waiters)

Only entries and probes live under ``{prefix}:``, the prefix that client tracking watches and that
pattern invalidation scans; index, lock and generation traffic never reaches a listener.
"""

from __future__ import annotations

import re

_GLOB_SPECIAL = re.compile(r"([*?\[\]\\])")


def glob_escape(text: str) -> str:
    """``text`` as a literal inside a Redis MATCH pattern."""
    return _GLOB_SPECIAL.sub(r"\\\1", text)


class Namespace:
    __slots__ = ("_head", "events", "gen_all", "operations", "prefix", "tracking_prefix")

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.tracking_prefix = f"{prefix}:"
        self._head = len(prefix) + 1
        self.operations = f"{prefix}!ops"
        self.gen_all = f"{prefix}!gen"
        self.events = f"{prefix}!events"

    # ------------------------------------------------------------------ entries
    def operation_prefix(self, operation: str) -> str:
        return f"{self.prefix}:{operation}:"

    def entry(self, operation: str, digest: str) -> str:
        return f"{self.prefix}:{operation}:{digest}"

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

    def index(self, operation: str) -> str:
        return f"{self.prefix}!idx:{operation}"

    def drain(self, operation: str, token: str) -> str:
        return f"{self.prefix}!idx:{operation}:drain:{token}"

    def generation(self, operation: str) -> str:
        return f"{self.prefix}!gen:{operation}"

    def tag_index(self, tag: str) -> str:
        return f"{self.prefix}!tag:{tag}"

    def tag_generation(self, tag: str) -> str:
        return f"{self.prefix}!gen:tag:{tag}"

    def tag_drain(self, token: str) -> str:
        return f"{self.prefix}!drain:{token}"

    def drains(self, operation: str) -> str:
        return f"{self.prefix}!drains:{operation}"

    def tag_drains(self, tag: str) -> str:
        return f"{self.prefix}!drains!tag:{tag}"


# ---------------------------------------------------------------------- trained dictionaries
# Kept apart from Namespace (a small, separate addition): aicache.dictionaries only. Outside the
# tracked ``{prefix}:`` space, so invalidation never scans or removes them and no listener hears
# them; every command on them names one key.
#     {prefix}!zdict:{id}              a trained zstd dictionary (raw bytes), never rewritten
#     {prefix}!zdict!op:{operation}    the id of the dictionary the operation's writers use now
#     {prefix}!zdict!seq               INCR source of dictionary ids
def dictionary_key(prefix: str, dict_id: int) -> str:
    return f"{prefix}!zdict:{dict_id}"


def dictionary_pointer(prefix: str, operation: str) -> str:
    return f"{prefix}!zdict!op:{operation}"


def dictionary_sequence(prefix: str) -> str:
    return f"{prefix}!zdict!seq"
