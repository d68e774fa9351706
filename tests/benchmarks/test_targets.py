"""One pytest-benchmark case per issue-14 target row, each beside its peer in the same group, on
every payload shape, so `make bench` shows a regression as a moved ratio.

Groups are named "<row> <size> <shape>": compare the two medians in a group (aicache vs peer).
The targets themselves are judged by `manage.py aicache_benchmark --only shapes` (interleaved
rounds); here each case runs after its dictionary was trained, as in production.
"""

import orjson
import pytest
from django.core.cache.backends.locmem import LocMemCache

from aicache import dictionaries
from aicache.bench.micro import text_key
from aicache.bench.payloads import SHAPES, corpus_half, prose
from aicache.bench.shapes import OPERATION, training_sizes

pytestmark = pytest.mark.benchmark

TEXT = prose(500, seed=14)


@pytest.fixture
def trained(bench_cache):
    """A cache (Redis only, or with its memory tier) whose operation has a trained dictionary for
    the shape; returns (cache, response, JSON bytes of it)."""

    def build(shape: str, size: int, memory: bool = False):
        options = {} if memory else {"MEMORY_TIERS": []}
        alias = f"t_{shape}_{size}_{int(memory)}"
        cache = bench_cache(alias, **options)
        make = SHAPES[shape]
        with corpus_half(0):
            for i, n in enumerate(training_sizes()[::3]):
                cache.cache_response(
                    f"training {i} " + prose(200, seed=i), OPERATION, None, make(n, 90_000 + i)
                )
        assert dictionaries.train_operation(cache, OPERATION, min_samples=20).outcome == "trained"
        with corpus_half(1):
            response = make(size, size + 1)
        return cache, response, orjson.dumps(response)

    return build


SHAPE_NAMES = sorted(SHAPES)


@pytest.mark.parametrize("shape", SHAPE_NAMES)
@pytest.mark.parametrize("side", ["aicache", "LocMemCache"])
def test_memory_tier_hit_800(benchmark, trained, shape, side):
    cache, response, _ = trained(shape, 800, memory=True)
    benchmark.group = f"memory-tier hit 800 B {shape}"
    if side == "aicache":
        cache.cache_response(TEXT, OPERATION, None, response)
        result = benchmark(cache.get_cached_response, TEXT, OPERATION)
        assert result["cache_source"] in ("memory", "redis")
    else:
        local = LocMemCache(f"bench-{shape}", {})
        local.set(text_key(TEXT), response)
        assert benchmark(lambda: local.get(text_key(TEXT))) == response


@pytest.mark.parametrize("shape", SHAPE_NAMES)
@pytest.mark.parametrize("size", [800, 5000, 50000])
@pytest.mark.parametrize("side", ["aicache", "raw GET + orjson"])
def test_redis_hit(benchmark, trained, shape, size, side):
    cache, response, payload = trained(shape, size)
    benchmark.group = f"Redis hit {size} B {shape}"
    if side == "aicache":
        cache.cache_response(TEXT, OPERATION, None, response)
        result = benchmark(cache.get_cached_response, TEXT, OPERATION)
        assert result["cache_source"] == "redis" and result["compression_used"] is True
    else:
        raw = cache.redis
        raw.set(text_key(TEXT), payload, ex=600)
        assert benchmark(lambda: orjson.loads(raw.get(text_key(TEXT)))) == response
        raw.delete(text_key(TEXT))


@pytest.mark.parametrize("shape", SHAPE_NAMES)
@pytest.mark.parametrize("side", ["aicache", "raw SET"])
def test_write_5k(benchmark, trained, shape, side):
    cache, response, _ = trained(shape, 5000)
    benchmark.group = f"write 5000 B {shape}"
    if side == "aicache":
        benchmark(cache.cache_response, TEXT, OPERATION, None, response)
        assert cache.get_cached_response(TEXT, OPERATION) is not None
    else:
        raw = cache.redis
        benchmark(lambda: raw.set(text_key(TEXT), orjson.dumps(response), ex=600))
        assert raw.exists(text_key(TEXT))
        raw.delete(text_key(TEXT))


@pytest.mark.parametrize("shape", SHAPE_NAMES)
@pytest.mark.parametrize("size", [800, 5000])
def test_stored_size(benchmark, trained, shape, size):
    """The stored-value row: times the encode, records the size ratio (extra_info) beside the JSON."""
    cache, _, payload = trained(shape, size)
    benchmark.group = f"stored size {size} B"
    dictionary = cache.dictionaries.for_write(OPERATION)
    assert dictionary is not None
    encoded = benchmark(cache.codec.encode, payload, 3600, None, None, dictionary)
    benchmark.extra_info["stored_over_json"] = round(len(encoded.data) / len(payload), 3)
    assert len(encoded.data) < len(cache.codec.encode(payload, 3600).data)  # the dictionary helps
