"""System checks for the aicache configuration: ``manage.py check`` names each bad setting.

Ids are stable (tests compare against them): ``aicache.E001``-``E011`` for invalid values (see
``aicache.conf`` for which setting each covers), ``aicache.E012`` for a process-wide monitoring
setting in a cache's ``OPTIONS``, ``aicache.W001`` for unknown setting names, ``aicache.W010`` when
monitoring history is on but no Celery broker can take it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from aicache import conf

W_UNKNOWN = "aicache.W001"
W_NO_BROKER = "aicache.W010"
W_NO_BROKER_MSG = "aicache monitoring history is enabled but cannot be shipped: {problem}."
W_NO_BROKER_HINT = (
    "Configure a Celery app with a broker (CELERY_BROKER_URL, and a celery.py that calls "
    "config_from_object('django.conf:settings', namespace='CELERY')) and install its transport, "
    "or set AICACHE['HISTORY_ENABLED'] = False. Until then history is off, with one log warning."
)
E_PICKLE = f"aicache.{conf.E_SERIALIZER}"
PICKLE_SERIALIZERS = ("django_redis.serializers.pickle.PickleSerializer",)


def aicache_aliases() -> list[tuple[str, Mapping[str, Any]]]:
    """(alias, OPTIONS) of every cache in CACHES that uses AIResponseCache or a subclass."""
    from aicache.backend import AIResponseCache

    found = []
    for alias, config in getattr(settings, "CACHES", {}).items():
        try:
            cls = import_string(config.get("BACKEND", ""))
        except ImportError:
            continue
        if isinstance(cls, type) and issubclass(cls, AIResponseCache):
            found.append((alias, config.get("OPTIONS") or {}))
    return found


@register(Tags.caches)
def check_aicache_settings(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    messages: list[CheckMessage] = []
    user = getattr(settings, "AICACHE", {})
    if not isinstance(user, Mapping):
        return [Error("AICACHE must be a dict.", hint="AICACHE = {'DEFAULT_TTL': 3600}", id="aicache.E000")]
    for name in conf.unknown_keys(user):
        messages.append(
            Warning(
                f"Unknown aicache setting AICACHE[{name!r}] is ignored.",
                hint="See README's configuration table.",
                id=W_UNKNOWN,
            )
        )
    targets = aicache_aliases() or [("AICACHE", {})]
    for alias, options in targets:
        for problem in conf.validate(conf.merged(options)):
            messages.append(
                Error(problem.message, hint=problem.hint, obj=alias, id=f"aicache.{problem.code}")
            )
        for problem in conf.process_wide_in_options(options):
            messages.append(
                Error(problem.message, hint=problem.hint, obj=alias, id=f"aicache.{problem.code}")
            )
        if options.get("SERIALIZER") in PICKLE_SERIALIZERS:
            messages.append(
                Error(
                    f"Cache {alias!r} uses the pickle serializer: reads would unpickle bytes from Redis.",
                    hint="Remove OPTIONS['SERIALIZER']; aicache uses aicache.codec.SafeSerializer.",
                    obj=alias,
                    id=E_PICKLE,
                )
            )
    messages.extend(check_history_broker(targets))
    return messages


def check_history_broker(targets: list[tuple[str, Mapping[str, Any]]]) -> list[CheckMessage]:
    """aicache.W010: history is on (for some cache) but no Celery broker can take it."""
    from django.apps import apps

    if not apps.is_installed("aicache.monitoring"):
        return []
    if not any(conf.merged(options)["HISTORY_ENABLED"] is True for _, options in targets):
        return []
    from aicache.monitoring.flusher import broker_problem

    problem = broker_problem()
    if problem is None:
        return []
    return [Warning(W_NO_BROKER_MSG.format(problem=problem), hint=W_NO_BROKER_HINT, id=W_NO_BROKER)]
