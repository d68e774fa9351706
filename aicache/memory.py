"""The in-process memory tier: an LRU bounded by entry count and bytes, with per-entry expiry.

Modelled on Django's ``locmem``: an ``OrderedDict`` and one ``Lock``; ``move_to_end`` on a hit,
``popitem(last=False)`` to cull. Expiry uses the monotonic clock, so a wall-clock jump never
resurrects an entry. One tier exists per process and cache (``aicache.state``), shared by every
thread: Django builds a backend instance per thread, and a tier per thread would be a cold cache
per thread.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Final

MISSING: Final = object()


@dataclass(frozen=True, slots=True)
class MemoryStats:
    entries: int
    bytes: int
    max_entries: int
    max_bytes: int
    hits: int
    misses: int
    evictions: int
    expirations: int


class MemoryTier:
    def __init__(self, max_entries: int, max_bytes: int) -> None:
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._data: OrderedDict[str, tuple[Any, int, float]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = self.misses = self.evictions = self.expirations = 0

    @property
    def enabled(self) -> bool:
        return self.max_entries > 0 and self.max_bytes > 0

    def get(self, key: str) -> Any:
        """The stored value, or ``MISSING``.

        Lock-free on a hit: ``dict.get`` and ``OrderedDict.move_to_end`` are single C calls, atomic
        under the GIL, and a key removed between them only makes ``move_to_end`` raise KeyError.
        The hit/miss counters are therefore approximate under concurrency; sizes stay exact."""
        item = self._data.get(key)
        if item is None:
            self.misses += 1
            return MISSING
        if item[2] <= time.monotonic():
            with self._lock:
                if self._data.get(key) is item:
                    del self._data[key]
                    self._bytes -= item[1]
                    self.expirations += 1
            self.misses += 1
            return MISSING
        try:  # noqa: SIM105 - contextlib.suppress costs more than this whole method on a hit
            self._data.move_to_end(key)
        except KeyError:
            pass  # evicted or deleted meanwhile; the value read is still the one that was there
        self.hits += 1
        return item[0]

    def peek(self, key: str) -> Any:
        """The stored value (expired or not), or ``MISSING``; no LRU move, no counters."""
        item = self._data.get(key)
        return MISSING if item is None else item[0]

    def set(self, key: str, value: Any, size: int, ttl: float) -> bool:
        """Store ``value`` for at most ``ttl`` seconds; False if it cannot fit at all."""
        if not self.enabled or size > self.max_bytes or ttl <= 0:
            self.delete(key)
            return False
        expires = time.monotonic() + ttl
        with self._lock:
            old = self._data.pop(key, None)
            if old is not None:
                self._bytes -= old[1]
            self._data[key] = (value, size, expires)
            self._bytes += size
            while len(self._data) > self.max_entries or self._bytes > self.max_bytes:
                _, (_, dropped, _) = self._data.popitem(last=False)
                self._bytes -= dropped
                self.evictions += 1
        return True

    def delete(self, key: str) -> bool:
        with self._lock:
            item = self._data.pop(key, None)
            if item is None:
                return False
            self._bytes -= item[1]
            return True

    def delete_many(self, keys: list[str]) -> int:
        with self._lock:
            removed = 0
            for key in keys:
                item = self._data.pop(key, None)
                if item is not None:
                    self._bytes -= item[1]
                    removed += 1
            return removed

    def delete_where(self, match: Callable[[str], bool]) -> int:
        """Delete every key for which ``match(key)`` is true."""
        with self._lock:
            doomed = [k for k in self._data if match(k)]
        return self.delete_many(doomed)

    def delete_prefix(self, prefix: str) -> int:
        return self.delete_where(lambda key: key.startswith(prefix))

    def clear(self) -> int:
        with self._lock:
            n = len(self._data)
            self._data.clear()
            self._bytes = 0
            return n

    def keys(self) -> list[str]:
        with self._lock:
            return list(self._data)

    def __len__(self) -> int:
        return len(self._data)

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not MISSING

    def stats(self) -> MemoryStats:
        with self._lock:
            return MemoryStats(
                len(self._data),
                self._bytes,
                self.max_entries,
                self.max_bytes,
                self.hits,
                self.misses,
                self.evictions,
                self.expirations,
            )
