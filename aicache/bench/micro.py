"""Micro-benchmarks: reads, writes, key generation, compression, monitoring overhead.

Every aicache figure is measured beside the alternatives in the same run, on the same bytes.
"""

from __future__ import annotations

import hashlib
import itertools
from typing import Any

import orjson
from django.core.cache.backends.locmem import LocMemCache
from django.core.cache.backends.redis import RedisCache as DjangoRedisCache
from django_redis.cache import RedisCache as DjangoRedisRedisCache

from aicache.backend import AIResponseCache
from aicache.bench.harness import Result, measure
from aicache.bench.payloads import llm_response, prose
from aicache.codec import Codec
from aicache.keys import CacheKeyGenerator

# text characters -> response bytes ("realistic LLM responses, 200 B to 50 KB")
SIZES = ((500, 800), (5000, 5000), (50000, 50000))
_prefixes = itertools.count()


def make_aicache(url: str, *, coherence: bool = True, **options: Any) -> AIResponseCache:
    """A cache on ``url``; its coherence listener started (as a gunicorn post_fork hook would)
    unless ``coherence`` is False."""
    cache = AIResponseCache(url, {"OPTIONS": {"KEY_PREFIX": f"bench{next(_prefixes)}", **options}})
    if coherence:
        cache.start_coherence(wait=5)
    return cache


def text_key(text: str) -> str:
    """The least any other cache must do per request: a key from the text (one sha256)."""
    return "bench:" + hashlib.sha256(text.encode()).hexdigest()


#: ``quick`` may also be this fraction: a smoke run that only exercises the steps (tests use it).
SMOKE = 0.001


def _calls(quick: bool | float, full: int) -> int:
    """Calls per round: all of them, a tenth (``--quick``), or a token few (``--smoke``)."""
    if quick is True:
        return max(200, full // 10)
    if quick:
        return max(5, int(full * quick))
    return full


def reads(url: str, quick: bool = False) -> list[Result]:
    rounds = 3 if quick else 7
    out: list[Result] = []
    memory = make_aicache(url, MEMORY_TIERS=["small", "medium", "large", "xlarge"])
    redis_only = make_aicache(url, MEMORY_TIERS=[])
    redis_zlib = make_aicache(url, MEMORY_TIERS=[], COMPRESSION_ALGORITHM="zlib", COMPRESSION_LEVEL=6)
    peers = {
        "django-redis get (pickle)": DjangoRedisRedisCache(url, {}),
        "django-redis get (JSON + zlib)": DjangoRedisRedisCache(
            url,
            {
                "OPTIONS": {
                    "SERIALIZER": "django_redis.serializers.json.JSONSerializer",
                    "COMPRESSOR": "django_redis.compressors.zlib.ZlibCompressor",
                }
            },
        ),
        "Django RedisCache get": DjangoRedisCache(url, {}),
        "Django LocMemCache get": LocMemCache("bench", {}),
    }
    raw = redis_only.redis
    for text_chars, response_bytes in SIZES:
        text = prose(text_chars, seed=text_chars)
        response = llm_response(response_bytes, seed=text_chars + 1)
        payload = orjson.dumps(response)
        calls = _calls(quick, 20000 if response_bytes < 10000 else 4000)
        size = f"{len(payload) // 1000} KB" if len(payload) >= 1000 else f"{len(payload)} B"
        label = f"{text_chars} chars / {size}"
        ours = {
            "aicache memory-tier hit": memory,
            "aicache Redis hit": redis_only,
            "aicache Redis hit (zlib)": redis_zlib,
        }
        key = text_key(text)
        # name -> (store the answer, read it back); each case stores right before it is measured,
        # since the Redis peers share one key and each writes its own format there.
        cases = {}
        for name, cache in ours.items():
            cases[name] = (
                lambda c=cache, t=text, r=response: (
                    c.cache_response(t, "summarize", None, r),
                    c.get_cached_response(t, "summarize"),
                ),
                lambda c=cache, t=text: c.get_cached_response(t, "summarize"),
            )
        cases["raw redis-py GET + orjson.loads"] = (
            lambda k=key, p=payload: raw.set(k, p),
            lambda t=text: orjson.loads(raw.get(text_key(t))),
        )
        for name, peer in peers.items():
            cases[name] = (
                lambda p=peer, k=key, r=response: p.set(k, r, timeout=3600),
                lambda p=peer, t=text: p.get(text_key(t)),
            )
        for name, (store, read) in cases.items():
            store()
            out.append(measure(f"read {label}: {name}", read, calls=calls, rounds=rounds))
    for cache in (memory, redis_only, redis_zlib):
        cache.invalidate_all()
    return out


def writes(url: str, quick: bool = False) -> list[Result]:
    rounds = 3 if quick else 5
    out: list[Result] = []
    for algorithm, level in (("zlib", 6), ("zstd", 3), ("none", 0)):
        cache = make_aicache(url, COMPRESSION_ALGORITHM=algorithm, COMPRESSION_LEVEL=level)
        for text_chars, response_bytes in SIZES:
            text = prose(text_chars, seed=text_chars)
            response = llm_response(response_bytes, seed=text_chars + 1)
            calls = _calls(quick, 5000 if response_bytes < 10000 else 1000)
            out.append(
                measure(
                    f"write {text_chars} chars / {response_bytes} B: cache_response ({algorithm})",
                    lambda c=cache, t=text, r=response: c.cache_response(t, "summarize", None, r),
                    calls=calls,
                    rounds=rounds,
                )
            )
        cache.invalidate_all()
    return out


def key_generation(quick: bool | float = False) -> list[Result]:
    out = []
    for algorithm in ("sha256", "blake2b"):
        gen = CacheKeyGenerator("ai_cache", algorithm)
        for chars in (100, 1000, 10_000, 100_000, 1_000_000):
            text = prose(min(chars, 150_000), seed=5) * max(1, chars // 150_000)
            text = (text + prose(chars, seed=6))[:chars]
            calls = _calls(quick, max(50, 200_000_000 // (chars * 100 + 100_000)))
            out.append(
                measure(
                    f"key generation {chars} chars ({algorithm})",
                    lambda g=gen, t=text: g.generate(t, "summarize", {"max_words": 80}),
                    calls=calls,
                    rounds=3 if quick else 5,
                )
            )
    return out


def compression(url: str, quick: bool | float = False) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Ratio and speed per algorithm and level; and Redis MEMORY USAGE per 1,000 entries."""
    rows = []
    for response_bytes in (800, 5000, 50000):
        payload = orjson.dumps(llm_response(response_bytes, seed=response_bytes + 1))
        for algorithm, level in (
            ("zlib", 1),
            ("zlib", 6),
            ("zlib", 9),
            ("zstd", 1),
            ("zstd", 3),
            ("zstd", 4),
            ("zstd", 6),
            ("zstd", 9),
            ("zstd", 19),
        ):
            codec = Codec(algorithm, level, threshold=0)
            packed = codec.compressor.compress(payload)
            calls = _calls(quick, 2000 if response_bytes < 10000 else 200)
            comp = measure("c", lambda c=codec, b=payload: c.compressor.compress(b), calls=calls, rounds=3)
            dec = measure(
                "d", lambda c=codec, p=packed: c.compressor.decompress(p, 1 << 26), calls=calls, rounds=3
            )
            rows.append(
                {
                    "payload_bytes": len(payload),
                    "algorithm": algorithm,
                    "level": level,
                    "ratio": len(packed) / len(payload),
                    "compress_mb_s": len(payload) / (comp.p50_us / 1e6) / 1e6,
                    "decompress_mb_s": len(payload) / (dec.p50_us / 1e6) / 1e6,
                }
            )
    stored = []
    entries = _calls(quick, 1000) if quick is not True else 1000
    for algorithm in ("zlib", "zstd", "none"):
        cache = make_aicache(
            url,
            COMPRESSION_ALGORITHM=algorithm,
            COMPRESSION_LEVEL={"zlib": 6, "zstd": 3, "none": 0}[algorithm],
            MEMORY_TIERS=[],
        )
        keys = []
        for i in range(entries):
            text = f"entry {i}: " + prose(600, seed=i)
            cache.cache_response(text, "summarize", None, llm_response(5000, seed=i))
            keys.append(cache.key_generator.generate(text, "summarize"))
        pipe = cache.redis.pipeline(transaction=False)
        for key in keys:
            pipe.memory_usage(key, samples=0)
        stored.append(
            {
                "algorithm": algorithm,
                "entries": entries,
                "response_bytes": 5000,
                "redis_memory_usage_bytes": sum(pipe.execute()),
            }
        )
        cache.invalidate_all()
    return rows, stored


def monitoring_overhead(url: str, quick: bool = False) -> list[Result]:
    """The same reads with the recorder on and off, interleaved so drift hits both alike."""
    rounds = 3 if quick else 7
    on = make_aicache(url)
    off = make_aicache(url, MONITOR_CLASS=None)
    small, medium = prose(500, seed=1), prose(5000, seed=2)
    response = llm_response(800, seed=3)
    for cache in (on, off):
        cache.cache_response(small, "summarize", None, response)
        cache.cache_response(medium, "summarize", None, response)
        cache.get_cached_response(small, "summarize")
    out = []
    for what, text, calls in (("memory-tier hit", small, 20000), ("Redis hit", medium, 5000)):
        for name, cache in (("on", on), ("off", off), ("on", on), ("off", off)):
            out.append(
                measure(
                    f"monitoring {name}: {what}",
                    lambda c=cache, t=text: c.get_cached_response(t, "summarize"),
                    calls=_calls(quick, calls),
                    rounds=rounds,
                )
            )
    for cache in (on, off):
        cache.invalidate_all()
    return out
