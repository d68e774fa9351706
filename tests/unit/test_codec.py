import pickle
import zlib

import orjson
import pytest

from aicache.codec import (
    HEADER,
    HEADER_SIZE,
    MAGIC,
    Codec,
    SafeSerializer,
    ZlibCompressor,
    ZstdCompressor,
    compressor_class,
)
from aicache.exceptions import CodecError

PROSE = orjson.dumps(
    {
        "summary": " ".join(
            f"Sentence {i} explains how caching lowers the cost of language models." for i in range(80)
        )
    }
)


@pytest.mark.parametrize("algorithm", ["zlib", "zstd", "none"])
def test_round_trip(algorithm):
    codec = Codec(algorithm, None, threshold=100)
    encoded = codec.encode(PROSE, ttl=60)
    decoded = codec.decode(encoded.data)
    assert decoded.payload == PROSE
    assert decoded.ttl == 60
    assert decoded.compression_used is (algorithm != "none")
    assert encoded.compression_used is decoded.compression_used
    if algorithm != "none":
        assert encoded.stored_size < 0.5 * encoded.payload_size
        assert encoded.compression_seconds > 0


def test_threshold_boundary():
    codec = Codec("zlib", 6, threshold=len(PROSE))
    assert codec.encode(PROSE, 1).compression_used is True
    codec = Codec("zlib", 6, threshold=len(PROSE) + 1)
    below = codec.encode(PROSE, 1)
    assert below.compression_used is False
    assert below.data[HEADER_SIZE:] == PROSE


def test_incompressible_payload_is_stored_plain():
    noise = orjson.dumps({"x": __import__("os").urandom(3000).hex()[:10]})
    assert Codec("zlib", 6, threshold=1).encode(noise, 1).compression_used is False


def test_reader_decodes_any_known_algorithm():
    zstd_frame = Codec("zstd", 3, threshold=10).encode(PROSE, 5).data
    assert Codec("zlib", 6, 10).decode(zstd_frame).payload == PROSE


def bad_frames():
    ok = Codec("zlib", 6, threshold=10).encode(PROSE, 5).data
    yield "pickle", pickle.dumps({"summary": "x"})
    yield "pickle-in-frame", HEADER.pack(MAGIC, 0, 0, 5) + pickle.dumps({"a": 1})
    yield "empty", b""
    yield "short-header", ok[:5]
    yield "truncated-body", ok[:-20]
    yield "unknown-flag", HEADER.pack(MAGIC, 9, 0, 5) + PROSE
    yield "wrong-magic", HEADER.pack(0x80, 0, 0, 5) + PROSE
    yield "garbage-zlib", HEADER.pack(MAGIC, 1, 0, 5) + b"not zlib at all"
    yield "garbage-zstd", HEADER.pack(MAGIC, 2, 0, 5) + b"not zstd at all"
    yield "bomb", HEADER.pack(MAGIC, 1, 0, 5) + zlib.compress(b"0" * (65 * 1024 * 1024), 9)


@pytest.mark.parametrize("name,data", list(bad_frames()), ids=[n for n, _ in bad_frames()])
def test_bad_frames_raise_codec_error(name, data):
    codec = Codec("zlib", 6, 10)
    with pytest.raises(CodecError):
        codec.loads(data)


def test_pickle_is_never_loaded(monkeypatch):
    monkeypatch.setattr(pickle, "loads", lambda *a, **k: pytest.fail("pickle.loads called"))
    with pytest.raises(CodecError):
        Codec().loads(pickle.dumps({"a": 1}))


def test_compressor_resolution():
    assert compressor_class("zstd").name == "zstd"
    assert compressor_class("aicache.codec.ZlibCompressor").name == "zlib"
    for bad in ("lzma", "os.path.join", "no.such.Module"):
        with pytest.raises(CodecError):
            compressor_class(bad)


def test_safe_serializer():
    s = SafeSerializer({})
    assert s.loads(s.dumps({"a": [1, 2]})) == {"a": [1, 2]}
    with pytest.raises(TypeError, match="JSON-typed"):
        s.dumps(object())
    with pytest.raises(CodecError):
        s.loads(pickle.dumps("x"))


class FlagThree(ZlibCompressor):
    """A custom compressor claiming the trained-dictionary flag."""

    name = "flag-three"
    flag = 3


class ZstdAsZlib(ZstdCompressor):
    """zstd frames under the zlib flag: zlib readers would fail on them."""

    flag = 1


class TunedZlib(ZlibCompressor):
    """A zlib subclass keeping zlib's flag: it writes zlib's format, so it may."""


class OwnFlag(ZlibCompressor):
    name = "own-flag"
    flag = 4


@pytest.mark.parametrize("cls", ["FlagThree", "ZstdAsZlib"])
def test_a_custom_compressor_may_not_take_a_builtin_flag(cls):
    with pytest.raises(CodecError, match="reserved"):
        Codec(f"tests.unit.test_codec.{cls}")


def test_custom_compressors_with_their_own_flag_or_their_parents_round_trip():
    for cls in ("TunedZlib", "OwnFlag"):
        codec = Codec(f"tests.unit.test_codec.{cls}", threshold=0)
        data = codec.encode(PROSE, 60).data
        assert bytes(codec.decode(data).payload) == PROSE
    assert Codec("tests.unit.test_codec.OwnFlag", threshold=0).encode(PROSE, 60).data[1] == 4
