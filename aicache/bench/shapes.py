"""The issue-14 targets, per payload shape, and trained dictionaries on and off.

Every aicache case runs with default settings (zstd, memory tier for small texts, monitoring on,
key generation and validation included) after the operation's dictionary was trained the way
production trains it (``aicache.dictionaries.train_operation`` over 300 earlier responses of the
same shape, never the measured ones). Each peer reads or writes exactly the bytes aicache returns
or stores: the same response dict, the same JSON. Cases are interleaved round by round and each
keeps its fastest round's p50 (noise only adds time: ../shared/PERFORMANCE.md).
"""

from __future__ import annotations

import itertools
import time
from typing import Any

import orjson
from django.core.cache.backends.locmem import LocMemCache

from aicache import dictionaries
from aicache.bench.harness import measure
from aicache.bench.micro import SMOKE, make_aicache, text_key
from aicache.bench.payloads import SHAPES, corpus_half, prose
from aicache.codec import SMALL_DICTIONARY_LEVEL, SMALL_DICTIONARY_PAYLOAD

OPERATION = "summarize"
RESPONSE_SIZES = (800, 5000, 50000)
DICTIONARY_SIZES = (500, 800, 2000, 5000, 50000)
TRAINING_RESPONSES = 300
_runs = itertools.count()


def training_sizes() -> list[int]:
    """Response sizes of the training sample: most LLM answers are 0.5-5 KB."""
    return [500 + (i * 4500) // TRAINING_RESPONSES for i in range(TRAINING_RESPONSES)]


def _scale(quick: bool | float) -> tuple[int, float]:
    """(rounds, fraction of the full call counts)."""
    if quick is True:
        return 5, 0.2
    if quick:
        return 2, SMOKE * 10
    return 15, 1.0


def trained_caches(url: str, shape: str, quick: bool | float = False) -> tuple[Any, Any, Any]:
    """(memory-tier cache, Redis-only cache, training result) sharing one prefix whose operation
    has a trained dictionary; returns before either has written a measured entry."""
    prefix = f"shape{next(_runs)}_{shape}"
    # No listener of its own: with MEMORY_TIERS=[] nothing starts one in a deployment, and a second
    # listener on the same prefix in this process would take every measured write's invalidation
    # message once more (~45 us per write pinned: docs/performance.md, "Hot path").
    redis_only = make_aicache(url, coherence=False, KEY_PREFIX=prefix, MEMORY_TIERS=[])
    make = SHAPES[shape]
    count = 60 if quick else TRAINING_RESPONSES
    with corpus_half(0):  # measured responses come from the other half (corpus_half(1))
        for i, size in enumerate(training_sizes()[:: TRAINING_RESPONSES // count]):
            text = f"training {i}: " + prose(300, seed=90_000 + i)
            redis_only.cache_response(text, OPERATION, None, make(size, 90_000 + i))
    result = dictionaries.train_operation(redis_only, OPERATION, min_samples=20)
    memory = make_aicache(url, KEY_PREFIX=prefix)
    return memory, redis_only, result


def targets(url: str, quick: bool | float = False) -> list[dict[str, Any]]:
    with corpus_half(1):
        return _targets(url, quick)


def _targets(url: str, quick: bool | float) -> list[dict[str, Any]]:
    rounds, share = _scale(quick)
    raw = None
    rows: list[dict[str, Any]] = []
    for shape, make in SHAPES.items():
        memory, redis_only, trained = trained_caches(url, shape, quick)
        raw = redis_only.redis
        local = LocMemCache(f"bench-{shape}", {})
        for size in RESPONSE_SIZES:
            text = prose(500, seed=size)
            response = make(size, size + 1)
            payload = orjson.dumps(response)
            key = text_key(text)
            local.set(key, response, timeout=3600)
            raw.set(key, payload, ex=3600)
            memory.cache_response(text, OPERATION, None, response)
            redis_only.cache_response(text, OPERATION, None, response)
            for _ in range(100):  # the memory tier serves once its coherence listener is live
                if memory.get_cached_response(text, OPERATION)["cache_source"] == "memory":
                    break
                time.sleep(0.05)
            frame = raw.get(redis_only.key_generator.generate(text, OPERATION))
            plain = redis_only.codec.encode(payload, 3600).data  # the same frame without a dictionary
            big = size >= 10_000
            cases = {
                "aicache memory-tier hit": (
                    lambda c=memory, t=text: c.get_cached_response(t, OPERATION),
                    3000,
                ),
                "LocMemCache.get": (lambda t=text, m=local: m.get(text_key(t)), 3000),
                "aicache Redis hit": (lambda c=redis_only, t=text: c.get_cached_response(t, OPERATION), 300),
                "raw GET + orjson.loads": (lambda t=text, r=raw: orjson.loads(r.get(text_key(t))), 300),
                # writes go to another key: overwriting the read key would evict it from the tier
                "aicache write": (
                    lambda c=redis_only, t=text + " w", r=response: c.cache_response(t, OPERATION, None, r),
                    200,
                ),
                "raw SET of orjson.dumps": (
                    lambda t=text + " w", r=response, c=raw: c.set(text_key(t), orjson.dumps(r), ex=3600),
                    200,
                ),
            }
            best: dict[str, float] = {}
            for _ in range(rounds):
                for name, (fn, calls) in cases.items():
                    n = max(3, int(calls * share / (5 if big else 1)))
                    result = measure(name, fn, calls=n, rounds=1, warmup=max(3, n // 10))
                    best[name] = min(best.get(name, float("inf")), result.p50_us)
            rows.append(
                {
                    "shape": shape,
                    "response_bytes": len(payload),
                    "p50_us": best,
                    "stored_bytes": len(frame),
                    "stored_ratio": len(frame) / len(payload),
                    "stored_ratio_without_dictionary": len(plain) / len(payload),
                    "dictionary": frame[1] == 3,
                    "memory_source": memory.get_cached_response(text, OPERATION)["cache_source"],
                    "trained": trained.outcome,
                    "memory_usage": memory_usage(redis_only, make, size, 20 if quick else 100),
                }
            )
        redis_only.invalidate_all()
    return rows


def memory_usage(cache: Any, make: Any, size: int, entries: int) -> dict[str, float]:
    """Redis MEMORY USAGE per entry: aicache (entry key + frame + its member of the operation's
    index) beside a raw SET of the same JSON under a sha256 key."""
    redis = cache.redis
    index = cache.ns.index(OPERATION)
    index_before = redis.memory_usage(index, samples=0) or 0
    keys, raw_keys = [], []
    for i in range(entries):
        text = f"memory {size} {i}: " + prose(400, seed=70_000 + i)
        response = make(size, 70_000 + i)
        cache.cache_response(text, OPERATION, None, response)
        keys.append(cache.key_generator.generate(text, OPERATION))
        raw_keys.append(text_key(text))
        redis.set(raw_keys[-1], orjson.dumps(response), ex=3600)
    pipe = redis.pipeline(transaction=False)
    for key in keys + raw_keys:
        pipe.memory_usage(key, samples=0)
    usage = pipe.execute()
    index_after = redis.memory_usage(index, samples=0) or 0
    redis.delete(*raw_keys)
    ours = (sum(usage[:entries]) + index_after - index_before) / entries
    theirs = sum(usage[entries:]) / entries
    return {"aicache_bytes": ours, "raw_set_bytes": theirs, "ratio": ours / theirs}


def dictionary_codecs(quick: bool | float = False) -> list[dict[str, Any]]:
    """Ratio and speed of zstd-3 with and without a trained dictionary, per shape and size."""
    import zstandard

    _, share = _scale(quick)
    rows = []
    for shape, make in SHAPES.items():
        with corpus_half(0):
            samples = [orjson.dumps(make(size, 50_000 + i)) for i, size in enumerate(training_sizes())]
        started = time.perf_counter()
        zdict = zstandard.train_dictionary(16384, samples, level=3)
        train_seconds = time.perf_counter() - started
        # As the codec writes by default: a dictionary trained for SMALL_DICTIONARY_LEVEL, used at
        # that level up to SMALL_DICTIONARY_PAYLOAD and at level 3 above (aicache.codec).
        small = zstandard.train_dictionary(16384, samples, level=SMALL_DICTIONARY_LEVEL)
        small_copy = zstandard.ZstdCompressionDict(small.as_bytes())
        codecs = {
            "zstd-3": (zstandard.ZstdCompressor(level=3), zstandard.ZstdDecompressor()),
            "zstd-3 + dictionary": (
                zstandard.ZstdCompressor(level=3, dict_data=zdict, write_dict_id=False),
                zstandard.ZstdDecompressor(dict_data=zdict),
            ),
            "codec default (+ dictionary, level 5 up to 2 KB)": (
                zstandard.ZstdCompressor(level=3, dict_data=small, write_dict_id=False),
                zstandard.ZstdDecompressor(dict_data=small),
            ),
        }
        small_level = zstandard.ZstdCompressor(
            level=SMALL_DICTIONARY_LEVEL, dict_data=small_copy, write_dict_id=False
        )
        zdict.precompute_compress(level=3)  # as the codec does (aicache.codec.ZstdCompressor)
        small.precompute_compress(level=3)
        small_copy.precompute_compress(level=SMALL_DICTIONARY_LEVEL)
        for size in DICTIONARY_SIZES:
            with corpus_half(1):
                payload = orjson.dumps(make(size, size + 7))
            for name, (comp, dec) in codecs.items():
                if name.startswith("codec default") and len(payload) <= SMALL_DICTIONARY_PAYLOAD:
                    comp = small_level
                packed = comp.compress(payload)
                calls = max(5, int((2000 if size < 10_000 else 200) * share))
                c = measure("c", lambda p=payload, z=comp: z.compress(p), calls=calls, rounds=3)
                d = measure("d", lambda p=packed, z=dec: z.decompress(p), calls=calls, rounds=3)
                rows.append(
                    {
                        "shape": shape,
                        "payload_bytes": len(payload),
                        "codec": name,
                        # + the frame's 4-byte dictionary id with a dictionary
                        "ratio": (len(packed) + (0 if name == "zstd-3" else 4)) / len(payload),
                        "compress_us": c.p50_us,
                        "decompress_us": d.p50_us,
                        "train_seconds": train_seconds,
                    }
                )
    return rows
