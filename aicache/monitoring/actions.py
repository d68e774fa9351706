"""Operator actions shared by the API, the management commands and the admin dashboard.

An :class:`Invalidation` is validated when it is made (``ValueError`` naming the field), so a
caller that holds one can count it (:func:`count`, nothing removed) and then run it
(:func:`perform`). :func:`perform` records, in the invalidation event's ``operation_context``,
who asked for it, through which surface and why.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal, get_args

from aicache.conf import OPERATION_RE
from aicache.exceptions import CacheUnavailable
from aicache.invalidation_api import MAX_PATTERN_LENGTH, OPERATION_GLOB_RE
from aicache.request import check_tags

Kind = Literal["operation", "pattern", "all", "memory", "tags"]
Via = Literal["api", "command", "admin"]

KINDS: tuple[str, ...] = get_args(Kind)
VIAS: tuple[str, ...] = get_args(Via)

#: Longest accepted reason; with the actor and surface it fits the event's 300-character context.
MAX_REASON_LENGTH = 120
#: Longest actor name written into the context (Django usernames are at most 150 characters).
MAX_ACTOR_LENGTH = 150

# A glob over operation names exactly as ``AIResponseCache.invalidate_pattern`` accepts it (one
# definition, in the backend), plus the one trailing ``:`` it ignores (the seed's ``"summarize:"``).
PATTERN_RE = re.compile(rf"(?:{OPERATION_GLOB_RE.pattern}):?")
_UNPRINTABLE_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


@dataclass(frozen=True)
class Invalidation:
    """One invalidation an operator asked for.

    ``kind`` "operation": ``value`` is an operation name; "pattern": ``value`` is a glob over
    operation names; "all": every aicache entry; "memory": this process's memory tier, or every
    process's with ``everywhere=True``; "tags": every entry carrying any of ``tags``.
    """

    kind: Kind
    value: str = ""
    everywhere: bool = False
    reason: str = ""
    tags: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if not isinstance(self.value, str):
            raise ValueError(f"value must be a str, got {type(self.value).__name__}")
        if self.kind == "operation" and not OPERATION_RE.fullmatch(self.value):
            raise ValueError(f"operation must be 1-64 characters of [a-z0-9_-], got {self.value!r}")
        if self.kind == "pattern" and not PATTERN_RE.fullmatch(self.value):
            raise ValueError(
                f"pattern must be 1-{MAX_PATTERN_LENGTH} characters of [a-z0-9_-] and * ? [ ] ^ "
                f"(a glob over operation names), got {self.value[:80]!r}"
            )
        if self.kind == "tags":
            try:
                object.__setattr__(self, "tags", check_tags(list(self.tags), allow_empty=False))
            except (TypeError, ValueError) as exc:
                raise ValueError(str(exc)) from exc
        elif self.tags:
            raise ValueError("tags apply to kind 'tags' only")
        if self.kind in ("all", "memory", "tags") and self.value:
            raise ValueError(f"value must be empty for kind {self.kind!r}")
        if not isinstance(self.everywhere, bool):
            raise ValueError(f"everywhere must be a bool, got {type(self.everywhere).__name__}")
        if self.everywhere and self.kind != "memory":
            raise ValueError("everywhere applies to kind 'memory' only")
        if not isinstance(self.reason, str):
            raise ValueError(f"reason must be a str, got {type(self.reason).__name__}")
        if len(self.reason) > MAX_REASON_LENGTH:
            raise ValueError(f"reason must be at most {MAX_REASON_LENGTH} characters")
        if _UNPRINTABLE_RE.search(self.reason):
            raise ValueError("reason must not contain control characters")

    def describe(self) -> str:
        """A short human description: ``operation 'summarize'``, ``every entry``, ..."""
        if self.kind == "operation":
            return f"operation {self.value!r}"
        if self.kind == "pattern":
            return f"pattern {self.value!r}"
        if self.kind == "all":
            return "every aicache entry"
        if self.kind == "tags":
            return "every entry tagged " + ", ".join(repr(t) for t in self.tags)
        return "the memory tier of every process" if self.everywhere else "this process's memory tier"


def context(inv: Invalidation, *, actor: str, via: str) -> str:
    """The ``operation_context`` recorded for ``inv``: ``via=api user=alice reason=...``."""
    if via not in VIAS:
        raise ValueError(f"via must be one of {', '.join(VIAS)}, got {via!r}")
    if not isinstance(actor, str) or not actor.strip():
        raise ValueError("actor must be a non-empty str naming who asked")
    who = _UNPRINTABLE_RE.sub("?", actor.strip())[:MAX_ACTOR_LENGTH]
    text = f"via={via} user={who}"
    if inv.reason:
        text += f" reason={inv.reason}"
    return text


def count(cache: Any, inv: Invalidation) -> int:
    """How many entries ``inv`` would remove now (nothing is removed). ``CacheUnavailable`` when
    Redis failed while counting: an operator must not read 0 as "nothing there"."""
    return _checked(cache, "counting", lambda: _count(cache, inv))


def _count(cache: Any, inv: Invalidation) -> int:
    if inv.kind == "operation":
        return int(cache.count_by_operation(inv.value))
    if inv.kind == "pattern":
        return int(cache.count_pattern(inv.value))
    if inv.kind == "all":
        return int(cache.count_all())
    if inv.kind == "tags":
        return int(cache.count_tags(list(inv.tags)))
    return len(cache.memory)


def _checked(cache: Any, what: str, fn: Any) -> int:
    """Run ``fn``; if the cache met a Redis fault meanwhile (the library API fails open and
    returns what it managed), raise ``CacheUnavailable`` so every surface reports the failure."""
    state = cache._state
    before = state.thread_faults()
    result = fn()
    if state.thread_faults() != before:
        raise CacheUnavailable(
            f"Redis failed while {what} ({state.thread_last_fault()}); "
            f"{result} entries were handled before it did. Retry when Redis answers."
        )
    return result


def perform(cache: Any, inv: Invalidation, *, actor: str, via: str) -> int:
    """Run ``inv`` on ``cache`` and return the number of entries removed (for "memory", the
    entries dropped from this process's tier). The recorded invalidation event's context names
    ``actor``, ``via`` and the reason."""
    ctx = context(inv, actor=actor, via=via)
    return _checked(cache, "invalidating", lambda: _perform(cache, inv, ctx))


def _perform(cache: Any, inv: Invalidation, ctx: str) -> int:
    if inv.kind == "operation":
        return int(cache.invalidate_by_operation(inv.value, operation_context=ctx))
    if inv.kind == "pattern":
        return int(cache.invalidate_pattern(inv.value, operation_context=ctx))
    if inv.kind == "all":
        return int(cache.invalidate_all(operation_context=ctx))
    if inv.kind == "tags":
        return int(cache.invalidate_tags(list(inv.tags), operation_context=ctx))
    return int(cache.invalidate_memory_cache(operation_context=ctx, everywhere=inv.everywhere))
