"""Single-flight ``get_or_compute``: N concurrent identical misses, in any processes, make one
``compute()`` call; the others wait for its result.

The first caller takes a Redis lock with a lease (redis-py's ``Lock``: SET NX PX, compare-and-delete
on release) and computes; the rest wait on an in-process event that the coherence listener sets
when the value's key changes in Redis (the value landed) or when the holder announces it gave up
(``compute`` raised), and re-check. Without a listener (``MEMORY_COHERENCE = "local"``) they poll
with backoff. A holder that dies stops renewing nothing: its lease runs out and the next waiter to
try takes the lock and computes. A waiter that waits longer than ``wait_timeout`` computes itself.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from redis.exceptions import LockError

from aicache.coherence import WAKE_PREFIX, events_channel

if TYPE_CHECKING:
    from aicache.backend import AIResponseCache, CacheRequest

POLL_MIN = 0.01
POLL_MAX = 0.2
POLL_WITH_SIGNALS = 0.5  # only a safety net: wake-ups normally come from the listener


def lock_name(prefix: str, key: str) -> str:
    return f"{prefix}!lock:{key[len(prefix) + 1 :]}"


def single_flight(
    cache: AIResponseCache,
    req: CacheRequest,
    compute: Callable[[], Mapping[str, Any]],
    lock_timeout: float,
    wait_timeout: float,
) -> dict[str, Any]:
    state = cache._state
    coherence = state.coherence
    prefix = cache.config.key_prefix
    lock = cache.redis.lock(lock_name(prefix, req.key), timeout=lock_timeout, thread_local=False)
    deadline = time.monotonic() + wait_timeout
    poll = POLL_MIN
    waited = False
    while True:
        with coherence.waiter(req.key) as woken:
            acquired = cache._guarded("lock", None, lock.acquire, blocking=False)
            if acquired is None:  # Redis unreachable: nobody can coordinate, compute alone
                return cache._compute(req, compute)
            if acquired:
                return _compute_holding(cache, req, compute, lock, waited)
            if not waited:
                state.count("single_flight_waits")
                waited = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                state.count("single_flight_wait_timeouts")
                return cache._compute(req, compute)
            woken.wait(min(remaining, POLL_WITH_SIGNALS if coherence.signals else poll))
            poll = min(poll * 2, POLL_MAX)
        hit = cache._lookup(req)
        if hit is not None:
            state.count("single_flight_coalesced")
            return hit


def _compute_holding(
    cache: AIResponseCache, req: CacheRequest, compute: Callable[[], Any], lock: Any, waited: bool
) -> dict[str, Any]:
    done = False
    try:
        hit = cache._lookup(req)  # the value may have landed between our miss and the lock
        if hit is not None:
            done = True
            if waited:
                cache._state.count("single_flight_coalesced")
            return hit
        result = cache._compute(req, compute)
        done = True
        return result
    finally:
        cache._guarded("unlock", None, _release, cache, lock, req.key, done)


def _release(cache: AIResponseCache, lock: Any, key: str, done: bool) -> None:
    with suppress(LockError):  # the lease ran out first: the lock is no longer ours to release
        lock.release()
    if not done:  # nothing landed: wake the waiters so one of them takes over now
        cache.redis.publish(events_channel(cache.config.key_prefix), WAKE_PREFIX + key.encode())
