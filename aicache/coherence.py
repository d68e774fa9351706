"""A memory tier that never serves what Redis no longer holds.

:class:`CoherentTier` owns one process's memory tier for one cache, and every rule that keeps it
coherent. The rules, and why each holds:

* **Fill only if unchanged since the read began.** Each key hashes to a version slot. A reader
  takes a token (epoch, slot version) before its Redis GET; :meth:`fill` compares it and stores
  under the same lock that evictions take, so check and store are one step. Any invalidation
  message, local write or clear bumps the slot first, so a value read before it can never be
  stored after it (test_coherence: read/invalidate and own-overwrite races).
* **Local writes are fenced on both sides.** :meth:`begin_write` bumps the slot and drops the key
  before the SET is sent; :meth:`end_write` bumps it again when Redis answered, so a reader whose
  GET raced the SET cannot fill the older value. The writer's own value is stored only if Redis
  acknowledged the write and nothing else touched the key meanwhile (a failed write never fills).
* **Our own echo.** Tracking reports our own writes too. Each local write is queued per key;
  the next invalidation message for that key is attributed to the oldest queued write. Redis
  delivers messages in write order, so an attributed message is never newer than our write:
  if it arrives before we stored, the store still counts it; after, it keeps our entry only if the
  tier still holds exactly the object we stored. Anything unattributed evicts.
* **Usable only while proven.** The listener (``aicache.listener``) proves end to end that
  invalidations reach this process: a probe written under the tracked prefix must come back on the
  subscription. ``usable_until`` is the send time of the last probe that came back plus the
  liveness bound: every write committed before that send time has had its message delivered. Reads
  use the tier only before ``usable_until``; when the proof lapses the listener clears the tier.
"""

from __future__ import annotations

import math
import threading
import time
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from aicache.memory import MISSING, MemoryTier

STARTING = "starting"  # not proven yet: tier bypassed
LIVE = "live"  # proven: tier used
DISCONNECTED = "disconnected"  # proof lapsed or connection lost: tier cleared and bypassed
UNSUPPORTED = "unsupported"  # Redis refused client tracking: tier disabled
STOPPED = "stopped"
LOCAL = "local"  # one process, no listener: the tier is coherent by construction

_SLOTS = 4096


@dataclass(eq=False, slots=True)
class PendingWrite:
    """A local write between :meth:`CoherentTier.begin_write` and its echo."""

    key: str
    token: tuple[int, int]
    echoes: int = 0  # messages attributed to this write before it ended (0 or 1)
    ended: bool = False
    entry: Any = None
    waiting_echo: bool = field(default=True)


class CoherentTier:
    def __init__(self, memory: MemoryTier, prefix: str, mode: str) -> None:
        self.memory = memory
        self.prefix = prefix
        self.mode = mode
        self._lock = threading.Lock()
        self._slots = [0] * _SLOTS
        self._epoch = 0
        self._pending: dict[str, deque[PendingWrite]] = {}
        self._waiters: dict[str, set[threading.Event]] = {}
        self._waiters_lock = threading.Lock()
        self.usable_until = math.inf if mode == LOCAL else 0.0
        self.status = LOCAL if mode == LOCAL else STARTING
        self.listener: Any = None  # aicache.listener.Listener, set by the process state

    # ------------------------------------------------------------------ reading side
    @property
    def usable(self) -> bool:
        return self.usable_until > time.monotonic()

    def get(self, key: str) -> Any:
        """The memory entry, or ``MISSING`` (also when the tier is not proven usable now)."""
        if self.usable_until <= time.monotonic():
            return MISSING
        return self.memory.get(key)

    def token(self, key: str) -> tuple[int, int]:
        return self._epoch, self._slots[hash(key) & (_SLOTS - 1)]

    def fill(self, key: str, entry: Any, size: int, token: tuple[int, int], expires_at: float) -> bool:
        """Store ``entry`` read from Redis if nothing touched ``key`` since ``token`` was taken;
        ``expires_at`` (monotonic) is never later than the Redis entry's own expiry."""
        with self._lock:
            if self.usable_until <= time.monotonic() or token != self.token(key):
                return False
            return self.memory.set(key, entry, size, expires_at - time.monotonic())

    # ------------------------------------------------------------------ local writes
    def begin_write(self, key: str) -> PendingWrite:
        with self._lock:
            self._bump(key)
            self.memory.delete(key)
            pw = PendingWrite(key, self.token(key))
            if self.status == LIVE:  # tracking is on: this write's echo will come
                self._pending.setdefault(key, deque()).append(pw)
            return pw

    def end_write(
        self, pw: PendingWrite, entry: Any, size: int, acknowledged: bool, expires_at: float
    ) -> bool:
        """Finish a local write; store ``entry`` only if Redis acknowledged it, it is the only
        write of this key in flight here, and nothing else touched the key meanwhile."""
        key = pw.key
        with self._lock:
            queue = self._pending.get(key)
            alone = not queue or (len(queue) == 1 and queue[0] is pw)
            epoch, version = pw.token
            unchanged = self.token(key) == (epoch, version + pw.echoes)
            self._bump(key)  # readers whose GET raced the SET must not fill what they read
            stored = False
            if acknowledged and alone and unchanged and self.usable_until > time.monotonic():
                stored = self.memory.set(key, entry, size, expires_at - time.monotonic())
            if queue is not None and pw in queue:
                if pw.echoes or not acknowledged:
                    queue.remove(pw)  # echoed already, or may never echo: later messages evict
                    if not queue:
                        del self._pending[key]
                else:
                    pw.ended = True
                    pw.entry = entry if stored else None
            return stored

    # ------------------------------------------------------------------ invalidations
    def invalidate(self, keys: list[str] | None) -> None:
        """Apply invalidation messages; ``None`` means everything (FLUSHDB, a clear, a reconnect)."""
        if keys is None:
            self.clear()
            return
        with self._lock:
            for key in keys:
                queue = self._pending.get(key)
                pw = None
                if queue:
                    pw = next((w for w in queue if w.waiting_echo), None)
                if pw is None:
                    self._bump(key)
                    self.memory.delete(key)
                    continue
                pw.waiting_echo = False
                if not pw.ended:
                    pw.echoes += 1
                    self._bump(key)
                    self.memory.delete(key)
                    continue
                queue.remove(pw)
                if not queue:
                    del self._pending[key]
                if pw.entry is None or self.memory.peek(key) is not pw.entry:
                    self._bump(key)
                    self.memory.delete(key)
        self._wake(keys)

    def clear(self) -> int:
        """Drop everything and every note: nothing read or written before now may be stored."""
        with self._lock:
            self._epoch += 1
            self._pending.clear()
            dropped = self.memory.clear()
        self._wake_all()
        return dropped

    def delete_where(self, match: Any) -> int:
        with self._lock:
            doomed = [k for k in self.memory.keys() if match(k)]  # noqa: SIM118 - a locked snapshot
            for key in doomed:
                self._bump(key)
            return self.memory.delete_many(doomed)

    def delete_entries(self, match: Any) -> int:
        """Delete every entry for which ``match(entry)`` is true (e.g. by its tags)."""
        with self._lock:
            doomed = [k for k in self.memory.keys() if match(self.memory.peek(k))]  # noqa: SIM118
            for key in doomed:
                self._bump(key)
            return self.memory.delete_many(doomed)

    def _bump(self, key: str) -> None:
        self._slots[hash(key) & (_SLOTS - 1)] += 1

    # ------------------------------------------------------------------ status
    def set_proven(self, until: float) -> None:
        self.usable_until = until
        self.status = LIVE

    def lapse(self, status: str) -> None:
        """The proof is gone: bypass the tier and forget it (it cannot know what it missed)."""
        self.usable_until = 0.0
        self.status = status
        self.clear()

    # ------------------------------------------------------------------ waiters
    @contextmanager
    def waiter(self, key: str) -> Iterator[threading.Event]:
        """An event set when ``key`` changes in Redis or its computation is abandoned.

        Register before checking the condition you wait for, so no wake-up is lost."""
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

    @property
    def signals(self) -> bool:
        """True when waiters are woken by messages (so they may poll slowly)."""
        return self.status == LIVE

    def wake(self, keys: list[str]) -> None:
        self._wake(keys)

    def _wake(self, keys: list[str]) -> None:
        if not self._waiters:
            return
        with self._waiters_lock:
            for key in keys:
                for event in self._waiters.get(key, ()):
                    event.set()

    def _wake_all(self) -> None:
        with self._waiters_lock:
            for events in self._waiters.values():
                for event in events:
                    event.set()


__all__ = ["DISCONNECTED", "LIVE", "LOCAL", "MISSING", "STARTING", "STOPPED", "UNSUPPORTED", "CoherentTier"]
