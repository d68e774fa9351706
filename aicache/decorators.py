"""``@ai_cached``: cache a function of text with ``get_or_compute``."""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

from django.core.cache import caches

from aicache.keys import validate_operation
from aicache.request import check_tags

F = TypeVar("F", bound=Callable[..., Mapping[str, Any]])


def ai_cached(
    operation: str, *, cache: str = "ai", ttl: int | None = None, tags: list[str] | None = None
) -> Callable[[F], F]:
    """Decorate ``fn(text, *, question=None, **options) -> dict`` so that repeats are served from
    the cache named ``cache``. Keyword arguments other than ``question`` become the key's options;
    ``tags`` label every entry it writes (see ``invalidate_tags``).

        @ai_cached("summarize")
        def summarize(text, max_words=80):
            return llm.summarize(text, max_words=max_words)
    """
    validate_operation(operation)
    if tags is not None:
        tags = list(check_tags(tags))

    def decorate(fn: F) -> F:
        @functools.wraps(fn)
        def wrapper(text: str, /, **kwargs: Any) -> dict[str, Any]:
            question = kwargs.pop("question", None)
            call_kwargs = dict(kwargs) if question is None else {**kwargs, "question": question}
            return caches[cache].get_or_compute(
                text,
                operation,
                lambda: fn(text, **call_kwargs),
                options=kwargs or None,
                question=question,
                ttl=ttl,
                tags=tags,
            )

        return wrapper  # type: ignore[return-value]

    return decorate
