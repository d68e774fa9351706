"""The count_* methods on a real Redis: exactly what the matching invalidation would remove now.

Expired entries still named in an index, another cache's keys on the same Redis, drains a fault
left half done: each is staged directly in Redis, so no test waits for a TTL.
"""

import time

import pytest
from django.core.cache import caches

pytestmark = pytest.mark.integration

TEXT = "Counting is how an operator sees what an invalidation will do. "


@pytest.fixture
def neighbour(settings, real_cache, real_cache_settings):
    """Another aicache on the same Redis database, under its own KEY_PREFIX."""
    settings.CACHES = {
        **settings.CACHES,
        "neighbour": {
            **real_cache_settings,
            "OPTIONS": {**real_cache_settings["OPTIONS"], "KEY_PREFIX": "neighbour"},
        },
    }
    return caches["neighbour"]


def _fill(cache, operation, n, start=0, **kwargs):
    for i in range(start, start + n):
        cache.cache_response(f"{TEXT}{operation} {i}", operation, None, {"v": i}, **kwargs)


def _expired_member(cache, index, name):
    """An index member whose entry has expired (Redis dropped the key; the member stays until the
    next write to that index trims it)."""
    cache.redis.zadd(index, {f"{cache.ns.prefix}:summarize:{name}": int(time.time() * 1000) - 60_000})


def test_counts_of_an_empty_cache_are_zero(real_cache):
    assert real_cache.count_all() == 0
    assert real_cache.count_by_operation("summarize") == 0
    assert real_cache.count_pattern("*") == 0
    assert real_cache.count_tags(["prompt:v1"]) == 0


def test_count_all_and_by_operation_see_live_entries_only(real_cache, neighbour):
    _fill(real_cache, "summarize", 3)
    _fill(real_cache, "qa", 2)
    _fill(neighbour, "summarize", 4)
    _expired_member(real_cache, real_cache.ns.index("summarize"), "gone")
    assert real_cache.count_all() == 5
    assert real_cache.count_by_operation("summarize") == 3
    assert real_cache.count_by_operation("qa") == 2
    assert real_cache.count_by_operation("translate") == 0
    assert neighbour.count_all() == 4
    assert real_cache.invalidate_by_operation("summarize") == 3  # what the count promised


def test_count_pattern_matches_this_caches_entries_of_those_operations_only(real_cache, neighbour):
    _fill(real_cache, "summarize", 3)
    _fill(real_cache, "summarize_long", 2)
    _fill(real_cache, "qa", 1)
    _fill(neighbour, "summarize", 4)
    real_cache.redis.set("unrelated:summarize:x", b"1")
    assert real_cache.count_pattern("summarize") == 3
    assert real_cache.count_pattern("summarize*") == 5
    assert real_cache.count_pattern("*") == 6
    assert real_cache.invalidate_pattern("summarize*") == 5
    assert real_cache.count_pattern("*") == 1 and neighbour.count_pattern("*") == 4


def test_count_by_operation_includes_a_drain_a_fault_left_half_done(real_cache):
    """An invalidation interrupted after RENAMEing the index leaves its members in a drain named in
    the registry: they are still in Redis, so the count includes them until one finishes the drain."""
    ns = real_cache.ns
    _fill(real_cache, "summarize", 3)
    drain = ns.drain("summarize", "interrupted")
    real_cache.redis.rename(ns.index("summarize"), drain)
    real_cache.redis.sadd(ns.drains("summarize"), drain)
    assert real_cache.count_by_operation("summarize") == 3
    _fill(real_cache, "summarize", 2, start=10)  # a fresh index beside the drain
    assert real_cache.count_by_operation("summarize") == 5
    assert real_cache.count_all() == 5  # the drain as well: what invalidate_all would remove
    _fill(real_cache, "qa", 4)  # an operation with no drain beside the interrupted one
    assert real_cache.count_all() == 9
    assert real_cache.invalidate_by_operation("qa") == 4
    assert real_cache.invalidate_by_operation("summarize") == 5
    assert real_cache.count_by_operation("summarize") == 0
    assert not real_cache.redis.exists(drain, ns.drains("summarize"))


def test_count_tags_counts_live_entries_still_carrying_the_tags(real_cache, neighbour):
    _fill(real_cache, "summarize", 3, tags=["prompt:v1"])
    _fill(real_cache, "qa", 2, tags=["prompt:v1", "model:m"])
    _fill(real_cache, "qa", 2, start=10, tags=["model:m"])
    _fill(neighbour, "qa", 4, tags=["prompt:v1"])
    _expired_member(real_cache, real_cache.ns.tag_index("prompt:v1"), "gone")
    # rewritten without the tag: its stale member in the tag index must not count
    real_cache.cache_response(f"{TEXT}summarize 0", "summarize", None, {"v": "new"})
    assert real_cache.count_tags(["prompt:v1"]) == 4
    assert real_cache.count_tags(["model:m"]) == 4
    assert real_cache.count_tags(["prompt:v1", "model:m"]) == 6  # each entry once
    assert real_cache.invalidate_tags(["prompt:v1", "model:m"]) == 6


def test_count_tags_pages_through_more_than_one_batch(real_cache):
    _fill(real_cache, "qa", 1203, tags=["bulk"])
    assert real_cache.count_tags(["bulk"]) == 1203
