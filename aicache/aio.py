"""The async twins of the cache's methods (mixed into ``AIResponseCache``).

Each runs the sync method on aicache's own threads, as Django's ``BaseCache`` runs its twins, but
not on the event loop's default executor (see ``_EXECUTOR``).
"""

from __future__ import annotations

import inspect
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from asgiref.sync import async_to_sync, sync_to_async


# The async twins run the sync methods on aicache's own threads, not the event loop's default
# executor: a follower blocked on a flight must never hold a thread the leader's async compute
# needs (asyncio.to_thread uses that executor), or 12 concurrent calls deadlock on 2 cores
# (test_backend.py::test_async_compute_using_to_thread_never_deadlocks).
def _new_executor() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=64, thread_name_prefix="aicache-async")


_EXECUTOR = _new_executor()


def _after_fork() -> None:
    """A forked child has none of its parent's threads, but a copied executor still counts the
    parent's idle one and queues work for it: every async twin would then hang for ever (a Celery
    prefork child, gunicorn's ``preload_app``, after the parent used one). The child gets its own."""
    global _EXECUTOR
    _EXECUTOR = _new_executor()


os.register_at_fork(after_in_child=_after_fork)


def _in_thread(fn: Callable[..., Any]) -> Callable[..., Any]:
    return sync_to_async(fn, thread_sensitive=False, executor=_EXECUTOR)


def _async_twin(name: str) -> Callable[..., Any]:
    """``a<name>``: the sync method run in one of aicache's threads."""

    async def twin(self: Any, *args: Any, **kwargs: Any) -> Any:
        return await _in_thread(getattr(self, name))(*args, **kwargs)

    twin.__name__ = twin.__qualname__ = f"a{name}"
    twin.__doc__ = f"Async twin of :meth:`{name}`."
    return twin


class AsyncMixin:
    aget_cached_response = _async_twin("get_cached_response")
    acache_response = _async_twin("cache_response")
    ainvalidate_pattern = _async_twin("invalidate_pattern")
    ainvalidate_by_operation = _async_twin("invalidate_by_operation")
    ainvalidate_all = _async_twin("invalidate_all")
    ainvalidate_memory_cache = _async_twin("invalidate_memory_cache")
    ainvalidate_tags = _async_twin("invalidate_tags")

    async def aget_or_compute(
        self,
        text: str,
        operation: str,
        compute: Callable[[], Any],
        options: Mapping[str, Any] | None = None,
        question: str | None = None,
        ttl: int | None = None,
        **controls: Any,
    ) -> dict[str, Any] | None:
        """Async twin of :meth:`get_or_compute`; ``compute`` may be sync or async."""
        if not callable(compute):
            raise TypeError(f"compute must be callable, got {type(compute).__name__}")

        def sync_compute() -> Any:
            result = compute()
            if inspect.isawaitable(result):
                return async_to_sync(_await)(result)
            return result

        return await _in_thread(self.get_or_compute)(
            text, operation, sync_compute, options, question, ttl, **controls
        )


async def _await(awaitable: Any) -> Any:
    return await awaitable
