"""Monitoring overhead: the same reads with the recorder on and off, measured in one run.

Run with `make bench`. Compare the groups' medians: "memory-hit" (500-character text) and
"redis-hit" (5,000-character text, response ~5 KB). The exporter thread folds records in the
background while the "on" rounds run, so its cost is inside the "on" figures too.
"""

import time

import pytest

from aicache.bench.payloads import llm_response, prose

pytestmark = pytest.mark.benchmark

SMALL_TEXT = prose(500, seed=1)
MEDIUM_TEXT = prose(5000, seed=2)
RESPONSE = llm_response(5000, seed=3)


@pytest.mark.parametrize("monitoring", ["on", "off"])
def test_memory_hit(benchmark, bench_cache, monitoring):
    options = {} if monitoring == "on" else {"MONITOR_CLASS": None}
    cache = bench_cache(f"mem_{monitoring}", **options)
    written = time.monotonic()
    cache.cache_response(SMALL_TEXT, "summarize", None, RESPONSE)
    # The write's own invalidation message evicts whatever the tier holds when it arrives (README,
    # "Many processes, one truth"). Redis delivers in order, so once a probe sent after the write
    # came back, that message has been handled: only then fill the tier and measure.
    st = cache._state
    while st.coherence.usable_until < written + st.listener.liveness_seconds:
        assert time.monotonic() < written + 10, "no coherence probe came back"
        time.sleep(0.01)
    cache.get_cached_response(SMALL_TEXT, "summarize")
    benchmark.group = "memory-hit"
    result = benchmark(cache.get_cached_response, SMALL_TEXT, "summarize")
    assert result["cache_source"] == "memory"


@pytest.mark.parametrize("monitoring", ["on", "off"])
def test_redis_hit(benchmark, bench_cache, monitoring):
    options = {} if monitoring == "on" else {"MONITOR_CLASS": None}
    cache = bench_cache(f"redis_{monitoring}", **options)
    cache.cache_response(MEDIUM_TEXT, "summarize", None, RESPONSE)
    benchmark.group = "redis-hit"
    result = benchmark(cache.get_cached_response, MEDIUM_TEXT, "summarize")
    assert result["cache_source"] == "redis"
