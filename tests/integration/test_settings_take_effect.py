"""Every setting README's table promises is shown to take effect through a real cache (issue 18)."""

import pytest
from django.core.cache import caches

from aicache.codec import ZlibCompressor

pytestmark = pytest.mark.integration

TEXT = "Settings are promises; each one is checked through a real cache here. " * 2


@pytest.fixture
def cache_with(settings, redis_server):
    def build(alias="configured", db=0, **options):
        settings.CACHES = {
            **settings.CACHES,
            alias: {
                "BACKEND": "aicache.backend.AIResponseCache",
                "LOCATION": f"{redis_server.url}/{db}",
                "OPTIONS": {"MEMORY_COHERENCE": "local", **options},
            },
        }
        cache = caches[alias]
        cache.redis.flushdb()
        return cache

    return build


class LabelledZlib(ZlibCompressor):
    """A custom compressor (a dotted path in COMPRESSION_ALGORITHM) with a flag of its own."""

    name = "labelled-zlib"
    flag = 9


class CountingMonitor:
    """A custom MONITOR_CLASS: the cache reports to whatever class the setting names."""

    instances: list["CountingMonitor"] = []

    def __init__(self, **options):
        self.options, self.lookups = options, []
        CountingMonitor.instances.append(self)

    def record_lookup(self, operation_type, tier, source, *args):
        self.lookups.append((operation_type, tier, source))

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def test_django_redis_timeouts_take_precedence_over_aicache_defaults(cache_with):
    # django-redis keeps one connection pool per URL for the whole process: other databases here.
    default = cache_with("d1", db=2)
    assert default.redis.connection_pool.connection_kwargs["socket_timeout"] == 0.5
    own = cache_with("d2", db=3, SOCKET_TIMEOUT=2.0, SOCKET_CONNECT_TIMEOUT=1.5)
    kwargs = own.redis.connection_pool.connection_kwargs
    assert (kwargs["socket_timeout"], kwargs["socket_connect_timeout"]) == (2.0, 1.5)


def test_custom_key_prefix_is_all_invalidate_all_touches(cache_with):
    ours = cache_with("p1", KEY_PREFIX="tenant-a")
    theirs = cache_with("p2", KEY_PREFIX="tenant-b")
    ours.cache_response(TEXT, "qa", None, {"a": 1})
    theirs.cache_response(TEXT, "qa", None, {"b": 1})
    assert ours.key_generator.generate(TEXT, "qa").startswith("tenant-a:qa:")
    assert ours.invalidate_all() == 1
    assert theirs.get_cached_response(TEXT, "qa")["b"] == 1


def test_memory_tiers_off_and_sizes(cache_with):
    off = cache_with("m1", MEMORY_TIERS=[])
    off.cache_response(TEXT, "qa", None, {"a": 1})
    off.get_cached_response(TEXT, "qa")
    assert off.get_cached_response(TEXT, "qa")["cache_source"] == "redis" and len(off.memory) == 0
    small = cache_with("m2", MEMORY_CACHE_SIZE=2)
    for i in range(4):
        small.cache_response(f"{TEXT} {i}", "qa", None, {"a": i})
        small.get_cached_response(f"{TEXT} {i}", "qa")
    assert len(small.memory) == 2  # LRU by entries
    tiny = cache_with("m3", MEMORY_CACHE_MAX_BYTES=30)
    tiny.cache_response(TEXT, "qa", None, {"a": "x" * 100})
    tiny.get_cached_response(TEXT, "qa")
    assert len(tiny.memory) == 0  # larger than the byte budget: never kept


def test_compression_threshold_level_and_a_custom_compressor(cache_with):
    never = cache_with("c1", COMPRESSION_THRESHOLD=10**6)
    never.cache_response(TEXT, "qa", None, {"a": "word " * 500})
    assert never.get_cached_response(TEXT, "qa")["compression_used"] is False
    fast, best = cache_with("c2", COMPRESSION_LEVEL=1), cache_with("c3", COMPRESSION_LEVEL=9)
    body = {"a": " ".join(f"token{i % 97}" for i in range(3000))}
    sizes = []
    for cache in (fast, best):
        cache.cache_response(TEXT, "qa", None, body)
        sizes.append(cache.redis.strlen(cache.key_generator.generate(TEXT, "qa")))
    assert sizes[1] < sizes[0]
    custom = cache_with(
        "c4", COMPRESSION_ALGORITHM="tests.integration.test_settings_take_effect.LabelledZlib"
    )
    custom.cache_response(TEXT, "qa", None, {"a": "z" * 2000})
    raw = custom.redis.get(custom.key_generator.generate(TEXT, "qa"))
    assert raw[1] == 9 and custom.get_cached_response(TEXT, "qa")["a"] == "z" * 2000


def test_hash_algorithm_and_ttl_overrides(cache_with):
    blake = cache_with("h1", HASH_ALGORITHM="blake2b", OPERATION_TTLS={"qa": 77}, DEFAULT_TTL=55)
    sha = cache_with("h2")
    assert blake.key_generator.generate(TEXT, "qa") != sha.key_generator.generate(TEXT, "qa")
    blake.cache_response(TEXT, "qa", None, {"a": 1})
    blake.cache_response(TEXT, "other", None, {"a": 1})
    assert 70 <= blake.redis.ttl(blake.key_generator.generate(TEXT, "qa")) <= 77
    assert 50 <= blake.redis.ttl(blake.key_generator.generate(TEXT, "other")) <= 55


def test_single_flight_timeouts_from_settings(cache_with):
    cache = cache_with("s1", SINGLE_FLIGHT_LOCK_TIMEOUT=7.0, SINGLE_FLIGHT_WAIT_TIMEOUT=9.0)
    assert (cache.config.single_flight_lock_timeout, cache.config.single_flight_wait_timeout) == (7.0, 9.0)
    lock_key = cache.ns.lock(cache.key_generator.generate(TEXT, "qa"))
    seen = []

    def compute():
        seen.append(cache.redis.pttl(lock_key))
        return {"a": 1}

    cache.get_or_compute(TEXT, "qa", compute)
    assert 6000 < seen[0] <= 7000  # the lease the setting asked for


def test_a_custom_monitor_class_receives_the_records(cache_with):
    CountingMonitor.instances.clear()
    cache = cache_with("mon", MONITOR_CLASS="tests.integration.test_settings_take_effect.CountingMonitor")
    cache.get_cached_response(TEXT, "qa")
    (monitor,) = CountingMonitor.instances
    assert monitor.lookups == [("qa", "small", "")] and monitor.options["name"] == "ai_cache"


def test_a_broken_recorder_never_breaks_a_cache_call(cache_with, monkeypatch):
    cache = cache_with("broken")
    monitor = cache.monitor
    for name in (
        "record_lookup",
        "record_key_generation_time",
        "record_cache_operation_time",
        "record_compression_ratio",
        "record_invalidation_event",
        "record_memory_usage",
        "record_saving",
        "count",
    ):
        monkeypatch.setattr(monitor, "_enqueue", lambda item: (_ for _ in ()).throw(RuntimeError("broken")))
        assert callable(getattr(monitor, name))
    cache.cache_response(TEXT, "qa", None, {"a": "x" * 3000}, tags=["t"])
    assert cache.get_cached_response(TEXT, "qa")["a"] == "x" * 3000
    assert cache.get_or_compute(TEXT, "qa", lambda: {"a": 0})["cache_hit"] is True
    assert cache.invalidate_tags(["t"]) == 1
