"""Django's plain cache API on the same backend (mixed into ``AIResponseCache``): django-redis
with a JSON serializer, where a corrupt value is a miss for that key, never an error."""

from __future__ import annotations

from typing import Any

from aicache.codec import CodecError

_MISSING_PLAIN = object()  # a sentinel: a cached None is a hit


class PlainAPIMixin:
    config: Any
    _fault: Any  # from GuardMixin

    def get(self, key: Any, default: Any = None, version: Any = None, client: Any = None) -> Any:
        try:
            return super().get(key, default=default, version=version, client=client)  # type: ignore[misc]
        except CodecError as exc:
            if self.config is not None:
                self._fault("corrupt_entry", "get", exc)
            return default

    def get_many(self, keys: Any, version: Any = None, client: Any = None) -> dict[Any, Any]:
        """As Django's, but one corrupt value is a miss for that key, not an error for all."""
        keys = list(keys)
        try:
            return super().get_many(keys, version=version, client=client)  # type: ignore[misc]
        except CodecError:
            found = {}
            for key in keys:
                value = self.get(key, _MISSING_PLAIN, version=version, client=client)
                if value is not _MISSING_PLAIN:
                    found[key] = value
            return found
