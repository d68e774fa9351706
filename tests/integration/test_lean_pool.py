"""The lean path's idle connections against the pool's limit (review of issue 14): backend
objects come and go (one per thread, one per request under ASGI), and none of them may hold a
connection for its life. Each scenario failed when every object kept one: caching silently lost
behind an open breaker once the pool's connections were all held."""

import asyncio
import gc
import itertools
import threading

import pytest
import redis
from django.core.cache import caches

from aicache.backend import AIResponseCache
from tests.helpers import run_threads

pytestmark = pytest.mark.integration

_pools = itertools.count()


def build(settings, real_cache_settings, alias="pooled", **options):
    """A cache alias on a pool of its own: django-redis keeps one pool per URL for the whole
    process, so the URL gets a client name no other test uses (database 0, as everywhere)."""
    location = real_cache_settings["LOCATION"] + f"?client_name=aicache-lean-pool-{next(_pools)}"
    conf = {
        **real_cache_settings,
        "LOCATION": location,
        "OPTIONS": {**real_cache_settings["OPTIONS"], "MEMORY_TIERS": [], **options},
    }
    settings.CACHES = {**settings.CACHES, alias: conf}
    return conf


def faults(cache):
    return {k: v for k, v in cache.error_counts().items() if v}


def test_more_long_lived_threads_than_the_pool_holds(settings, real_cache, real_cache_settings):
    """110 threads of a pool (each with its own backend object from caches[]), one call each, one
    at a time: redis-py needs one connection for that, and so must we."""
    build(settings, real_cache_settings)
    caches["pooled"].cache_response("hundred", "summarize", None, {"a": 1})
    pool = caches["pooled"].redis.connection_pool
    assert pool.max_connections == 100
    turn = threading.Lock()
    alive = threading.Barrier(111)
    results = []

    def worker():
        with turn:
            results.append(caches["pooled"].get_cached_response("hundred", "summarize"))
        alive.wait(30)  # the thread lives on, as a pool's would

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(110)]
    for t in threads:
        t.start()
    alive.wait(30)
    for t in threads:
        t.join(10)
    assert [r["a"] for r in results] == [1] * 110
    assert faults(caches["pooled"]) == {} and len(pool._in_use_connections) <= 4


def test_async_views_awaiting_the_llm(settings, real_cache, real_cache_settings):
    """The usual async view, 120 at once, each request with its own backend object: look up, await
    the LLM (here: until every view has looked up), store."""
    build(settings, real_cache_settings)
    looked_up = 0

    async def main():
        everyone = asyncio.Event()

        async def view(i):
            nonlocal looked_up
            cache = caches["pooled"]  # this request's backend object
            missed = await cache.aget_cached_response(f"async view {i}", "summarize") is None
            looked_up += 1
            if looked_up == 120:
                everyone.set()
            await everyone.wait()  # the LLM call, while every other request holds its object
            if missed:
                await cache.acache_response(f"async view {i}", "summarize", None, {"i": i})

        await asyncio.gather(*(asyncio.create_task(view(i)) for i in range(120)))

    asyncio.run(main())
    cache = caches["pooled"]
    assert faults(cache) == {}
    assert all(cache.get_cached_response(f"async view {i}", "summarize")["i"] == i for i in range(120))


def test_dropped_backend_objects_hold_no_connection_even_before_a_gc_pass(
    settings, real_cache, real_cache_settings
):
    conf = build(settings, real_cache_settings)
    pool = AIResponseCache(conf["LOCATION"], conf).redis.connection_pool
    gc.disable()
    try:
        for _ in range(150):  # e.g. one backend object per ASGI request
            cache = AIResponseCache(conf["LOCATION"], conf)
            assert cache.get_cached_response("gc text", "summarize") is None
            del cache
        held = len(pool._in_use_connections)
    finally:
        gc.enable()
    assert held <= 1


@pytest.mark.parametrize("max_connections", [1, 2])
def test_a_tiny_pool_still_serves_every_call(settings, real_cache, real_cache_settings, max_connections):
    """max_connections=1: the read, the single-flight lease and the store all need the one
    connection; four threads taking turns on a pool of 2 as well."""
    build(settings, real_cache_settings, CONNECTION_POOL_KWARGS={"max_connections": max_connections})
    assert caches["pooled"].get_or_compute("solo", "summarize", lambda: {"a": 1})["a"] == 1
    turn = threading.Lock()

    def worker(i):
        cache = caches["pooled"]  # this thread's backend object
        out = []
        for _ in range(5):
            with turn:
                out.append(cache.get_cached_response("solo", "summarize")["a"])
        return out

    assert run_threads(worker, 4) == [[1] * 5] * 4
    assert faults(caches["pooled"]) == {}


def test_sixteen_threads_on_one_backend_object_each_get_their_own_answer(
    settings, real_cache, real_cache_settings
):
    conf = build(settings, real_cache_settings)
    cache = AIResponseCache(conf["LOCATION"], conf)  # one object shared by every thread
    for i in range(16):
        cache.cache_response(f"text {i} " * 40, "summarize", None, {"who": i, "pad": "x" * (i * 50)})

    def worker(i):
        wrong = []
        for r in range(300):
            j = (i + r) % 16
            if r % 10 == 0:
                cache.cache_response(f"text {j} " * 40, "summarize", None, {"who": j, "pad": "x" * (j * 50)})
            got = cache.get_cached_response(f"text {j} " * 40, "summarize")
            if got is None or got["who"] != j:
                wrong.append((j, got and got.get("who")))
        return wrong

    assert run_threads(worker, 16, timeout=120) == [[]] * 16
    assert faults(cache) == {}
    assert len(cache.redis.connection_pool._in_use_connections) <= 4 + 2  # bounded (a race adds one or two)


def test_resp3_takes_redis_pys_own_path(settings, real_cache, real_cache_settings):
    build(settings, real_cache_settings, CONNECTION_POOL_KWARGS={"protocol": 3})
    cache = caches["pooled"]
    cache.cache_response("r3 text", "summarize", None, {"a": 1})
    assert cache.get_cached_response("r3 text", "summarize")["a"] == 1
    assert cache._lean is None and isinstance(cache.redis, redis.Redis)
