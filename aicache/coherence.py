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
  GET raced the SET cannot fill the older value. A failed write never fills.
* **Every message evicts.** Tracking reports our own writes too, but in BCAST mode Redis sends one
  message per key per event-loop turn, so our write's message can also stand for a foreign write
  in the same turn. No message is taken for an echo: the writer's next read fills from Redis.
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
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from aicache.memory import MISSING, MemoryTier

STARTING = "starting"  # not proven yet: tier bypassed
LIVE = "live"  # proven: tier used
DISCONNECTED = "disconnected"  # proof lapsed or connection lost: tier cleared and bypassed
UNSUPPORTED = "unsupported"  # Redis refused client tracking: tier disabled
STOPPED = "stopped"
LOCAL = "local"  # one process, no listener: the tier is coherent by construction

_SLOTS = 4096


class CoherentTier:
    def __init__(self, memory: MemoryTier, prefix: str, mode: str) -> None:
        self.memory = memory
        self.prefix = prefix
        self.mode = mode
        self._lock = threading.Lock()
        self._slots = [0] * _SLOTS
        self._epoch = 0
        self._waiters: dict[str, set[threading.Event]] = {}
        self._waiters_lock = threading.Lock()
        self.usable_until = math.inf if mode == LOCAL else 0.0
        self.status = LOCAL if mode == LOCAL else STARTING

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
    def begin_write(self, key: str) -> tuple[int, int]:
        """Before a local SET: move the key's version and drop it, so no read that began earlier
        can fill the value it read. Returns the token :meth:`end_write` compares."""
        with self._lock:
            self._bump(key)
            self.memory.delete(key)
            return self.token(key)

    def end_write(
        self, key: str, token: tuple[int, int], entry: Any, size: int, acknowledged: bool, expires_at: float
    ) -> bool:
        """After the SET: move the version again (a read whose GET raced the SET must not fill the
        older value). Store the writer's own value only without a listener (``local`` mode), and
        only if Redis acknowledged the write and nothing touched the key meanwhile.

        With client tracking the writer never keeps its own value: in BCAST mode Redis sends one
        message per key per event-loop turn, so our write's message may also stand for a foreign
        write that landed in the same turn; an echo cannot be told from a foreign write, so every
        message evicts, and the next read fills from Redis
        (test_coherence.py::test_a_foreign_write_in_the_same_turn_is_never_lost)."""
        with self._lock:
            unchanged = self.token(key) == token
            self._bump(key)
            if self.mode == LOCAL and acknowledged and unchanged and self.usable_until > time.monotonic():
                return self.memory.set(key, entry, size, expires_at - time.monotonic())
            return False

    # ------------------------------------------------------------------ invalidations
    def invalidate(self, keys: list[str] | None) -> None:
        """Apply invalidation messages; ``None`` means everything (FLUSHDB, a clear, a reconnect)."""
        if keys is None:
            self.clear()
            return
        with self._lock:
            for key in keys:
                self._bump(key)
            self.memory.delete_many(keys)
        self._wake(keys)

    def clear(self) -> int:
        """Drop everything: nothing read or written before now may be stored."""
        with self._lock:
            self._epoch += 1
            dropped = self.memory.clear()
        self._wake_all()
        return dropped

    def delete_where(self, match: Any) -> int:
        with self._lock:
            doomed = [k for k in self.memory.keys() if match(k)]  # noqa: SIM118 - a locked snapshot
            for key in doomed:
                self._bump(key)
            return self.memory.delete_many(doomed)

    def delete_keys(self, keys: list[str]) -> int:
        """Delete these keys (bumping their versions): what an invalidation just removed."""
        with self._lock:
            for key in keys:
                self._bump(key)
            return self.memory.delete_many(keys)

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
