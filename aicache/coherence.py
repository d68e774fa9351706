"""Keeps every process's memory tier coherent with Redis, and wakes single-flight waiters.

Redis does the signalling (server-assisted client-side caching, broadcasting mode)::

    listener connection  --CLIENT ID--> id; SUBSCRIBE __redis__:invalidate {prefix}!events
    tracking connection  --CLIENT TRACKING ON REDIRECT <id> BCAST PREFIX {prefix}:
    any client writes, deletes, expires or evicts {prefix}:... --> message [key, ...] --> evict here

One listener thread per process and cache, started lazily, daemon. Both connections speak RESP2
(redis-py 8 defaults to RESP3, where hiredis hands such messages to push handlers instead of
returning them). Tracking lives and dies with its connection, so the thread PINGs it every second;
on any connection loss it reconnects with backoff and clears the memory tier *before* trusting it
again, since it cannot know what it missed. While Redis is unreachable the tier keeps serving:
nobody can change Redis meanwhile, and whatever changed is dropped on reconnect.

The read/invalidate race: a process GETs v1, another writes v2, the invalidation arrives, and only
then would the first process put v1 into its tier, stale until its TTL. :meth:`fill_token` guards
the fill: it is read before the GET and compared before the fill; any invalidation of that key's
slot (or of everything) in between moves it, and the fill is skipped.

Our own writes are announced to our own listener too (tracking cannot tell our pool connections
from anyone else's). So that a process keeps what it just wrote, it notes each write before sending
it (:meth:`expect_own_write`) and skips that many messages for the key. Redis delivers messages in
write order, so a foreign write that lands after ours is never the one skipped; one that lands
before ours (while ours is in flight) may be, but then ours is the value Redis holds, which is the
value we keep. Only a LIVE listener takes notes, and every reconnect or flush drops them.

``{prefix}!events`` carries what Redis cannot say by itself: ``clear`` (drop every process's tier)
and ``w<key>`` (wake the waiters of a key whose computation failed, so one of them takes over).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError

from aicache.memory import MemoryTier

logger = logging.getLogger("aicache.coherence")

INVALIDATE_CHANNEL = b"__redis__:invalidate"
CLEAR_MESSAGE = b"clear"
WAKE_PREFIX = b"w"

STARTING = "starting"
LIVE = "live"
DISCONNECTED = "disconnected"
UNSUPPORTED = "unsupported"
STOPPED = "stopped"
LOCAL = "local"

_SLOTS = 4096
_PING_EVERY = 1.0
_READ_WAIT = 0.25
_BACKOFF_MAX = 2.0
# Connection kwargs that belong to redis-py's RESP3 maintenance machinery, not to a RESP2 socket.
_DROP_KWARGS = ("maint_notifications_config", "maint_notifications_pool_handler", "protocol")


def events_channel(prefix: str) -> str:
    return f"{prefix}!events"


class Coherence:
    """Coherence of one process's memory tier for one cache (mode ``tracking`` or ``local``)."""

    def __init__(self, memory: MemoryTier, prefix: str, mode: str) -> None:
        self.memory = memory
        self.prefix = prefix
        self.mode = mode
        self.status = LOCAL if mode == "local" else STARTING
        self._slots = [0] * _SLOTS
        self._epoch = 0
        self._waiters: dict[str, set[threading.Event]] = {}
        self._waiters_lock = threading.Lock()
        self._own: dict[str, int] = {}
        self._own_lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stop = threading.Event()
        self._live = threading.Event()
        self.reconnects = 0
        self.messages = 0

    # ------------------------------------------------------------------ reading side
    @property
    def status(self) -> str:
        return self._status

    @status.setter
    def status(self, value: str) -> None:
        self._status = value
        # Serve from and fill the memory tier only while invalidations can reach it. A plain
        # attribute, because every cache read checks it.
        self.memory_usable = value in (LIVE, DISCONNECTED, LOCAL)

    @property
    def signals(self) -> bool:
        """True when waiters are woken by messages (so they may poll slowly)."""
        return self.status == LIVE

    def fill_token(self, key: str) -> tuple[int, int]:
        return self._epoch, self._slots[hash(key) & (_SLOTS - 1)]

    @contextmanager
    def waiter(self, key: str) -> Iterator[threading.Event]:
        """An event set when ``key`` changes in Redis or its computation is abandoned.

        Register before checking the condition you wait for, so no wake-up is lost.
        """
        event = threading.Event()
        with self._waiters_lock:
            self._waiters.setdefault(key, set()).add(event)
        try:
            yield event
        finally:
            with self._waiters_lock:
                events = self._waiters.get(key)
                if events is not None:
                    events.discard(event)
                    if not events:
                        del self._waiters[key]

    def expect_own_write(self, key: str) -> bool:
        """Note a write we are about to send, so its echo does not evict what we store."""
        if self.status != LIVE:
            return False
        with self._own_lock:
            self._own[key] = self._own.get(key, 0) + 1
        return True

    def cancel_own_write(self, key: str) -> None:
        """The write failed (or may have): stop expecting its echo. Evicting is always safe."""
        with self._own_lock:
            left = self._own.get(key, 0) - 1
            if left > 0:
                self._own[key] = left
            else:
                self._own.pop(key, None)

    # ------------------------------------------------------------------ signals
    def invalidate(self, keys: list[str] | None) -> None:
        """Apply an invalidation: ``None`` means everything (FLUSHDB, a reconnect, ``clear``)."""
        if keys is None:
            self._epoch += 1
            with self._own_lock:
                self._own.clear()
            self.memory.clear()
            self._wake_all()
            return
        slots = self._slots
        evict = keys
        if self._own:
            evict = []
            with self._own_lock:
                for key in keys:
                    left = self._own.get(key, 0)
                    if left:
                        if left > 1:
                            self._own[key] = left - 1
                        else:
                            del self._own[key]
                    else:
                        evict.append(key)
        for key in evict:
            slots[hash(key) & (_SLOTS - 1)] += 1
        self.memory.delete_many(evict)
        self._wake(keys)

    def _wake(self, keys: list[str]) -> None:
        with self._waiters_lock:
            for key in keys:
                for event in self._waiters.get(key, ()):
                    event.set()

    def _wake_all(self) -> None:
        with self._waiters_lock:
            for events in self._waiters.values():
                for event in events:
                    event.set()

    # ------------------------------------------------------------------ listener
    def ensure_started(self, pool: Any) -> None:
        """Start the listener thread once (lazily, from the first cache call that needs it)."""
        if self.mode != "tracking" or self._thread is not None:
            return
        with self._start_lock:
            if self._thread is not None:
                return
            kwargs = {k: v for k, v in pool.connection_kwargs.items() if k not in _DROP_KWARGS}
            self._thread = threading.Thread(
                target=self._run,
                args=(pool.connection_class, kwargs),
                name=f"aicache-coherence-{self.prefix}",
                daemon=True,
            )
            self._thread.start()

    def wait_live(self, timeout: float) -> bool:
        return self._live.wait(timeout)

    def stop(self) -> None:
        self._stop.set()
        if self.mode == "tracking":
            self.status = STOPPED

    def _run(self, connection_class: type, kwargs: dict[str, Any]) -> None:
        backoff = 0.05
        while not self._stop.is_set():
            listener = tracker = None
            try:
                listener = connection_class(protocol=2, **kwargs)
                tracker = connection_class(protocol=2, **kwargs)
                self._connect(listener, tracker)
                backoff = 0.05
                self._listen(listener, tracker)
            except ResponseError as exc:
                self.status = UNSUPPORTED
                self.invalidate(None)
                logger.error(
                    "aicache: Redis refused client tracking (%s); the memory tier is disabled for %s:",
                    exc,
                    self.prefix,
                )
                return
            except (RedisConnectionError, RedisTimeoutError, OSError, RedisError) as exc:
                if self.status == LIVE:
                    self.status = DISCONNECTED
                    self._live.clear()
                    logger.warning("aicache: coherence listener lost Redis (%s); reconnecting", exc)
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
            finally:
                for conn in (listener, tracker):
                    if conn is not None:
                        conn.disconnect()

    def _connect(self, listener: Any, tracker: Any) -> None:
        listener.connect()
        listener.send_command("CLIENT", "ID")
        client_id = listener.read_response()
        listener.send_command("SUBSCRIBE", INVALIDATE_CHANNEL, events_channel(self.prefix))
        listener.read_response()
        listener.read_response()
        tracker.connect()
        tracker.send_command(
            "CLIENT", "TRACKING", "ON", "REDIRECT", client_id, "BCAST", "PREFIX", f"{self.prefix}:"
        )
        tracker.read_response()
        # Whatever happened while we were not listening is unknown: start from an empty tier.
        if self.status != STARTING:
            self.reconnects += 1
        self.invalidate(None)
        self.status = LIVE
        self._live.set()

    def _listen(self, listener: Any, tracker: Any) -> None:
        next_ping = time.monotonic() + _PING_EVERY
        while not self._stop.is_set():
            if listener.can_read(timeout=_READ_WAIT):
                self._handle(listener.read_response())
            if time.monotonic() >= next_ping:
                tracker.send_command("PING")
                tracker.read_response()
                next_ping = time.monotonic() + _PING_EVERY

    def _handle(self, message: Any) -> None:
        if not isinstance(message, list) or len(message) != 3 or message[0] != b"message":
            return
        self.messages += 1
        channel, payload = message[1], message[2]
        if channel == INVALIDATE_CHANNEL:
            if payload is None:
                self.invalidate(None)
            else:
                self.invalidate([k.decode("utf-8", "replace") for k in payload])
        elif payload == CLEAR_MESSAGE:
            self.invalidate(None)
        elif isinstance(payload, bytes) and payload.startswith(WAKE_PREFIX):
            self._wake([payload[len(WAKE_PREFIX) :].decode("utf-8", "replace")])
