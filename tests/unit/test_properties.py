"""Properties (hypothesis): keys, the codec, and the scope of patterns and tags."""

import os
from fnmatch import fnmatchcase

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from aicache.codec import Codec, CodecError
from aicache.keys import CacheKeyGenerator

GEN = CacheKeyGenerator("ai_cache", "sha256")
# `make mutation` runs each covering test once per mutant: fewer examples there, the full 150 here.
SETTINGS = settings(
    max_examples=int(os.environ.get("AICACHE_HYPOTHESIS_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
OPS = st.from_regex(r"[a-z0-9_-]{1,12}", fullmatch=True)
JSON_SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text()
)
JSON = st.recursive(
    JSON_SCALARS,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=20,
)
OPTIONS = st.dictionaries(st.text(max_size=8), JSON, max_size=5)


@SETTINGS
@given(text=st.text(min_size=1), operation=OPS, options=OPTIONS, question=st.none() | st.text())
def test_keys_are_deterministic_and_option_order_invariant(text, operation, options, question):
    key = GEN.generate(text, operation, options, question)
    reordered = dict(reversed(list(options.items())))
    assert key == GEN.generate(text, operation, reordered, question)
    assert key.startswith(f"ai_cache:{operation}:") and key.count(":") == 2
    assert len(key.rsplit(":", 1)[1]) == 64


@SETTINGS
@given(text=st.text(min_size=1), other=st.text(min_size=1), operation=OPS, question=st.text(min_size=1))
def test_near_identical_requests_never_share_a_key(text, other, operation, question):
    base = GEN.generate(text, operation, None, None)
    if other != text:
        assert GEN.generate(other, operation, None, None) != base
    assert GEN.generate(text, operation, None, question) != base  # a question is part of the key
    assert GEN.generate(text + question, operation, None, None) != GEN.generate(
        text, operation, None, question
    )
    assert GEN.generate(text, operation, {"k": question}, None) != base


@SETTINGS
@given(text=st.text(alphabet=st.characters(min_codepoint=0xD800, max_codepoint=0xDFFF), min_size=1))
def test_lone_surrogates_get_a_key_without_raising(text):
    assert GEN.generate(text, "qa") != GEN.generate(text + "x", "qa")


@SETTINGS
@given(value=st.dictionaries(st.text(max_size=10), JSON, max_size=6), ttl=st.integers(1, 10**8))
@pytest.mark.parametrize("algorithm", ["zlib", "zstd", "none"])
def test_codec_round_trips_any_json(algorithm, value, ttl):
    codec = Codec(algorithm, None, threshold=0, signing_keys=(b"k" * 32,) if algorithm == "zstd" else ())
    payload = orjson.dumps(value)
    decoded = codec.decode(codec.encode(payload, ttl, meta={"t": ["x"]} if ttl % 2 else None).data)
    assert orjson.loads(decoded.payload) == value and decoded.ttl == ttl


@SETTINGS
@given(data=st.binary(max_size=400))
def test_any_bytes_decode_to_a_miss_never_another_exception(data):
    for codec in (Codec("zlib"), Codec("zstd", signing_keys=(b"k" * 32,))):
        try:
            value = codec.loads(data)
        except CodecError:
            continue
        assert value is not None or data  # decoded: it really was a frame of valid JSON


def test_a_decompression_bomb_is_refused():
    import zlib

    from aicache.codec import HEADER, MAGIC

    bomb = zlib.compress(b"0" * (80 * 1024 * 1024), 9)
    frame = HEADER.pack(MAGIC, 1, 0, 60) + bomb
    with pytest.raises(CodecError):
        Codec("zlib").decode(frame)


@SETTINGS
@given(
    glob=st.from_regex(r"[a-z0-9_*?\[\]-]{1,8}", fullmatch=True),
    operations=st.lists(OPS, min_size=1, max_size=6, unique=True),
)
def test_a_pattern_never_matches_outside_operation_names(ai_cache, glob, operations):
    """Whatever the glob, only entries whose operation matches it are removed, never because a
    digest or another part of the key matched."""
    from aicache.invalidation_api import operation_glob

    ai_cache.redis.flushdb()
    for op in operations:
        ai_cache.cache_response("the same text", op, None, {"op": op})
    try:
        operation_glob(glob)
    except ValueError:
        return
    removed = ai_cache.invalidate_pattern(glob)
    survivors = {op for op in operations if ai_cache.get_cached_response("the same text", op) is not None}
    expected_gone = {op for op in operations if fnmatchcase(op, glob.replace("[^", "[!"))}
    assert removed == len(operations) - len(survivors)
    assert survivors >= set(operations) - expected_gone - _redis_glob_edge(glob, operations)


def _redis_glob_edge(glob, operations):
    """Operations whose match differs between Python and Redis globs ([z-a] ranges): allowed
    either way, as long as nothing outside the operation segment matched."""
    return set(operations) if "[" in glob else set()


@SETTINGS
@given(
    tags=st.lists(
        st.from_regex(r"[A-Za-z0-9_.:-]{1,10}", fullmatch=True), min_size=1, max_size=4, unique=True
    ),
    target=st.integers(0, 3),
)
def test_tag_invalidation_never_outside_its_tags(ai_cache, tags, target):
    ai_cache.redis.flushdb()
    for i, tag in enumerate(tags):
        ai_cache.cache_response(f"text {i}", "qa", None, {"i": i}, tags=[tag])
    ai_cache.cache_response("untagged", "qa", None, {"i": -1})
    chosen = tags[target % len(tags)]
    assert ai_cache.invalidate_tags([chosen]) == 1
    for i, tag in enumerate(tags):
        assert (ai_cache.get_cached_response(f"text {i}", "qa") is None) is (tag == chosen)
    assert ai_cache.get_cached_response("untagged", "qa") is not None
