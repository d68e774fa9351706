"""Trained dictionaries on a real Redis: trained by the command, published, loaded by another
process; retraining while old frames exist; a frame whose dictionary is gone is a counted miss."""

import json
import logging
import os
import subprocess
import sys
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import call_command
from django.core.management.base import CommandError

from aicache import dictionaries, namespace
from aicache.bench.payloads import llm_response
from aicache.bench.redis_server import free_port
from aicache.codec import HEADER_SIZE, ZSTD_DICT_FLAG
from aicache.state import reset_process_state
from tests.integration.processes import ROOT

pytestmark = pytest.mark.integration

READER = """
import json, sys
import django
django.setup()
from django.core.cache import caches
cache = caches["ai"]
hits = [cache.get_cached_response(t, "summarize") for t in json.loads(sys.argv[1])]
print(json.dumps({"answers": [h and h["summary"] for h in hits], "errors": cache.error_counts()}))
"""


@pytest.fixture
def cache(settings, redis_server):
    redis_server.client().flushdb()
    settings.CACHES = {
        **settings.CACHES,
        "dict": {
            "BACKEND": "aicache.backend.AIResponseCache",
            "LOCATION": f"{redis_server.url}/0",
            "OPTIONS": {"MEMORY_TIERS": [], "DICTIONARY_MIN_SAMPLES": 50},
        },
    }
    yield caches["dict"]
    redis_server.client().flushdb()


def text(i: int) -> str:
    return f"Document {i}: a request long enough to be a real prompt for a summary."


def fill(cache, start: int, n: int) -> None:
    for i in range(start, start + n):
        cache.cache_response(text(i), "summarize", None, llm_response(800, seed=i))


def other_process(redis_server, texts: list[str]) -> dict:
    env = {**os.environ, "AICACHE_TEST_REDIS_URL": f"{redis_server.url}/0"}
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings_real"
    out = subprocess.run(
        [sys.executable, "-c", READER, json.dumps(texts)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def flag_of(cache, i: int) -> int:
    return cache.redis.get(cache.key_generator.generate(text(i), "summarize"))[1]


def test_trained_by_the_command_used_by_writers_and_read_by_another_process(cache, redis_server):
    fill(cache, 0, 40)
    out = StringIO()
    call_command("aicache_train_dictionaries", "--cache", "dict", stdout=out)
    assert "summarize: too_few_samples (40 samples" in out.getvalue()
    fill(cache, 40, 80)
    call_command("aicache_train_dictionaries", "--cache", "dict", stdout=out)
    assert "summarize: trained (120 samples" in out.getvalue()
    assert flag_of(cache, 0) == 2  # written before: plain zstd
    fill(cache, 1000, 1)
    assert flag_of(cache, 1000) == ZSTD_DICT_FLAG  # this process switched at once
    seen = other_process(redis_server, [text(0), text(1000)])
    assert seen["answers"] == [llm_response(800, seed=0)["summary"], llm_response(800, seed=1000)["summary"]]
    assert seen["errors"]["unknown_dictionary"] == 0


def test_retraining_keeps_frames_of_the_previous_dictionary_readable(cache, redis_server):
    fill(cache, 0, 120)
    call_command("aicache_train_dictionaries", stdout=StringIO())
    fill(cache, 2000, 1)
    first_id = int(cache.redis.get(namespace.dictionary_pointer("ai_cache", "summarize")))
    call_command("aicache_train_dictionaries", stdout=StringIO())
    fill(cache, 3000, 1)
    second_id = int(cache.redis.get(namespace.dictionary_pointer("ai_cache", "summarize")))
    assert second_id != first_id
    frames = [cache.redis.get(cache.key_generator.generate(text(i), "summarize")) for i in (2000, 3000)]
    assert [int.from_bytes(f[HEADER_SIZE : HEADER_SIZE + 4], "big") for f in frames] == [first_id, second_id]
    old_key = namespace.dictionary_key("ai_cache", first_id)
    assert cache.redis.ttl(old_key) >= 7200  # outlives every frame it compressed (longest TTL)
    assert cache.redis.ttl(namespace.dictionary_key("ai_cache", second_id)) == -1
    seen = other_process(redis_server, [text(2000), text(3000)])
    assert seen["answers"] == [llm_response(800, seed=i)["summary"] for i in (2000, 3000)]


def test_a_frame_whose_dictionary_is_gone_is_a_counted_miss(cache, redis_server):
    fill(cache, 0, 120)
    call_command("aicache_train_dictionaries", "--operation", "summarize", stdout=StringIO())
    fill(cache, 4000, 1)
    dict_id = int(cache.redis.get(namespace.dictionary_pointer("ai_cache", "summarize")))
    cache.redis.delete(namespace.dictionary_key("ai_cache", dict_id))
    reset_process_state()  # a process that never loaded it
    fresh = caches["dict"]
    assert fresh.get_cached_response(text(4000), "summarize") is None
    assert fresh.error_counts()["unknown_dictionary"] == 1
    assert fresh.monitor.get_performance_stats()["cache_misses"] == 1
    seen = other_process(redis_server, [text(4000)])
    assert seen["answers"] == [None] and seen["errors"]["unknown_dictionary"] == 1


def test_the_beat_task_trains_every_configured_cache(cache, settings):
    from aicache.monitoring.tasks import train_dictionaries

    settings.CACHES = {"dict": settings.CACHES["dict"], "default": settings.CACHES["default"]}
    fill(cache, 0, 60)
    lines = train_dictionaries()
    assert len(lines) == 1 and lines[0].startswith("dict summarize: trained")
    assert cache.dictionaries.for_write("summarize") is not None


def current_id(cache) -> int:
    return int(cache.redis.get(namespace.dictionary_pointer("ai_cache", "summarize")))


def test_ids_are_never_reused_after_redis_lost_its_data(cache, redis_server):
    """FLUSHDB (or a failover to a replica that lagged) while this process holds dictionary A:
    the next dictionary must not get A's id, or this process would write and read the new
    dictionary's frames with A (frames nobody else can read, reads counted as corrupt)."""
    fill(cache, 0, 120)
    call_command("aicache_train_dictionaries", stdout=StringIO())
    first = current_id(cache)
    assert dictionaries.MIN_ID <= first <= dictionaries.MAX_ID
    fill(cache, 5000, 1)
    assert cache.get_cached_response(text(5000), "summarize") is not None  # A loaded, in use
    cache.redis.flushdb()  # Redis loses everything; this process keeps its dictionaries
    fill(cache, 200, 120)
    call_command("aicache_train_dictionaries", stdout=StringIO())
    second = current_id(cache)
    assert second != first
    fill(cache, 6000, 1)
    frame = cache.redis.get(cache.key_generator.generate(text(6000), "summarize"))
    assert int.from_bytes(frame[HEADER_SIZE : HEADER_SIZE + 4], "big") == second
    assert (
        cache.get_cached_response(text(6000), "summarize")["summary"]
        == llm_response(800, seed=6000)["summary"]
    )
    seen = other_process(redis_server, [text(6000)])
    assert seen["answers"] == [llm_response(800, seed=6000)["summary"]]
    assert seen["errors"]["corrupt_entry"] == seen["errors"]["unknown_dictionary"] == 0
    assert cache.error_counts()["corrupt_entry"] == 0


def test_an_id_redis_already_holds_is_never_taken_over(cache, monkeypatch):
    fill(cache, 0, 120)
    taken = namespace.dictionary_key("ai_cache", 40_000)
    cache.redis.set(taken, b"another dictionary")
    ids = iter([40_000, 40_000, 50_000])
    monkeypatch.setattr(dictionaries, "new_id", lambda: next(ids))
    result = dictionaries.train_operation(cache, "summarize")
    assert result.outcome == "trained" and result.dict_id == 50_000
    assert cache.redis.get(taken) == b"another dictionary"
    assert current_id(cache) == 50_000
    monkeypatch.setattr(dictionaries, "new_id", lambda: 40_000)  # every id taken: nothing published
    assert dictionaries.train_operation(cache, "summarize").outcome == "failed"
    assert current_id(cache) == 50_000


MONTH = 30 * 24 * 3600


def test_a_retired_dictionary_outlives_the_longest_frame_in_the_index(cache, settings):
    """Another process configured with a longer TTL (or an older frame with a long per-call ttl)
    wrote with dictionary A: A is kept until that frame's expiry, not this trainer's 2 h."""
    settings.CACHES = {
        **settings.CACHES,
        "long": {
            **settings.CACHES["dict"],
            "OPTIONS": {"MEMORY_TIERS": [], "OPERATION_TTLS": {"summarize": MONTH}},
        },
    }
    fill(cache, 0, 120)
    call_command("aicache_train_dictionaries", "--cache", "dict", stdout=StringIO())
    first = current_id(cache)
    caches["long"].cache_response(text(7000), "summarize", None, llm_response(800, seed=7000))
    assert flag_of(cache, 7000) == ZSTD_DICT_FLAG  # a month-long frame compressed with A
    call_command("aicache_train_dictionaries", "--cache", "dict", stdout=StringIO())
    assert current_id(cache) != first
    assert cache.redis.ttl(namespace.dictionary_key("ai_cache", first)) >= MONTH


def test_a_per_call_ttl_above_the_longest_configured_one_is_written_without_a_dictionary(cache):
    fill(cache, 0, 120)
    call_command("aicache_train_dictionaries", "--cache", "dict", stdout=StringIO())
    longest = cache._max_ttl  # the longest configured TTL (sentiment's day)
    assert longest == 86400
    cache.cache_response(text(8000), "summarize", None, llm_response(800, seed=8000), ttl=longest)
    cache.cache_response(text(8001), "summarize", None, llm_response(800, seed=8001), ttl=longest + 1)
    assert flag_of(cache, 8000) == ZSTD_DICT_FLAG  # up to the longest configured TTL: dictionary
    assert flag_of(cache, 8001) == 2  # beyond it: plain zstd, readable whatever dictionary retires
    assert (
        cache.get_cached_response(text(8001), "summarize")["summary"]
        == llm_response(800, seed=8001)["summary"]
    )


@pytest.mark.parametrize("pointer", [b"not-an-id", b"-5", b"4294967296", b"1.5"])
def test_a_pointer_that_is_not_an_id_is_a_counted_fault_and_writes_go_on_without_a_dictionary(cache, pointer):
    for operation in ("summarize", "qa"):
        cache.redis.set(namespace.dictionary_pointer("ai_cache", operation), pointer)
    cache.cache_response(text(1), "summarize", None, llm_response(800, seed=1))
    assert flag_of(cache, 1) == 2
    assert cache.error_counts()["corrupt_entry"] == 1
    computed = llm_response(800, seed=2)
    result = cache.get_or_compute(text(2), "qa", lambda: computed)
    assert result["summary"] == computed["summary"] and result["cache_hit"] is False
    assert cache.get_or_compute(text(2), "qa", lambda: pytest.fail("recomputed"))["cache_hit"] is True
    assert cache.error_counts()["corrupt_entry"] == 2  # once per operation and refresh interval
    cache.cache_response(text(3), "summarize", None, llm_response(800, seed=3))
    assert cache.error_counts()["corrupt_entry"] == 2


def test_corrupt_dictionary_bytes_are_a_counted_fault_and_the_computed_result_is_kept(cache):
    cache.redis.set(namespace.dictionary_key("ai_cache", 40_000), b"\x37\xa4\x30\xec" + b"x" * 300)
    cache.redis.set(namespace.dictionary_pointer("ai_cache", "qa"), b"40000")
    computed = llm_response(800, seed=2)
    result = cache.get_or_compute(text(2), "qa", lambda: computed)
    assert result["summary"] == computed["summary"] and result["cache_hit"] is False
    assert cache.redis.get(cache.key_generator.generate(text(2), "qa"))[1] == 2  # written without it
    assert cache.get_or_compute(text(2), "qa", lambda: pytest.fail("recomputed"))["cache_hit"] is True
    assert cache.error_counts()["corrupt_entry"] == 1
    cache.cache_response(text(3), "qa", None, llm_response(800, seed=3))
    assert cache.error_counts()["corrupt_entry"] == 1  # not tried again until the pointer is re-read


def test_get_or_compute_counts_a_gone_dictionary_once(cache):
    """The leader reads the entry, then re-reads it under the lock: one call, one fault."""
    fill(cache, 0, 120)
    call_command("aicache_train_dictionaries", "--cache", "dict", stdout=StringIO())
    fill(cache, 9000, 1)
    cache.redis.delete(namespace.dictionary_key("ai_cache", current_id(cache)))
    reset_process_state()  # a process that never loaded it
    fresh = caches["dict"]
    computed = llm_response(800, seed=9000)
    result = fresh.get_or_compute(text(9000), "summarize", lambda: computed)
    assert result["cache_hit"] is False and result["summary"] == computed["summary"]
    assert fresh.error_counts()["unknown_dictionary"] == 1
    assert fresh.get_or_compute(text(9000), "summarize", lambda: pytest.fail("recomputed"))["cache_hit"]
    assert fresh.error_counts()["unknown_dictionary"] == 1


@pytest.fixture
def dead(settings):
    """A second aicache cache whose Redis is down (nothing listens on its port)."""
    settings.CACHES = {
        **settings.CACHES,
        "dead": {
            "BACKEND": "aicache.backend.AIResponseCache",
            "LOCATION": f"redis://127.0.0.1:{free_port()}/0",
            "OPTIONS": {"MEMORY_TIERS": [], "SOCKET_CONNECT_TIMEOUT": 0.5, "SOCKET_TIMEOUT": 0.5},
        },
    }
    return caches["dead"]


def test_the_command_with_redis_down_prints_failed_and_exits_non_zero(cache, dead):
    fill(cache, 0, 60)
    out = StringIO()
    with pytest.raises(CommandError, match="failed for dead"):
        call_command("aicache_train_dictionaries", stdout=out)
    lines = out.getvalue().splitlines()
    assert "dict summarize: trained (60 samples" in out.getvalue()  # the other cache still trained
    (failed,) = [line for line in lines if line.startswith("dead")]
    assert failed.startswith("dead: failed (Redis: ") and "Traceback" not in out.getvalue()
    with pytest.raises(CommandError, match="failed for dead"):
        call_command("aicache_train_dictionaries", "--cache", "dead", "--operation", "qa", stdout=out)
    assert out.getvalue().splitlines()[-1].startswith("dead qa: failed (0 samples; Redis: ")


def test_the_beat_task_logs_a_cache_whose_redis_is_down(cache, dead, settings, caplog):
    from aicache.monitoring.tasks import train_dictionaries

    settings.CACHES = {name: settings.CACHES[name] for name in ("dict", "dead", "default")}
    fill(cache, 0, 60)
    with caplog.at_level(logging.INFO, logger="aicache"):
        lines = train_dictionaries()
    assert lines[0].startswith("dict summarize: trained") and lines[1].startswith("dead: failed (Redis: ")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert "aicache dictionary training: dead: failed (Redis: " in "\n".join(warnings)


def test_the_beat_task_skips_caches_whose_writers_use_no_dictionary(cache, settings):
    from aicache.monitoring.tasks import train_dictionaries

    zlib = {**settings.CACHES["dict"], "OPTIONS": {"MEMORY_TIERS": [], "COMPRESSION_ALGORITHM": "zlib"}}
    settings.CACHES = {"zlib": zlib, "default": settings.CACHES["default"]}
    fill(caches["zlib"], 0, 250)
    assert train_dictionaries() == []
    assert caches["zlib"].redis.get(namespace.dictionary_pointer("ai_cache", "summarize")) is None


def test_min_samples_above_samples_is_refused_before_anything_runs(cache):
    with pytest.raises(CommandError, match="can never be met"):
        call_command("aicache_train_dictionaries", "--min-samples", "500", "--samples", "400")


@pytest.mark.parametrize(("level", "trained_for"), [(None, "small"), (7, 7)])
def test_a_dictionary_is_trained_for_the_level_small_frames_are_written_at(
    cache, settings, monkeypatch, level, trained_for
):
    import zstandard

    from aicache.codec import SMALL_DICTIONARY_LEVEL

    if level is not None:
        settings.CACHES["dict"]["OPTIONS"]["COMPRESSION_LEVEL"] = level
        cache = type(cache)(settings.CACHES["dict"]["LOCATION"], settings.CACHES["dict"])
    fill(cache, 0, 60)
    levels = []
    real = zstandard.train_dictionary

    def recording(*args, **kwargs):
        levels.append(kwargs["level"])
        return real(*args, **kwargs)

    monkeypatch.setattr(zstandard, "train_dictionary", recording)
    assert dictionaries.train_operation(cache, "summarize").outcome == "trained"
    assert levels == [SMALL_DICTIONARY_LEVEL if trained_for == "small" else trained_for]
