"""How invalidation talks to Redis (README "Invalidation"): SCAN with COUNT 1000, never KEYS, and
UNLINKs in batches of 500, each batch one script; counted from Redis's own command statistics."""

import pytest

from aicache import invalidation

pytestmark = pytest.mark.integration

TEXT = "Batches keep every invalidation from blocking Redis. "


def _fill(cache, operation, n):
    for i in range(n):
        cache.cache_response(f"{TEXT}{i}", operation, None, {"v": i})


def _calls(cache) -> dict[str, int]:
    stats = cache.redis.info("commandstats")
    return {name.removeprefix("cmdstat_"): value["calls"] for name, value in stats.items()}


@pytest.mark.parametrize(("entries", "batches"), [(500, 1), (501, 2), (1203, 3)])
def test_pattern_invalidation_unlinks_in_batches_of_500(real_cache, entries, batches):
    _fill(real_cache, "summarize", entries)
    _fill(real_cache, "qa", 7)
    real_cache.redis.config_resetstat()
    assert real_cache.invalidate_pattern("summarize") == entries
    calls = _calls(real_cache)
    assert "keys" not in calls
    assert calls["unlink"] == batches  # one UNLINK (in one script) per batch
    assert calls["scan"] <= 3  # COUNT 1000 over ~1,200 keys
    assert real_cache.count_pattern("*") == 7 and real_cache.count_by_operation("qa") == 7
    assert real_cache.count_by_operation("summarize") == 0  # the batches left the index too


def test_counting_a_pattern_scans_with_count_1000(real_cache):
    _fill(real_cache, "summarize", 1203)
    real_cache.redis.config_resetstat()
    assert real_cache.count_pattern("summarize") == 1203
    calls = _calls(real_cache)
    assert "keys" not in calls and calls["scan"] <= 3


def test_each_script_is_registered_once_per_client(real_cache):
    """redis-py's Script keeps its SHA: one per client and source, not one per call."""
    client = real_cache.redis
    first = invalidation._script(client, invalidation.TAG_BATCH_LUA)
    assert invalidation._script(client, invalidation.TAG_BATCH_LUA) is first
    assert invalidation._script(client, invalidation.UNLINK_LUA) is not first
