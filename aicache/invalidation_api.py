"""The invalidation half of ``AIResponseCache``'s public API (mixed into the backend).

Each method first fences what it covers (in-flight computes of those operations will not store),
then removes from Redis, and drops the matching keys from this process's memory tier itself: the
caller's next read never sees what it just invalidated, whatever the listener is doing. Other
processes' tiers learn it from Redis's invalidation messages. Counts are exact, also when Redis
fails midway (what was removed before the fault counts).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from fnmatch import fnmatchcase
from typing import Any

from aicache import invalidation
from aicache.instrument import timed_invalidation
from aicache.invalidation import Progress
from aicache.keys import validate_operation
from aicache.request import check_tags

MAX_PATTERN_LENGTH = 256
MAX_CONTEXT_LENGTH = 1000
OPERATION_GLOB_RE = re.compile(rf"[a-z0-9_\-*?\[\]^]{{1,{MAX_PATTERN_LENGTH}}}")


def operation_glob(pattern: Any) -> str:
    """``pattern`` checked as a glob over operation names ([a-z0-9_-] plus ``* ? [ ] ^``)."""
    if not isinstance(pattern, str):
        raise TypeError(f"pattern must be a str, got {type(pattern).__name__}")
    glob = pattern[:-1] if pattern.endswith(":") else pattern
    if not OPERATION_GLOB_RE.fullmatch(glob):
        raise ValueError(
            f"pattern must be a glob over operation names: 1-{MAX_PATTERN_LENGTH} characters of "
            f"[a-z0-9_-] and * ? [ ] ^, got {pattern!r}; use invalidate_all() for everything"
        )
    return glob


def operation_matcher(glob: str) -> Callable[[str], bool]:
    """Python's side of a Redis glob: Redis's ``[^...]`` is fnmatch's ``[!...]``."""
    translated = glob.replace("[^", "[!")
    return lambda operation: fnmatchcase(operation, translated)


def check_context(operation_context: Any) -> str:
    if not isinstance(operation_context, str):
        raise TypeError(f"operation_context must be a str, got {type(operation_context).__name__}")
    if len(operation_context) > MAX_CONTEXT_LENGTH:
        raise ValueError(f"operation_context is longer than {MAX_CONTEXT_LENGTH} characters")
    return operation_context


class InvalidationMixin:
    # Provided by AIResponseCache.
    ns: Any
    redis: Any
    _max_ttl: int
    _state: Any

    def _begin_invalidation(self) -> None:
        self._check_config()  # type: ignore[attr-defined]
        self._state.begin_call()

    def _fence(self, operations: list[str] | None) -> None:
        self.guarded("fence", None, invalidation.bump, self.redis, self.ns, operations)  # type: ignore[attr-defined]

    def _drop_local(self, match: Callable[[str], bool], progress: Progress | None = None) -> None:
        """Drop matching keys from this process's tier, bumping their versions. Called before the
        Redis removal and again after it (with the keys it removed), so a read that raced the
        removal cannot leave the old value behind for the caller's next read
        (test_invalidation_races.py::test_own_invalidation_wins_against_a_racing_read)."""
        ns = self.ns
        tier = self._state.coherence
        tier.delete_where(lambda key: ns.is_entry(key) and match(ns.operation_of(key)))
        if progress is not None and progress.keys:
            tier.delete_keys([k.decode() for k in progress.keys])

    @timed_invalidation("pattern", lambda pattern, operation_context="": (pattern, operation_context))
    def invalidate_pattern(self, pattern: str, operation_context: str = "") -> int:
        """Remove the entries of every operation whose name matches ``pattern``, a Redis-style glob
        over the operation segment of the key (``*``, ``?``, ``[...]``): ``"summarize"``,
        ``"summ*"``, ``"qa_v[12]"``, ``"*"``. A trailing ``:`` is ignored (the seed's
        ``"summarize:"``). A pattern never matches inside a digest: keys are
        ``{prefix}:{operation}:{hex digest}`` and neither part holds a ``:``."""
        glob = operation_glob(pattern)
        check_context(operation_context)
        self._begin_invalidation()
        match = operation_matcher(glob)
        # Fence every in-flight compute: a glob can name operations nobody has stored yet, and
        # Python's reading of a glob may differ from Redis's at the edges ([z-a]).
        self._fence(None)
        self._drop_local(match)
        progress = Progress(collect=True)
        ns = self.ns

        def remove() -> None:
            if ns.clustered:
                # A key migrating between primaries while SCAN walks them can be missed by both
                # nodes' cursors; the indexes (renamed per bucket, in the entries' own slots) are not.
                for operation in invalidation.known_operations(self.redis, ns):
                    if match(operation):
                        invalidation.drain_index(self.redis, ns, operation, progress)
            invalidation.scan_unlink(self.redis, ns, ns.entries_match(glob), progress)

        self.guarded("invalidate", None, remove)  # type: ignore[attr-defined]
        self._drop_local(match, progress)
        return progress.removed

    @timed_invalidation("operation", lambda operation, operation_context="": (operation, operation_context))
    def invalidate_by_operation(self, operation: str, operation_context: str = "") -> int:
        """Remove every entry of one operation, in time proportional to that operation's entries
        (its index is drained, never the keyspace scanned)."""
        validate_operation(operation)
        check_context(operation_context)
        self._begin_invalidation()
        self._fence([operation])
        self._drop_local(lambda op: op == operation)
        progress = Progress()
        self.guarded(  # type: ignore[attr-defined]
            "invalidate",
            None,
            invalidation.drain_index,
            self.redis,
            self.ns,
            operation,
            progress,
        )
        self._drop_local(lambda op: op == operation)
        return progress.removed

    @timed_invalidation("all", lambda operation_context="": ("*", operation_context))
    def invalidate_all(self, operation_context: str = "") -> int:
        """Remove every aicache entry (only keys under KEY_PREFIX; other data is untouched).

        Drains every operation's index (writes landing meanwhile start fresh indexes), then SCANs
        for entries no index named; never drops an index a concurrent write may just have used."""
        check_context(operation_context)
        self._begin_invalidation()
        self._fence(None)
        self._state.coherence.clear()
        progress = Progress()

        def drain_all() -> None:
            for operation in invalidation.known_operations(self.redis, self.ns):
                invalidation.drain_index(self.redis, self.ns, operation, progress)
            invalidation.scan_unlink(self.redis, self.ns, self.ns.entries_match(), progress)

        self.guarded("invalidate", None, drain_all)  # type: ignore[attr-defined]
        self._state.coherence.clear()  # again: a read that raced the removal fills nothing
        return progress.removed

    @timed_invalidation(
        "memory", lambda operation_context="", everywhere=False: ("memory", operation_context)
    )
    def invalidate_memory_cache(self, operation_context: str = "", everywhere: bool = False) -> int:
        """Clear this process's memory tier (returns the entries dropped here); with
        ``everywhere=True`` every process listening to this Redis clears its tier too."""
        check_context(operation_context)
        if not isinstance(everywhere, bool):
            raise TypeError(f"everywhere must be a bool, got {type(everywhere).__name__}")
        self._begin_invalidation()
        dropped = self._state.coherence.clear()
        if everywhere:
            from aicache.listener import CLEAR_MESSAGE

            self.guarded("publish", None, self.redis.publish, self.ns.events, CLEAR_MESSAGE)  # type: ignore[attr-defined]
        return dropped

    @timed_invalidation(
        "tags", lambda tags, operation_context="": (",".join(sorted(tags)), operation_context)
    )
    def invalidate_tags(self, tags: list[str], operation_context: str = "") -> int:
        """Remove every entry carrying any of ``tags`` (e.g. ``["prompt:v3"]``), across operations,
        with the guarantees of :meth:`invalidate_by_operation`: cost in proportion to the tagged
        entries (their tag indexes are drained, never the keyspace scanned), exact counts, fenced
        against in-flight computes carrying those tags, coherent across processes."""
        wanted = check_tags(tags, allow_empty=False)
        check_context(operation_context)
        self._begin_invalidation()
        self.guarded("fence", None, invalidation.bump, self.redis, self.ns, [], wanted, self._max_ttl)  # type: ignore[attr-defined]
        chosen = set(wanted)
        tier = self._state.coherence

        def tagged(entry: Any) -> bool:
            return bool(chosen.intersection(getattr(entry, "tags", ())))

        tier.delete_entries(tagged)
        progress = Progress(collect=True)

        def drain() -> None:
            for tag in wanted:
                invalidation.drain_tag(self.redis, self.ns, tag, progress)

        self.guarded("invalidate", None, drain)  # type: ignore[attr-defined]
        tier.delete_entries(tagged)  # again, with what it removed: a racing read fills nothing
        tier.delete_keys([k.decode() for k in progress.keys or ()])
        return progress.removed

    def count_tags(self, tags: list[str]) -> int:
        """How many live entries :meth:`invalidate_tags` would remove now: distinct entries whose
        frame still carries one of ``tags``, in the tag indexes and in the tag drains a fault left
        half done (no scan of the keyspace)."""
        wanted = check_tags(tags, allow_empty=False)
        self._begin_invalidation()
        return int(self.guarded("count", 0, invalidation.live_tagged, self.redis, self.ns, wanted))  # type: ignore[attr-defined]

    def count_pattern(self, pattern: str) -> int:
        """How many entries :meth:`invalidate_pattern` would remove now (SCAN, no deletion)."""
        glob = operation_glob(pattern)
        self._begin_invalidation()
        progress = Progress()
        self.guarded(
            "count", None, invalidation.scan_count, self.redis, self.ns.entries_match(glob), progress
        )  # type: ignore[attr-defined]
        return progress.removed

    def count_by_operation(self, operation: str) -> int:
        """How many live entries :meth:`invalidate_by_operation` would remove now: distinct ones,
        in the operation's index and in the drains a fault left half done (no scan of the
        keyspace)."""
        validate_operation(operation)
        self._begin_invalidation()
        return int(self.guarded("count", 0, invalidation.live_of_operation, self.redis, self.ns, operation))  # type: ignore[attr-defined]

    def count_all(self) -> int:
        """Live entries of every operation, from the indexes and the drains a fault left half done
        (no scan of the keyspace)."""
        self._begin_invalidation()
        return int(self.guarded("count", 0, invalidation.live_all, self.redis, self.ns))  # type: ignore[attr-defined]

    def _scan_unlink(self, match: str) -> int:
        progress = Progress()
        self.guarded("invalidate", None, invalidation.scan_unlink, self.redis, self.ns, match, progress)  # type: ignore[attr-defined]
        return progress.removed
