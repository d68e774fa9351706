"""The entry browser's reading of Redis (fakeredis here; the browser tests use a real server)."""

import pickle
import time

import pytest

from aicache.monitoring import entries
from aicache.monitoring.admin import duration_text
from aicache.monitoring.entries import parse_key


def store(cache, operation: str, n: int, size: int = 50) -> list[str]:
    keys = []
    for i in range(n):
        text = f"{operation} text {i}"
        cache.cache_response(text, operation, None, {"answer": "word " * size, "i": i})
        keys.append(cache.key_generator.generate(text, operation))
    return keys


def all_pages(cache, **kwargs) -> tuple[list[str], int]:
    seen, token, pages = [], "", 0
    while True:
        page = entries.page(cache, token=token, **kwargs)
        pages += 1
        seen += [e.key for e in page.entries]
        if not page.next_token:
            return seen, pages
        token = page.next_token


def test_parse_key_accepts_entry_keys_only(ai_cache):
    key = ai_cache.key_generator.generate("hello", "summarize")
    operation, digest = parse_key("ai_cache", key)
    assert operation == "summarize" and key.endswith(digest) and len(digest) == 64
    for bad in (
        "other:summarize:" + digest,
        "ai_cache!idx:summarize",
        "ai_cache:Summ:" + digest,
        "ai_cache:qa:zz",
    ):
        assert parse_key("ai_cache", bad) is None


def test_scan_pages_cover_every_entry_and_nothing_else(ai_cache):
    keys = store(ai_cache, "summarize", 45) + store(ai_cache, "qa", 30)
    ai_cache.redis.set("unrelated:key", b"x")
    ai_cache.set("plain", {"a": 1})  # the plain Django API lives outside the prefix
    seen, pages = all_pages(ai_cache, size=20)
    assert pages > 1
    assert set(seen) == set(keys)


def test_operation_pages_come_from_the_index_in_exact_slices(ai_cache):
    keys = store(ai_cache, "qa", 25)
    store(ai_cache, "summarize", 5)
    first = entries.page(ai_cache, operation="qa", size=10)
    assert len(first.entries) == 10 and first.next_token == "10"
    seen, pages = all_pages(ai_cache, operation="qa", size=10)
    assert pages == 3 and sorted(seen) == sorted(keys) and len(seen) == 25
    assert entries.page(ai_cache, operation="nothing", size=10).entries == []


def test_headers_give_size_compression_ttl_and_age_without_the_value(ai_cache):
    (small,) = store(ai_cache, "sentiment", 1, size=2)
    (large,) = store(ai_cache, "summarize", 1, size=600)  # above COMPRESSION_THRESHOLD
    found = {e.key: e for e in entries.describe(ai_cache, [small, large, "ai_cache:qa:" + "0" * 64])}
    assert set(found) == {small, large}  # a missing key is left out
    assert found[small].compression == "none" and found[large].compression == "zstd"  # the default
    assert found[large].stored_bytes == ai_cache.redis.strlen(large)
    assert found[large].stored_bytes < 600 * 5  # compressed
    assert 86390 < found[small].ttl_left <= 86400  # sentiment's TTL
    assert 0 <= found[small].age < 5
    assert found[small].operation == "sentiment" and found[small].preview == ""
    assert not any("word" in str(v) for e in found.values() for v in vars(e).values() if isinstance(v, str))


def test_foreign_bytes_are_unreadable_and_never_unpickled(ai_cache):
    class Boom:
        def __reduce__(self):
            return (pytest.fail, ("unpickled!",))

    key = "ai_cache:qa:" + "ab" * 32
    ai_cache.redis.set(key, pickle.dumps(Boom()), ex=60)
    (entry,) = entries.describe(ai_cache, [key], preview_chars=100)
    assert entry.compression == "unreadable" and entry.age is None
    assert entry.preview == "(not an aicache frame)"


def test_memory_tier_filter(ai_cache):
    keys = store(ai_cache, "qa", 4)
    ai_cache.memory.delete_many(keys[:1])
    in_memory = [e.key for e in entries.page(ai_cache, tier="memory", size=50).entries]
    redis_only = [e.key for e in entries.page(ai_cache, tier="redis", size=50).entries]
    assert sorted(in_memory) == sorted(keys[1:]) and redis_only == keys[:1]


def test_preview_is_truncated_json(ai_cache):
    (key,) = store(ai_cache, "summarize", 1, size=600)
    (entry,) = entries.describe(ai_cache, [key], preview_chars=30)
    assert entry.preview.startswith('{"answer":"word word') and entry.preview.endswith("…")
    assert len(entry.preview) == 31


@pytest.mark.parametrize(
    "kwargs",
    [
        {"operation": "Bad Op"},
        {"tier": "small"},
        {"size": 0},
        {"size": 501},
        {"token": "-1"},
        {"token": "abc"},
    ],
)
def test_bad_arguments_are_refused(ai_cache, kwargs):
    with pytest.raises(ValueError):
        entries.page(ai_cache, **kwargs)


def test_delete_removes_entries_their_index_members_and_memory_copies_and_is_recorded(ai_cache):
    keys = store(ai_cache, "qa", 5)
    assert ai_cache.count_by_operation("qa") == 5
    assert entries.delete(ai_cache, keys[:2], actor="ann", reason="bad answer") == 2
    assert ai_cache.count_by_operation("qa") == 3  # the index forgot them too
    assert not ai_cache.redis.exists(*keys[:2]) and not any(k in ai_cache.memory for k in keys[:2])
    assert ai_cache.get_cached_response("qa text 0", "qa") is None
    stats = ai_cache.monitor.get_invalidation_frequency_stats()
    assert stats["patterns"]["invalidation_types"] == {"keys": 1}
    records = ai_cache.monitor.export_metrics()["invalidations"]
    assert records[-1]["operation_context"] == "via=admin user=ann reason=bad answer"
    assert records[-1]["keys_invalidated"] == 2


@pytest.mark.parametrize(
    "keys",
    [[], ["ai_cache!idx:qa"], ["other:qa:" + "ab" * 32], [123], ["ai_cache:qa:" + "ab" * 32] * 501],
)
def test_delete_refuses_anything_but_entry_keys_and_removes_nothing(ai_cache, keys):
    kept = store(ai_cache, "qa", 2)
    with pytest.raises(ValueError):
        entries.delete(ai_cache, [*keys, kept[0]] if keys else keys, actor="ann")
    assert ai_cache.count_by_operation("qa") == 2 and ai_cache.redis.exists(*kept) == 2


def test_duration_text():
    assert duration_text(0.4) == "0 s"
    assert duration_text(59) == "59 s"
    assert duration_text(1799) == "29 m 59 s"
    assert duration_text(7200) == "2 h"
    assert duration_text(90061) == "1 d 1 h"


def test_expired_entries_are_not_listed(ai_cache):
    (key,) = store(ai_cache, "qa", 1)
    ai_cache.redis.pexpire(key, 1)
    time.sleep(0.01)
    assert entries.page(ai_cache, size=10).entries == []
    assert entries.page(ai_cache, operation="qa", size=10).entries == []


def test_entries_with_metadata_frames_are_read_too(ai_cache):
    ai_cache.cache_response("tagged text", "qa", None, {"answer": "x" * 2000}, tags=["docs"])
    key = ai_cache.key_generator.generate("tagged text", "qa")
    assert ai_cache.redis.getrange(key, 0, 0) == b"\xa2"  # the frame that carries metadata
    (entry,) = entries.describe(ai_cache, [key])
    assert entry.compression == "zstd" and entry.age is not None and 0 <= entry.age < 5


def test_entries_compressed_with_a_trained_dictionary_are_named_and_previewed(ai_cache):
    from aicache import dictionaries

    for i in range(40):
        ai_cache.cache_response(f"sample {i}", "qa", None, {"answer": f"answer {i}: " + "word " * (40 + i)})
    assert dictionaries.train_operation(ai_cache, "qa", min_samples=20).outcome == "trained"
    ai_cache.cache_response("dictionary text", "qa", None, {"answer": "word " * 90})
    key = ai_cache.key_generator.generate("dictionary text", "qa")
    (entry,) = entries.describe(ai_cache, [key], preview_chars=40)
    assert entry.compression == "zstd+dictionary" and entry.preview.startswith('{"answer":"word word')
