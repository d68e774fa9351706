"""Per-user throttles for the actions that change things or cost a model call.

Rates come from ``REST_FRAMEWORK["DEFAULT_THROTTLE_RATES"]`` under the scope's name when set
there, else the defaults below. They are read on every request (DRF's own throttles capture the
rates at import), so ``override_settings`` and a changed setting take effect at once.
"""

from __future__ import annotations

from rest_framework.settings import api_settings
from rest_framework.throttling import UserRateThrottle


class _ConfiguredRateThrottle(UserRateThrottle):
    default_rate = "60/minute"

    def get_rate(self) -> str | None:
        rates = api_settings.DEFAULT_THROTTLE_RATES or {}
        return rates.get(self.scope, self.default_rate)


class InvalidateThrottle(_ConfiguredRateThrottle):
    """``POST invalidate/`` and ``POST reset/``, per user."""

    scope = "aicache_invalidate"
    default_rate = "10/minute"


class ProcessThrottle(_ConfiguredRateThrottle):
    """``POST process/`` of the reference project, per user."""

    scope = "aicache_process"
    default_rate = "60/minute"
