"""Invalidation by tag on a real Redis: scope, exact counts, fencing, expiry, other processes."""

import time

import pytest

from aicache import invalidation
from aicache.decorators import ai_cached
from tests.helpers import run_threads, wait_for, write_and_settle

pytestmark = pytest.mark.integration

TEXT = "Tags say which prompt or model produced an answer. " * 2


def test_tags_on_every_write_path(real_cache, settings):
    real_cache.cache_response(f"{TEXT} 1", "summarize", None, {"v": 1}, tags=["prompt:v3"])
    real_cache.get_or_compute(f"{TEXT} 2", "qa", lambda: {"v": 2}, tags=["prompt:v3", "model:gpt-4o"])
    real_cache.get_or_compute(f"{TEXT} 3", "qa", lambda: {"v": 3}, cache="refresh", tags=["prompt:v3"])

    @ai_cached("key_points", tags=["prompt:v3"])
    def points(text):
        return {"v": 4}

    points(f"{TEXT} 4")
    real_cache.cache_response(f"{TEXT} 5", "summarize", None, {"v": 5}, tags=["prompt:v4"])
    real_cache.cache_response(f"{TEXT} 6", "summarize", None, {"v": 6})
    assert real_cache.count_tags(["prompt:v3"]) == 4
    assert real_cache.invalidate_tags(["prompt:v3"], operation_context="prompt changed") == 4
    for i in (1, 2, 3):
        assert real_cache.get_cached_response(f"{TEXT} {i}", "summarize" if i == 1 else "qa") is None
    assert real_cache.get_cached_response(f"{TEXT} 4", "key_points") is None
    assert real_cache.get_cached_response(f"{TEXT} 5", "summarize")["v"] == 5  # another tag
    assert real_cache.get_cached_response(f"{TEXT} 6", "summarize")["v"] == 6  # untagged
    # The per-operation index no longer counts what the tag removed.
    assert real_cache.count_by_operation("summarize") == 2 and real_cache.count_by_operation("qa") == 0


def test_counts_are_exact_when_an_entry_has_several_of_the_tags(real_cache):
    for i in range(700):  # more than one batch of 500
        real_cache.cache_response(f"{TEXT} {i}", "qa", None, {"v": i}, tags=["a", "b"] if i % 2 else ["a"])
    assert real_cache.count_tags(["a", "b"]) == 700
    assert real_cache.invalidate_tags(["b", "a"]) == 700
    assert real_cache.invalidate_tags(["a"]) == 0
    assert not list(real_cache.redis.scan_iter("ai_cache:*:*"))


def test_a_compute_in_flight_with_the_tag_is_not_cached(real_cache):
    def compute():
        run_threads(lambda i: real_cache.invalidate_tags(["prompt:v3"]), 1)
        return {"v": "answer to the old prompt"}

    result = real_cache.get_or_compute(TEXT, "qa", compute, tags=["prompt:v3"])
    assert result["v"] == "answer to the old prompt"
    assert real_cache.get_cached_response(TEXT, "qa") is None
    assert real_cache.get_or_compute(TEXT, "qa", lambda: {"v": "new"}, tags=["prompt:v3"])["v"] == "new"
    assert real_cache.get_cached_response(TEXT, "qa")["v"] == "new"


def test_other_tags_do_not_fence(real_cache):
    def compute():
        run_threads(lambda i: real_cache.invalidate_tags(["prompt:v2"]), 1)
        return {"v": "kept"}

    real_cache.get_or_compute(TEXT, "qa", compute, tags=["prompt:v3"])
    assert real_cache.get_cached_response(TEXT, "qa")["v"] == "kept"


def test_tag_index_is_swept_with_its_entries(real_cache):
    """No TTL on a tag index (eviction must not take it); the sweep set deletes it after the
    expiry of its longest-lived entry."""
    real_cache.cache_response(TEXT, "qa", None, {"v": 1}, ttl=100, tags=["doc:1"])
    bucket = real_cache.ns.bucket(real_cache.key_generator.generate(TEXT, "qa"))  # "" on one node
    other = next(
        f"{TEXT} {i}"
        for i in range(100)
        if real_cache.ns.bucket(real_cache.key_generator.generate(f"{TEXT} {i}", "qa")) == bucket
    )
    real_cache.cache_response(other, "qa", None, {"v": 1}, ttl=40, tags=["doc:1"])
    index = real_cache.ns.tag_index("doc:1", bucket)
    assert real_cache.redis.ttl(index) == -1
    left = real_cache.redis.zscore(real_cache.ns.sweep(bucket), index) / 1000 - time.time()
    assert 95 <= left <= 100


def test_memory_tier_here_and_in_another_process(real_cache, workers):
    (other,) = workers(1)
    key = real_cache.key_generator.generate(TEXT, "summarize")
    write_and_settle(
        real_cache,
        key,
        lambda: real_cache.cache_response(TEXT, "summarize", None, {"summary": "tagged"}, tags=["model:x"]),
    )
    real_cache.get_cached_response(TEXT, "summarize")  # fills this process's tier from Redis
    assert real_cache.get_cached_response(TEXT, "summarize")["cache_source"] == "memory"
    got = other.call("get", text=TEXT, operation="summarize")
    assert got["response"]["summary"] == "tagged"
    # Its first get may fill before the write's message reaches its listener, which then drops
    # that copy (as it must): the next get fills again.
    wait_for(
        lambda: other.call("get", text=TEXT, operation="summarize")["source"] == "memory",
        what="the other process to serve the entry from its tier",
    )
    other.send("watch", text=TEXT, operation="summarize", timeout=5)
    assert other.read()["watching"] is True
    assert real_cache.invalidate_tags(["model:x"]) == 1
    assert other.read()["gone_at"] is not None  # gone from the other process's tier
    assert real_cache.get_cached_response(TEXT, "summarize") is None  # and from ours, at once


@pytest.mark.parametrize(
    ("tags", "error"),
    [
        ("prompt:v3", TypeError),
        ([], ValueError),
        (["has space"], ValueError),
        (["x" * 65], ValueError),
        ([f"t{i}" for i in range(17)], ValueError),
        ([3], ValueError),
    ],
)
def test_bad_tags_refused_before_anything(real_cache, tags, error):
    with pytest.raises(error, match="tag"):
        real_cache.invalidate_tags(tags)
    if tags != []:
        with pytest.raises(error, match="tag"):
            real_cache.cache_response(TEXT, "qa", None, {"v": 1}, tags=tags)
    assert not list(real_cache.redis.scan_iter("ai_cache:*:*"))


def test_async_twin(real_cache):
    import asyncio

    real_cache.cache_response(TEXT, "qa", None, {"v": 1}, tags=["t"])
    assert asyncio.run(real_cache.ainvalidate_tags(["t"])) == 1
    assert real_cache.get_cached_response(TEXT, "qa") is None


def test_a_key_rewritten_without_a_tag_is_not_removed_by_it(real_cache):
    """Review finding: stale index memberships removed the rewritten entry."""
    real_cache.cache_response(TEXT, "qa", None, {"v": "v3 answer"}, tags=["prompt:v3"])
    real_cache.cache_response(TEXT, "qa", None, {"v": "v4 answer"}, tags=["prompt:v4"])
    real_cache.get_or_compute(f"{TEXT} b", "qa", lambda: {"v": 1}, tags=["prompt:v3"])
    real_cache.get_or_compute(f"{TEXT} b", "qa", lambda: {"v": 2}, cache="refresh")  # no tags now
    assert real_cache.count_tags(["prompt:v3"]) == 0
    assert real_cache.invalidate_tags(["prompt:v3"]) == 0
    assert real_cache.get_cached_response(TEXT, "qa")["v"] == "v4 answer"
    assert real_cache.get_cached_response(f"{TEXT} b", "qa")["v"] == 2
    assert real_cache.count_by_operation("qa") == 2
    assert real_cache.invalidate_tags(["prompt:v4"]) == 1


def test_tag_generations_are_swept_not_expired(real_cache):
    """No TTL (an evicted generation could let a stale compute store); the sweep set deletes it
    after the longest entry TTL."""
    real_cache.invalidate_tags(["doc:1234"])
    b = real_cache.ns.buckets[0]
    generation = real_cache.ns.tag_generation("doc:1234", b)
    assert real_cache.redis.ttl(generation) == -1
    left = real_cache.redis.zscore(real_cache.ns.sweep(b), generation) / 1000 - time.time()
    assert real_cache._max_ttl - 5 < left <= real_cache._max_ttl


def test_a_tag_generation_left_with_a_ttl_by_an_earlier_version_loses_it(real_cache):
    """Versions before the sweep set gave tag generations a TTL; one still carrying it could expire
    while a compute it fences runs. The next invalidation of the tag makes it persistent."""
    client, ns = real_cache.redis, real_cache.ns
    generation = ns.tag_generation("doc:old", ns.buckets[0])
    client.set(generation, 4, ex=60)  # as the earlier version left it
    real_cache.invalidate_tags(["doc:old"])
    assert client.ttl(generation) == -1
    assert client.get(generation) == b"5"


def test_a_shorter_ttl_never_pulls_a_tag_generations_sweep_earlier(real_cache):
    """Processes with different longest TTLs (a deploy changing OPERATION_TTLS) share the sweep
    set: a generation stays until the latest sweep time any of them asked for (ZADD GT)."""
    client, ns = real_cache.redis, real_cache.ns
    invalidation.bump(client, ns, [], ("doc:1",), ttl=1000)
    generation = ns.tag_generation("doc:1", ns.buckets[0])
    long_sweep = client.zscore(ns.sweep(ns.buckets[0]), generation)
    invalidation.bump(client, ns, [], ("doc:1",), ttl=10)
    assert client.zscore(ns.sweep(ns.buckets[0]), generation) == long_sweep
    assert long_sweep / 1000 - time.time() > 900


def test_this_process_drops_what_the_removal_took_even_if_its_copy_had_other_tags(real_cache, cache_with):
    """Under MEMORY_COHERENCE="local" no message tells this process that another one rewrote an
    entry with other tags; its copy still carries the old ones. Removing a tag the Redis entry
    carries must still drop that copy here: the keys the drain removed are dropped by name. The
    other process is ``real_cache``: configured differently, it has a memory tier of its own."""
    here, other = cache_with("local"), real_cache
    here.cache_response(TEXT, "qa", None, {"v": "prompt v3"}, tags=["prompt:v3"])
    other.cache_response(TEXT, "qa", None, {"v": "prompt v4"}, tags=["prompt:v4"])
    assert here.memory is not other.memory
    stale = here.get_cached_response(TEXT, "qa")
    assert (stale["v"], stale["cache_source"]) == ("prompt v3", "memory")  # the staging holds
    assert here.invalidate_tags(["prompt:v4"]) == 1
    assert here.get_cached_response(TEXT, "qa") is None  # not even from this tier
