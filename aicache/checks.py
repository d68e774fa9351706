"""System checks for the aicache configuration: ``manage.py check`` names each bad setting.

Ids are stable (tests compare against them): ``aicache.E001``-``E011`` for invalid values (see
``aicache.conf`` for which setting each covers), ``aicache.E012`` for a process-wide monitoring
setting in a cache's ``OPTIONS``, ``aicache.W001`` for unknown setting names, ``aicache.W002`` for
COMPRESSION_DICTIONARIES set True with an algorithm other than zstd, ``aicache.W010`` when
monitoring history is on but no Celery broker can take it, ``aicache.E013`` for a reachable Redis
older than aicache needs, ``aicache.W011`` when ``READ_FROM_REPLICAS`` is on where there is no
replica to read from (Redis Cluster, or one node).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.conf import settings
from django.core.checks import CheckMessage, Error, Tags, Warning, register
from django.utils.module_loading import import_string

from aicache import conf

W_UNKNOWN = "aicache.W001"
E_REDIS_VERSION = "aicache.E013"
W_NO_REPLICAS = "aicache.W011"

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
        for problem in conf.dictionary_warnings(options):
            messages.append(
                Warning(problem.message, hint=problem.hint, obj=alias, id=f"aicache.{problem.code}")
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
    return messages


@register(Tags.caches)
def check_redis_version(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """When Redis answers, refuse one older than aicache needs (client tracking BCAST, scripts).
    An unreachable Redis is not a configuration error: the cache degrades and checks on use."""
    from django.core.cache import caches
    from redis.exceptions import RedisError

    from aicache.guard import MIN_REDIS_VERSION, _server_info, parse_version

    messages: list[CheckMessage] = []
    for alias, _ in aicache_aliases():
        cache = caches[alias]
        if cache.config is None:
            continue  # reported by check_aicache_settings
        try:
            info = _server_info(cache.client.get_client(write=True))
        except (RedisError, OSError):
            continue
        text = str(info.get("redis_version", ""))
        if text and parse_version(text) < MIN_REDIS_VERSION:
            needed = ".".join(map(str, MIN_REDIS_VERSION))
            messages.append(
                Error(
                    f"Cache {alias!r}: Redis {text} is too old; aicache needs Redis {needed} or later.",
                    hint="Upgrade Redis (Debian 12 ships 7.0).",
                    obj=alias,
                    id=E_REDIS_VERSION,
                )
            )
    return messages


@register(Tags.caches)
def check_read_from_replicas(app_configs: Any = None, **kwargs: Any) -> list[CheckMessage]:
    """``READ_FROM_REPLICAS`` means something only under Sentinel or with a master + replicas
    ``LOCATION``. On Redis Cluster (aicache reads every key on its primary) or on one node, reads
    would go to the primary anyway, and the setting would still keep them out of the memory tier."""
    from django.core.cache import caches
    from django_redis.client import SentinelClient

    from aicache.cluster import ClusterClient

    messages: list[CheckMessage] = []
    for alias, _ in aicache_aliases():
        cache = caches[alias]
        if cache.config is None or not cache.config.read_from_replicas:
            continue
        client_cls = cache._client_cls
        if issubclass(client_cls, ClusterClient):
            where = "on Redis Cluster aicache reads every key from its primary"
        elif not issubclass(client_cls, SentinelClient) and len(cache.client._server) < 2:
            where = "its LOCATION names one server, so there is no replica"
        else:
            continue
        messages.append(
            Warning(
                f"Cache {alias!r}: READ_FROM_REPLICAS has no replica to read from ({where}); reads "
                "still go to the primary but are never kept in the memory tier.",
                hint="Remove READ_FROM_REPLICAS (or use Sentinel, or a LOCATION of a master followed "
                "by its replicas).",
                obj=alias,
                id=W_NO_REPLICAS,
            )
        )
    return messages
