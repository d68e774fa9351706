"""One compute per key: in-process futures first, then a Redis lease renewed while its holder lives.

::

    get_or_compute miss (memory tier)
      -> Flights.join(key): the first caller in this process leads; the others wait for its outcome
         (value or exception) and share it. This holds with Redis up, down or hung.
      -> leader: Redis GET --hit--> share it
                 Redis unreachable --> compute alone (nobody can coordinate), share it
                 lease SET NX PX on {prefix}!lock:... --won--> re-check, read the fence, compute,
                     store fenced, share; a renewer thread extends the lease every third of it
                     while compute() runs, so a slow compute is never run twice; a dead holder
                     stops renewing and its lease runs out
                 --lost--> wait for the key's invalidation message (the value landed) or a
                     ``w<key>`` event (the holder's compute raised), re-check, try again; after
                     wait_timeout compute alone

Guarantees and their tests (tests/integration/test_single_flight.py): N identical concurrent calls
in a process make one compute with Redis up, down or hung; coalesced callers share the outcome,
exceptions included; across processes at most one caller per process computes per attempt; a
compute longer than the lease is not run again.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import suppress
from typing import Any, Protocol

import orjson
from redis.exceptions import LockError

POLL_MIN = 0.01
POLL_MAX = 0.2
POLL_WITH_SIGNALS = 0.5  # only a safety net: wake-ups normally come from the listener


class Flight:
    """One in-process attempt at a key: its leader's outcome, shared with every follower.

    A leader alone (the common case: a Redis hit nobody else asked for at that moment) builds
    neither the event nor a serialized copy: the first follower makes the event (under the
    Flights lock), and :meth:`Flights.finish` serializes the result only if one did (an Event
    cost 5.6 µs and the 5 KB hit's orjson.dumps 1.9 µs per leader call; timeit, pinned)."""

    __slots__ = ("cost", "done", "error", "result", "value")

    def __init__(self) -> None:
        self.done: threading.Event | None = None  # made when the first follower joins
        self.value: Any = None  # the leader's response, until finish serializes it for followers
        self.result: bytes | None = None  # the leader's response, serialized: each follower decodes a copy
        self.cost: Any = None  # what the shared result cost to compute (aicache.savings.Cost)
        self.error: BaseException | None = None


class Flights:
    """The in-process futures, keyed by cache key (needs no Redis)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._flights: dict[str, Flight] = {}

    def join(self, key: str) -> tuple[Flight, bool]:
        """The flight for ``key`` and whether the caller leads it."""
        with self._lock:
            flight = self._flights.get(key)
            if flight is not None:
                if flight.done is None:
                    flight.done = threading.Event()
                return flight, False
            flight = self._flights[key] = Flight()
            return flight, True

    def finish(self, key: str, flight: Flight) -> None:
        """End the flight: no follower joins it from now on; those that did get the leader's
        outcome (its ``value`` serialized here, before the leader's caller can change it)."""
        with self._lock:
            if self._flights.get(key) is flight:
                del self._flights[key]
            done = flight.done  # every follower joined under the lock, so none is missed
        value, flight.value = flight.value, None
        if done is None:
            return
        try:
            if flight.error is None:
                flight.result = orjson.dumps(value)
        except BaseException as exc:  # followers get the error rather than wait for nothing
            flight.error = exc
        finally:
            done.set()

    def __len__(self) -> int:
        return len(self._flights)


class Host(Protocol):
    """What single flight needs from the cache (``AIResponseCache`` provides it)."""

    def read_redis(self, req: Any) -> dict[str, Any] | None: ...
    def compute_and_store(self, req: Any, compute: Callable[[], Any]) -> dict[str, Any]: ...
    def guarded(self, what: str, default: Any, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any: ...
    def redis_usable(self) -> bool: ...
    def count(self, kind: str) -> None: ...
    def announce_abandoned(self, key: str) -> None: ...


class _Renewer:
    """Extends a held lease every third of its length until stopped (or until it is lost)."""

    def __init__(self, host: Host, lock: Any, lease: float) -> None:
        self._stop = threading.Event()
        self.renewals = 0
        self._thread = threading.Thread(target=self._run, args=(host, lock, lease), daemon=True)
        self._thread.start()

    def _run(self, host: Host, lock: Any, lease: float) -> None:
        while not self._stop.wait(lease / 3):
            renewed = host.guarded("lock_renew", None, _reacquire, lock)
            if renewed is False:
                return  # the lease was lost: nothing more to extend
            if renewed:  # None: a fault or the breaker; try again next third, the lease may live
                self.renewals += 1

    def stop(self) -> None:
        self._stop.set()


def _reacquire(lock: Any) -> bool:
    try:
        lock.reacquire()
    except LockError:
        return False
    return True


def lead(
    host: Host, req: Any, compute: Callable[[], Any], lock: Any, lease: float, wait_timeout: float, tier: Any
):
    """The leader's part after its Redis GET missed: returns ``(response, source)`` with source
    ``redis`` (it landed meanwhile), ``coalesced`` (another process computed it) or ``compute``."""
    deadline = time.monotonic() + wait_timeout
    poll = POLL_MIN
    waited = False
    while True:
        if not host.redis_usable():  # down, hung or the breaker open: compute alone, once here
            return host.compute_and_store(req, compute), "compute"
        with tier.waiter(req.key) as woken:
            acquired = host.guarded("lock", None, lock.acquire, blocking=False)
            if acquired is None:
                return host.compute_and_store(req, compute), "compute"
            if acquired:
                return _holding(host, req, compute, lock, lease, waited)
            if not waited:
                host.count("single_flight_waits")
                waited = True
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                host.count("single_flight_wait_timeouts")
                return host.compute_and_store(req, compute), "compute"
            woken.wait(min(remaining, POLL_WITH_SIGNALS if tier.signals else poll))
            poll = min(poll * 2, POLL_MAX)
        hit = host.read_redis(req)
        if hit is not None:
            return hit, "coalesced"


def _holding(host: Host, req: Any, compute: Callable[[], Any], lock: Any, lease: float, waited: bool):
    renewer = None
    done = False
    try:
        hit = host.read_redis(req)  # the value may have landed between our miss and the lock
        if hit is not None:
            done = True
            return hit, "coalesced" if waited else "redis"
        renewer = _Renewer(host, lock, lease)
        result = host.compute_and_store(req, compute)
        done = True
        return result, "compute"
    finally:
        if renewer is not None:
            renewer.stop()
        host.guarded("unlock", None, _release, lock)
        if not done:  # nothing landed: wake the waiters so one of them takes over now
            host.announce_abandoned(req.key)


def _release(lock: Any) -> None:
    with suppress(LockError):  # the lease ran out first: the lock is no longer ours to release
        lock.release()
