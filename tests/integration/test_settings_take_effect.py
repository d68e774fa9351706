"""Every setting README's table promises is shown to take effect through a real cache (issue 18)."""

import time

import pytest
from django_redis.pool import ConnectionFactory

from aicache import dictionaries, namespace
from aicache.bench.payloads import llm_response
from aicache.codec import ZSTD_DICT_FLAG, ZlibCompressor, ZstdCompressor
from tests.helpers import FakeClock, pooled_connection
from tests.integration.test_single_flight import wait_behind_a_slow_compute

pytestmark = pytest.mark.integration

TEXT = "Settings are promises; each one is checked through a real cache here. " * 2


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


@pytest.fixture
def fresh_pools(monkeypatch):
    """django-redis keeps one connection pool per URL for the whole process: this test's caches
    build their own (the process's pools are back afterwards)."""
    monkeypatch.setattr(ConnectionFactory, "_pools", {})


def _timeouts(cache) -> tuple[float | None, float | None]:
    """The (socket timeout, connect timeout) of a connection redis-py really makes for ``cache``;
    the socket itself carries the first."""
    with pooled_connection(cache) as connection:
        assert connection._sock.gettimeout() == connection.socket_timeout
        return connection.socket_timeout, connection.socket_connect_timeout


GLOBAL = {"SOCKET_TIMEOUT": 1.25, "SOCKET_CONNECT_TIMEOUT": 0.75}


@pytest.mark.parametrize(
    ("global_settings", "options", "expected"),
    [
        ({}, {}, (0.5, 0.5)),  # aicache's defaults, not redis-py's own (5 s in redis-py 8)
        (GLOBAL, {}, (1.25, 0.75)),  # settings.AICACHE, for every cache
        (GLOBAL, {"SOCKET_TIMEOUT": 2.0}, (2.0, 0.75)),  # a cache's OPTIONS over the global, key by key
        (
            GLOBAL,
            {
                "SOCKET_TIMEOUT": 2.0,
                "CONNECTION_POOL_KWARGS": {"socket_timeout": 3.0, "socket_connect_timeout": 2.5},
            },
            (3.0, 2.5),  # django-redis's own pool kwargs over everything
        ),
    ],
    ids=["defaults", "global", "options", "pool-kwargs"],
)
def test_socket_timeouts_precedence(cache_with, settings, fresh_pools, global_settings, options, expected):
    """README (Configuration): defaults, then settings.AICACHE, then a cache's OPTIONS, and
    django-redis's own OPTIONS work as documented there (CONNECTION_POOL_KWARGS reach the pool)."""
    settings.AICACHE = {**settings.AICACHE, **global_settings}
    assert _timeouts(cache_with("timeouts", **options)) == expected


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


def test_single_flight_lock_timeout_is_the_lease(cache_with):
    cache = cache_with("s1", SINGLE_FLIGHT_LOCK_TIMEOUT=7.0, SINGLE_FLIGHT_WAIT_TIMEOUT=9.0)
    lock_key = cache.ns.lock(cache.key_generator.generate(TEXT, "qa"))
    seen = []

    def compute():
        seen.append(cache.redis.pttl(lock_key))
        return {"a": 1}

    cache.get_or_compute(TEXT, "qa", compute)
    assert 6000 < seen[0] <= 7000  # the lease the setting asked for


def test_single_flight_wait_timeout_bounds_a_waiter(cache_with):
    """A caller waiting on another's compute gives up after SINGLE_FLIGHT_WAIT_TIMEOUT (no
    per-call wait_timeout) and computes itself; the other compute would take 10 s."""
    cache = cache_with("s2", SINGLE_FLIGHT_WAIT_TIMEOUT=0.4, SINGLE_FLIGHT_LOCK_TIMEOUT=7.0)
    result, waited = wait_behind_a_slow_compute(cache, cache)
    assert result["answer"] == "own" and result["cache_source"] == "compute"
    assert 0.4 <= waited < 0.4 + 1.0, waited  # the setting, not the 7 s lease nor the 60 s default
    counters = cache._state.counter_snapshot()
    assert (counters["single_flight_waits"], counters["single_flight_wait_timeouts"]) == (1, 1)


def _samples(cache, n: int) -> None:
    for i in range(n):
        cache.cache_response(f"{TEXT} {i}", "summarize", None, llm_response(800, seed=i))


def test_dictionary_size_is_the_trained_dictionarys_size(cache_with):
    sizes = []
    for size in (1024, 4096):
        cache = cache_with(f"z{size}", DICTIONARY_SIZE=size, DICTIONARY_MIN_SAMPLES=50)
        _samples(cache, 120)  # about 77 KB to train on: room for either size
        result = dictionaries.train_operation(cache, "summarize")
        assert result.outcome == "trained", result
        sizes.append(len(cache.redis.get(namespace.dictionary_key("ai_cache", result.dict_id))))
    assert sizes == [1024, 4096]


def test_dictionary_refresh_seconds_is_how_long_writers_keep_their_dictionary(cache_with, monkeypatch):
    """A process re-reads which dictionary an operation's writers use once per
    DICTIONARY_REFRESH_SECONDS: one trained elsewhere is used from then on, not before. A retired
    dictionary outlives its frames by the longest TTL plus that interval (and a minute)."""
    clock = FakeClock(1_000.0, wall_offset=time.time() - 1_000.0)
    monkeypatch.setattr(dictionaries, "time", clock)
    writer = cache_with("w", DICTIONARY_REFRESH_SECONDS=30.0, DICTIONARY_MIN_SAMPLES=50)
    trainer = cache_with("t", DICTIONARY_MIN_SAMPLES=50)  # another process: its own registry
    _samples(writer, 120)  # the writer reads the pointer now: no dictionary yet

    def flag_of_a_new_write(n: int) -> int:
        writer.cache_response(f"{TEXT} new {n}", "summarize", None, llm_response(800, seed=n))
        return writer.redis.get(writer.key_generator.generate(f"{TEXT} new {n}", "summarize"))[1]

    first = dictionaries.train_operation(trainer, "summarize")
    assert first.outcome == "trained"
    clock.now += 29.9
    assert flag_of_a_new_write(1) == ZstdCompressor.flag  # plain: the writer has not re-read the pointer
    clock.now += 0.1
    assert flag_of_a_new_write(2) == ZSTD_DICT_FLAG
    assert dictionaries.train_operation(writer, "summarize").outcome == "trained"  # retires the first
    retired = writer.redis.ttl(namespace.dictionary_key("ai_cache", first.dict_id))
    assert 86_400 + 30 + 60 - 2 <= retired <= 86_400 + 30 + 60  # sentiment's TTL is the longest


def test_a_custom_monitor_class_receives_the_records(cache_with):
    CountingMonitor.instances.clear()
    cache = cache_with("mon", MONITOR_CLASS="tests.integration.test_settings_take_effect.CountingMonitor")
    cache.get_cached_response(TEXT, "qa")
    (monitor,) = CountingMonitor.instances
    assert monitor.lookups == [("qa", "small", "")] and monitor.options["name"] == "ai_cache"


def test_a_broken_recorder_never_breaks_a_cache_call(cache_with, monkeypatch):
    """Every record method ends in ``_enqueue``: broken there, each cache call below still works,
    and the monitor counts each record it failed to take (tests/unit/monitoring/test_recorder.py
    breaks each method alone)."""
    from aicache.monitoring.exporter import get_exporter

    cache = cache_with("broken")
    monitor = cache.monitor
    # The exporter thread samples a newly registered monitor's memory on its next tick: take that
    # sample now, so that none lands among the records counted below (MEMORY_SAMPLE_SECONDS: 10).
    get_exporter().flush_now(ship=False)
    monkeypatch.setattr(monitor, "_enqueue", lambda item: (_ for _ in ()).throw(RuntimeError("broken")))
    failures = monitor.failures
    cache.cache_response(TEXT, "qa", None, {"a": "x" * 3000}, tags=["t"])  # set, key, compression
    after_write = monitor.failures
    assert after_write - failures == 3
    assert cache.get_cached_response(TEXT, "qa")["a"] == "x" * 3000  # lookup
    assert cache.get_or_compute(TEXT + " 2", "qa", lambda: {"a": 0})["cache_hit"] is False
    assert cache.get_or_compute(TEXT + " 2", "qa", lambda: {"a": 1})["a"] == 0  # hit + its saving
    assert cache.invalidate_tags(["t"]) == 1  # invalidation event
    assert monitor.failures - after_write == 7  # 1 + (key, set, lookup) + (lookup, saving) + 1
