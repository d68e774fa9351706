from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import SystemCheckError

from aicache.checks import check_aicache_settings

BAD_SETTINGS = [
    ("aicache.E001", "TEXT_SIZE_TIERS", {"TEXT_SIZE_TIERS": {"small": 500, "medium": 400}}),
    ("aicache.E001", "TEXT_SIZE_TIERS", {"TEXT_SIZE_TIERS": {"small": -5}}),
    ("aicache.E001", "TEXT_SIZE_TIERS", {"TEXT_SIZE_TIERS": {}}),
    ("aicache.E001", "TEXT_SIZE_TIERS", {"TEXT_SIZE_TIERS": {"xlarge": 10}}),
    ("aicache.E002", "MEMORY_TIERS", {"MEMORY_TIERS": ["tiny"]}),
    ("aicache.E002", "MEMORY_TIERS", {"MEMORY_TIERS": "small"}),
    ("aicache.E002", "MEMORY_CACHE_SIZE", {"MEMORY_CACHE_SIZE": -1}),
    ("aicache.E002", "MEMORY_CACHE_MAX_BYTES", {"MEMORY_CACHE_MAX_BYTES": "10MB"}),
    ("aicache.E003", "COMPRESSION_ALGORITHM", {"COMPRESSION_ALGORITHM": "lzma"}),
    ("aicache.E003", "COMPRESSION_LEVEL", {"COMPRESSION_ALGORITHM": "zlib", "COMPRESSION_LEVEL": 12}),
    ("aicache.E003", "COMPRESSION_LEVEL", {"COMPRESSION_ALGORITHM": "zstd", "COMPRESSION_LEVEL": 0}),
    ("aicache.E003", "COMPRESSION_THRESHOLD", {"COMPRESSION_THRESHOLD": -1}),
    ("aicache.E003", "COMPRESSION_DICTIONARIES", {"COMPRESSION_DICTIONARIES": "yes"}),
    ("aicache.E003", "DICTIONARY_MIN_SAMPLES", {"DICTIONARY_MIN_SAMPLES": 5}),
    ("aicache.E003", "DICTIONARY_MIN_SAMPLES", {"DICTIONARY_MIN_SAMPLES": 2001}),  # never sampled
    ("aicache.E003", "COMPRESSION_ALGORITHM", {"COMPRESSION_ALGORITHM": "tests.unit.test_codec.FlagThree"}),
    ("aicache.E003", "DICTIONARY_SIZE", {"DICTIONARY_SIZE": 100}),
    ("aicache.E003", "DICTIONARY_REFRESH_SECONDS", {"DICTIONARY_REFRESH_SECONDS": 0}),
    ("aicache.E004", "HASH_ALGORITHM", {"HASH_ALGORITHM": "md5"}),
    ("aicache.E005", "DEFAULT_TTL", {"DEFAULT_TTL": 0}),
    ("aicache.E005", "DEFAULT_TTL", {"DEFAULT_TTL": 1.5}),
    ("aicache.E005", "OPERATION_TTLS", {"OPERATION_TTLS": {"summarize": -1}}),
    ("aicache.E005", "OPERATION_TTLS", {"OPERATION_TTLS": {"Bad Op": 10}}),
    ("aicache.E006", "KEY_PREFIX", {"KEY_PREFIX": "ai*cache"}),
    ("aicache.E006", "KEY_PREFIX", {"KEY_PREFIX": ""}),
    ("aicache.E007", "MAX_TEXT_LENGTH", {"MAX_TEXT_LENGTH": 0}),
    ("aicache.E010", "SOCKET_TIMEOUT", {"SOCKET_TIMEOUT": -1}),
    ("aicache.E010", "CIRCUIT_BREAKER_FAILURES", {"CIRCUIT_BREAKER_FAILURES": 0}),
    ("aicache.E010", "SINGLE_FLIGHT_LOCK_TIMEOUT", {"SINGLE_FLIGHT_LOCK_TIMEOUT": 0}),
    ("aicache.E010", "READ_FROM_REPLICAS", {"READ_FROM_REPLICAS": "yes"}),
    ("aicache.E011", "MONITOR_CLASS", {"MONITOR_CLASS": "no.such.Monitor"}),
    ("aicache.E011", "MONITOR_RETENTION_HOURS", {"MONITOR_RETENTION_HOURS": 0}),
    ("aicache.E011", "INVALIDATION_RATE_CRITICAL_PER_HOUR", {"INVALIDATION_RATE_CRITICAL_PER_HOUR": 10}),
    ("aicache.E011", "METRICS_PUBLIC", {"METRICS_PUBLIC": "yes"}),
    ("aicache.E011", "FLUSH_INTERVAL", {"FLUSH_INTERVAL": -5}),
    ("aicache.E011", "RETENTION_RAW_DAYS", {"RETENTION_RAW_DAYS": 0}),
    ("aicache.E011", "HISTORY_ENABLED", {"HISTORY_ENABLED": 1}),
]


@pytest.mark.parametrize("check_id,setting,bad", BAD_SETTINGS)
def test_global_setting_errors(settings, check_id, setting, bad):
    settings.AICACHE = bad
    messages = check_aicache_settings()
    assert [m.id for m in messages] == [check_id]
    assert setting in messages[0].msg and messages[0].hint


@pytest.mark.parametrize(
    "check_id,setting,bad",
    [*BAD_SETTINGS[:4], ("aicache.E002", "MEMORY_COHERENCE", {"MEMORY_COHERENCE": "pubsub"})],
)
def test_per_cache_option_errors(settings, check_id, setting, bad):
    settings.CACHES = {
        **settings.CACHES,
        "ai": {**settings.CACHES["ai"], "OPTIONS": {**settings.CACHES["ai"]["OPTIONS"], **bad}},
    }
    messages = check_aicache_settings()
    assert [(m.id, m.obj) for m in messages] == [(check_id, "ai")]


def test_valid_configuration_is_clean(settings):
    settings.AICACHE = {"COMPRESSION_ALGORITHM": "zstd", "COMPRESSION_LEVEL": 19, "MEMORY_TIERS": []}
    assert check_aicache_settings() == []


def test_unknown_setting_warns(settings):
    settings.AICACHE = {"DEFAULT_TTl": 10}
    assert [m.id for m in check_aicache_settings()] == ["aicache.W001"]


def test_pickle_serializer_is_an_error(settings):
    settings.CACHES = {
        **settings.CACHES,
        "ai": {
            **settings.CACHES["ai"],
            "OPTIONS": {
                **settings.CACHES["ai"]["OPTIONS"],
                "SERIALIZER": "django_redis.serializers.pickle.PickleSerializer",
            },
        },
    }
    assert [m.id for m in check_aicache_settings()] == ["aicache.E009"]


def test_manage_py_check_reports_instead_of_crashing(settings):
    from django.core.cache import caches

    settings.AICACHE = {"HASH_ALGORITHM": "crc32"}
    with pytest.raises(SystemCheckError, match=r"aicache\.E004.*HASH_ALGORITHM"):
        call_command("check", stdout=StringIO(), stderr=StringIO())
    # The misconfigured cache exists (Django's own checks build it) but refuses AI calls clearly.
    from django.core.exceptions import ImproperlyConfigured

    with pytest.raises(ImproperlyConfigured, match="HASH_ALGORITHM"):
        caches["ai"].get_cached_response("text", "summarize")
    assert caches["ai"].ping() is False


def test_check_passes_on_the_test_settings():
    out = StringIO()
    call_command("check", stdout=out)  # raises SystemCheckError on any error
    assert "System check identified no issues" in out.getvalue()


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [
        ("COHERENCE_PROBE_SECONDS", 0, "aicache.E010"),
        ("COHERENCE_LIVENESS_SECONDS", float("nan"), "aicache.E010"),
        ("COHERENCE_LIVENESS_SECONDS", 0.5, "aicache.E010"),  # not longer than the 1 s probe
        ("DEFAULT_TTL", 2**32, "aicache.E005"),
        ("OPERATION_TTLS", {"qa\n": 10}, "aicache.E005"),
    ],
)
def test_coherence_and_ttl_settings_checked(settings, name, value, code):
    settings.AICACHE = {name: value}
    messages = check_aicache_settings()
    assert [m.id for m in messages] == [code] and name in messages[0].msg


@pytest.mark.parametrize(
    ("name", "value", "code"),
    [
        ("METRICS_EXPORT_SECONDS", float("nan"), "aicache.E011"),
        ("METRICS_EXPORT_SECONDS", float("inf"), "aicache.E011"),
        ("FLUSH_INTERVAL", float("nan"), "aicache.E011"),
        ("SOCKET_TIMEOUT", 1e300, "aicache.E010"),
        ("SINGLE_FLIGHT_WAIT_TIMEOUT", 86401, "aicache.E010"),
    ],
)
def test_non_finite_and_absurd_durations_refused(settings, name, value, code):
    settings.AICACHE = {name: value}
    assert [m.id for m in check_aicache_settings()] == [code]


def test_dictionaries_asked_for_with_an_algorithm_other_than_zstd_warn(settings):
    settings.AICACHE = {"COMPRESSION_ALGORITHM": "zlib", "COMPRESSION_DICTIONARIES": True}
    messages = check_aicache_settings()
    assert [m.id for m in messages] == ["aicache.W002"]
    assert "zlib" in messages[0].msg and "COMPRESSION_DICTIONARIES" in messages[0].hint


@pytest.mark.parametrize(
    "aicache",
    [
        {"COMPRESSION_ALGORITHM": "zlib"},  # the default True, not asked for: quiet
        {"COMPRESSION_ALGORITHM": "zlib", "COMPRESSION_DICTIONARIES": False},
        {"COMPRESSION_ALGORITHM": "zstd", "COMPRESSION_DICTIONARIES": True},
    ],
)
def test_no_dictionary_warning_where_nothing_is_wasted(settings, aicache):
    settings.AICACHE = aicache
    assert check_aicache_settings() == []


def test_dictionary_warning_for_one_cache_s_options(settings):
    settings.CACHES = {
        **settings.CACHES,
        "ai": {
            **settings.CACHES["ai"],
            "OPTIONS": {**settings.CACHES["ai"]["OPTIONS"], "COMPRESSION_ALGORITHM": "none"},
        },
    }
    settings.AICACHE = {"COMPRESSION_DICTIONARIES": True}
    assert [(m.id, m.obj) for m in check_aicache_settings()] == [("aicache.W002", "ai")]


def _replica_cache(settings, location: str, **options) -> None:
    settings.CACHES = {
        "default": settings.CACHES["default"],
        "ai": {
            "BACKEND": "aicache.backend.AIResponseCache",
            "LOCATION": location,
            "OPTIONS": {"READ_FROM_REPLICAS": True, **options},
        },
    }


@pytest.mark.parametrize(
    ("location", "options", "why"),
    [
        ("redis://127.0.0.1:1/0", {}, "names one server"),
        (
            "redis://127.0.0.1:1,redis://127.0.0.1:2",
            {"CLIENT_CLASS": "aicache.cluster.ClusterClient"},
            "Cluster",
        ),
    ],
)
def test_read_from_replicas_without_replicas_warns(settings, location, options, why):
    """Review finding: READ_FROM_REPLICAS on Cluster or on one node silently read the primary and
    stopped filling the memory tier; now manage.py check says so (nothing connects to Redis)."""
    from aicache.checks import check_read_from_replicas

    _replica_cache(settings, location, **options)
    (message,) = check_read_from_replicas()
    assert message.id == "aicache.W011" and message.obj == "ai"
    assert "READ_FROM_REPLICAS" in message.msg and why in message.msg and "memory tier" in message.msg


@pytest.mark.parametrize(
    ("location", "options"),
    [
        ("redis://127.0.0.1:1/0,redis://127.0.0.1:2/0", {}),  # a master and its replica
        (
            "redis://mymaster/0",
            {
                "CLIENT_CLASS": "django_redis.client.SentinelClient",
                "CONNECTION_FACTORY": "django_redis.pool.SentinelConnectionFactory",
                "SENTINELS": [("127.0.0.1", 1)],
            },
        ),
    ],
)
def test_read_from_replicas_with_replicas_is_clean(settings, location, options):
    from aicache.checks import check_read_from_replicas

    _replica_cache(settings, location, **options)
    assert check_read_from_replicas() == []
    _replica_cache(settings, "redis://127.0.0.1:1/0", READ_FROM_REPLICAS=False)
    assert check_read_from_replicas() == []
