"""System checks of the monitoring app (registered when ``aicache.monitoring`` is installed, so the
cache core never imports it)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.core.checks import CheckMessage, Tags, Warning, register

from aicache import conf
from aicache.checks import aicache_aliases

W_NO_BROKER = "aicache.W010"
W_NO_BROKER_MSG = "aicache monitoring history is enabled but cannot be shipped: {problem}."
W_NO_BROKER_HINT = (
    "Configure a Celery app with a broker (CELERY_BROKER_URL, and a celery.py that calls "
    "config_from_object('django.conf:settings', namespace='CELERY')) and install its transport, "
    "or set AICACHE['HISTORY_ENABLED'] = False. Until then history is off, with one log warning."
)


@register(Tags.caches)
def check_history_wiring(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    targets = aicache_aliases() or [("AICACHE", {})]
    return check_history_broker(targets)


def check_history_broker(targets: list[tuple[str, Mapping[str, Any]]]) -> list[CheckMessage]:
    """aicache.W010: history is on (for some cache) but no Celery broker can take it."""
    if not any(conf.merged(options)["HISTORY_ENABLED"] is True for _, options in targets):
        return []
    from aicache.monitoring.flusher import broker_problem

    problem = broker_problem()
    if problem is None:
        return []
    return [Warning(W_NO_BROKER_MSG.format(problem=problem), hint=W_NO_BROKER_HINT, id=W_NO_BROKER)]
