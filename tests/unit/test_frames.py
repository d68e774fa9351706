"""The frame format of README / aicache.codec, checked byte by byte with ``struct`` written out here
(not the codec's own constants), and every way a frame can be malformed, each with its message."""

import hmac
import struct
import zlib

import orjson
import pytest
import zstandard

from aicache.codec import (
    DICTIONARY_MAX_PAYLOAD,
    MAX_META_BYTES,
    Codec,
    CodecError,
    ForgedEntry,
    SafeSerializer,
    UnknownDictionary,
    read_meta,
)

PAYLOAD = orjson.dumps({"answer": "The quick brown fox jumps over the lazy dog. " * 20})
SMALL = orjson.dumps({"a": 1})
KEY, OLD_KEY = b"k" * 32, b"o" * 32


def header(magic, flag, stamp_ms, ttl):
    return struct.pack(">BBQI", magic, flag, stamp_ms, ttl)


@pytest.mark.parametrize(
    ("algorithm", "flag", "inflate"),
    [
        ("zlib", 1, zlib.decompress),
        ("zstd", 2, lambda b: zstandard.ZstdDecompressor().decompress(b)),
        ("none", 0, lambda b: b),
    ],
)
def test_a_plain_frame_byte_by_byte(algorithm, flag, inflate):
    codec = Codec(algorithm, threshold=256)
    encoded = codec.encode(PAYLOAD, 3600, cached_at=1_795_000_000.25)
    data = encoded.data
    assert data[:14] == header(0xA1, flag, 1_795_000_000_250, 3600)
    assert inflate(data[14:]) == PAYLOAD
    assert (encoded.payload_size, encoded.stored_size) == (len(PAYLOAD), len(data) - 14)
    assert encoded.compression_used is (flag != 0)
    assert (encoded.compression_seconds > 0) is (flag != 0)
    decoded = codec.decode(data)
    assert bytes(decoded.payload) == PAYLOAD
    assert (decoded.cached_at, decoded.ttl, decoded.compression_used, decoded.meta) == (
        1_795_000_000.25,
        3600,
        flag != 0,
        None,
    )
    assert codec.loads(data) == orjson.loads(PAYLOAD)


def test_the_threshold_and_a_payload_compression_does_not_shrink():
    codec = Codec("zlib", threshold=len(PAYLOAD))
    assert codec.encode(PAYLOAD, 60).data[1] == 1  # at the threshold: compressed
    assert Codec("zlib", threshold=len(PAYLOAD) + 1).encode(PAYLOAD, 60).data[1] == 0  # below: plain
    incompressible = __import__("os").urandom(512)
    plain = Codec("zlib", threshold=1).encode(incompressible, 60)
    assert plain.data[1] == 0 and plain.data[14:] == incompressible and plain.compression_seconds == 0.0


def test_a_frame_with_metadata_byte_by_byte():
    codec = Codec("none")
    meta = {"tags": ["prompt:v3"], "cost": 1.5}
    data = codec.encode(SMALL, 60, cached_at=10.0, meta=meta).data
    packed = orjson.dumps(meta)
    assert data == header(0xA2, 0, 10_000, 60) + struct.pack(">H", len(packed)) + packed + SMALL
    assert codec.decode(data).meta == meta
    assert read_meta(data) == (meta, 14 + 2 + len(packed))
    assert codec.encode(SMALL, 60, cached_at=10.0, meta={}).data[0] == 0xA1  # empty meta: none


def test_metadata_larger_than_its_length_field_is_refused():
    with pytest.raises(ValueError, match="entry metadata is 65544 bytes; at most 65535"):
        Codec("none").encode(SMALL, 60, meta={"x": "y" * 65_536})


def test_signed_frames_carry_an_hmac_of_everything_before_it():
    codec = Codec("none", signing_keys=(KEY, OLD_KEY))
    data = codec.encode(SMALL, 60, cached_at=10.0).data
    body = header(0xB1, 0, 10_000, 60) + SMALL
    assert data == body + hmac.new(KEY, body, "sha256").digest()
    with_meta = codec.encode(SMALL, 60, cached_at=10.0, meta={"a": 1}).data
    assert with_meta[0] == 0xB2 and codec.decode(with_meta).meta == {"a": 1}
    # A frame signed with the older key still reads (rotation); with no key of ours, forged.
    old = Codec("none", signing_keys=(OLD_KEY,)).encode(SMALL, 60).data
    assert codec.loads(old) == {"a": 1}
    stranger = Codec("none", signing_keys=(b"s" * 32,)).encode(SMALL, 60).data
    with pytest.raises(ForgedEntry, match=r"^entry signature does not verify against any signing key$"):
        codec.decode(stranger)
    # A reader without keys takes signed frames as they are.
    assert Codec("none").loads(data) == {"a": 1}


def _meta_frame(meta_bytes, declared=None):
    declared = len(meta_bytes) if declared is None else declared
    return header(0xA2, 0, 1, 60) + struct.pack(">H", declared) + meta_bytes + SMALL


@pytest.mark.parametrize(
    ("data", "error", "message"),
    [
        (b"\xa1\x00\x00", CodecError, "entry is shorter than the frame header"),
        ("not bytes", CodecError, "entry is shorter than the frame header"),
        (header(0xC3, 0, 1, 60) + SMALL, CodecError, "unknown frame magic 0xc3 (not an aicache entry)"),
        (header(0xA1, 9, 1, 60) + SMALL, CodecError, "unknown codec flag 9"),
        (header(0xA2, 0, 1, 60) + b"\x00", CodecError, "entry is shorter than its metadata header"),
        (_meta_frame(b'{"a":1}', declared=400), CodecError, "entry metadata is truncated"),
        (_meta_frame(b"{nope}"), CodecError, "entry metadata is not JSON"),
        (_meta_frame(b"[1,2]"), CodecError, "entry metadata is not an object"),
        (header(0xA1, 1, 1, 60) + b"garbage", CodecError, "corrupt zlib payload"),
        (header(0xA1, 1, 1, 60) + zlib.compress(PAYLOAD)[:-6], CodecError, "truncated zlib payload"),
        (header(0xA1, 2, 1, 60) + b"garbage", CodecError, "corrupt zstd payload"),
        (
            header(0xA1, 3, 1, 60) + b"\x00\x01",
            CodecError,
            "dictionary frame is shorter than its dictionary id",
        ),
        (
            header(0xA1, 3, 1, 60) + struct.pack(">I", 77) + b"zz",
            UnknownDictionary,
            "entry was compressed with dictionary 77, which is not available",
        ),
        (header(0xB1, 0, 1, 60) + b"short", ForgedEntry, "signed entry is shorter than its signature"),
    ],
)
def test_each_malformed_frame_says_what_is_wrong(data, error, message):
    with pytest.raises(error) as info:
        Codec("zlib").decode(data)
    assert str(info.value).startswith(message)


def test_a_cache_that_signs_refuses_unsigned_frames():
    unsigned = Codec("none").encode(SMALL, 60).data
    with pytest.raises(ForgedEntry, match=r"^entry is not signed, and this cache signs its entries$"):
        Codec("none", signing_keys=(KEY,)).decode(unsigned)
    unsigned_meta = Codec("none").encode(SMALL, 60, meta={"a": 1}).data
    with pytest.raises(ForgedEntry):
        Codec("none", signing_keys=(KEY,)).decode(unsigned_meta)


def test_a_zlib_bomb_is_refused_past_the_limit(monkeypatch):
    from aicache import codec as codec_module

    monkeypatch.setattr(codec_module, "MAX_DECOMPRESSED_BYTES", 1000)
    bomb = header(0xA1, 1, 1, 60) + zlib.compress(b"0" * 5000)
    with pytest.raises(CodecError, match="zlib payload inflates beyond 1000 bytes"):
        Codec("zlib").decode(bomb)


def test_the_payload_must_be_json():
    with pytest.raises(CodecError, match="payload is not JSON"):
        Codec("none").loads(header(0xA1, 0, 1, 60) + b"\x80\x04pickle")


def test_the_plain_api_serializer():
    s = SafeSerializer({})
    assert s.options == {} and s.loads(s.dumps({"a": [1, 2]})) == {"a": [1, 2]}
    with pytest.raises(TypeError, match="aicache stores JSON-typed values only"):
        s.dumps({1, 2})
    with pytest.raises(CodecError, match="cached value is not JSON"):
        s.loads(b"\x80\x04")


def test_a_frame_exactly_as_long_as_its_header_has_an_empty_payload():
    assert bytes(Codec("none").decode(header(0xA1, 0, 1, 60)).payload) == b""


class Dictionaries:
    def __init__(self, **by_id):
        self.by_id = {int(k[1:]): v for k, v in by_id.items()}

    def get(self, dict_id):
        return self.by_id.get(dict_id)


def test_a_dictionary_frame_byte_by_byte():
    samples = [
        orjson.dumps({"answer": f"Summary {i}: the quarterly report shows revenue of {i * 7} units."})
        for i in range(400)
    ]
    zdict = zstandard.train_dictionary(2048, samples)
    payload = orjson.dumps({"answer": "Summary 999: the quarterly report shows revenue of 6993 units."})
    codec = Codec("zstd", threshold=32, dictionaries=Dictionaries(d7=zdict))
    meta = {"tags": ["q3"]}
    encoded = codec.encode(payload, 90, cached_at=20.5, meta=meta, dictionary=(7, zdict))
    data = encoded.data
    packed = orjson.dumps(meta)
    start = 14 + 2 + len(packed)
    assert data[:start] == header(0xA2, 3, 20_500, 90) + struct.pack(">H", len(packed)) + packed
    assert data[start : start + 4] == struct.pack(">I", 7)
    assert zstandard.ZstdDecompressor(dict_data=zdict).decompress(data[start + 4 :]) == payload
    assert encoded.compression_used and encoded.stored_size == len(data) - start
    decoded = codec.decode(data)
    assert (
        bytes(decoded.payload),
        decoded.cached_at,
        decoded.ttl,
        decoded.compression_used,
        decoded.meta,
    ) == (
        payload,
        20.5,
        90,
        True,
        meta,
    )
    # Without the dictionary: a counted miss, never a wrong answer.
    with pytest.raises(UnknownDictionary):
        Codec("zstd", dictionaries=Dictionaries()).decode(data)
    # Not used above DICTIONARY_MAX_PAYLOAD, nor where it would not shrink the payload.
    big = orjson.dumps({"answer": "x" * 20_000})
    assert codec.encode(big, 60, dictionary=(7, zdict)).data[1] == 2


@pytest.mark.parametrize(
    ("algorithm", "level", "expected"),
    [
        ("zlib", None, lambda p: zlib.compress(p, 6)),
        ("zlib", 9, lambda p: zlib.compress(p, 9)),
        ("zstd", None, lambda p: zstandard.ZstdCompressor(level=3).compress(p)),
        ("zstd", 19, lambda p: zstandard.ZstdCompressor(level=19).compress(p)),
    ],
)
def test_compression_levels_and_their_defaults(algorithm, level, expected):
    codec = Codec(algorithm, level=level)
    assert codec.compressor.level == level
    assert codec.encode(PAYLOAD, 60).data[14:] == expected(PAYLOAD)


def test_the_default_threshold_is_256_bytes():
    at = orjson.dumps({"a": "b" * 248})
    assert len(at) == 256
    assert Codec("zlib").encode(at, 60).data[1] == 1
    below = orjson.dumps({"a": "b" * 247})
    assert len(below) == 255 and Codec("zlib").encode(below, 60).data[1] == 0


def _compressor(flag, base=None):
    from aicache.codec import BaseCompressor

    return type("Custom", (base or BaseCompressor,), {"flag": flag, "name": "custom"})


@pytest.mark.parametrize(
    ("flag", "problem"),
    [
        (255, ""),
        (4, ""),
        (256, "flag must be an integer from 4 to 255, got 256"),
        (-1, "flag must be an integer from 4 to 255, got -1"),
        (True, "flag must be an integer from 4 to 255, got True"),
        ("5", "flag must be an integer from 4 to 255, got '5'"),
        (
            3,
            "flag 3 is reserved for zstd with a trained dictionary (frames with it would be decoded as "
            "that); give the compressor a flag from 4 to 255",
        ),
        (
            1,
            "flag 1 is reserved for the built-in 'zlib' (frames with it would be decoded as that); "
            "give the compressor a flag from 4 to 255",
        ),
    ],
)
def test_which_flags_a_custom_compressor_may_use(flag, problem):
    from aicache.codec import reserved_flag_problem

    assert reserved_flag_problem(_compressor(flag)) == problem


def test_a_compressor_without_a_flag_is_refused():
    from aicache.codec import BaseCompressor, reserved_flag_problem

    assert reserved_flag_problem(type("NoFlag", (BaseCompressor,), {})) == (
        "flag must be an integer from 4 to 255, got None"
    )


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("lz4", "unknown compression algorithm 'lz4'"),
        ("no.such.Compressor", "cannot import compressor 'no.such.Compressor': "),
        ("json.dumps", "'json.dumps' is not an aicache.codec.BaseCompressor subclass"),
    ],
)
def test_compressor_resolution_errors(name, message):
    from aicache.codec import compressor_class

    with pytest.raises(CodecError) as info:
        compressor_class(name)
    assert str(info.value).startswith(message)


def test_zstd_without_its_package(monkeypatch):
    import sys

    from aicache.codec import ZlibCompressor, compressor_class

    monkeypatch.setitem(sys.modules, "zstandard", None)
    with pytest.raises(CodecError) as info:
        compressor_class("zstd")
    assert str(info.value) == "zstd needs the 'zstandard' package"
    assert compressor_class("zlib") is ZlibCompressor  # the others need nothing


def test_size_checks_at_their_exact_edges():
    codec = Codec("none")
    # a metadata header and no metadata, no payload: an empty object is not there to read
    only_length = header(0xA2, 0, 1, 60) + struct.pack(">H", 0)
    with pytest.raises(CodecError, match=r"^entry metadata is not JSON"):
        codec.decode(only_length)
    # metadata exactly as long as declared, nothing after it: an empty payload
    exact = header(0xA2, 0, 1, 60) + struct.pack(">H", 2) + b"{}"
    assert read_meta(exact) == ({}, 18) and bytes(codec.decode(exact).payload) == b""
    # a signed frame of header + signature only: verified, an empty payload
    signer = Codec("none", signing_keys=(KEY,))
    body = header(0xB1, 0, 1, 60)
    assert bytes(signer.decode(body + hmac.new(KEY, body, "sha256").digest()).payload) == b""


def _zdict():
    samples = [
        orjson.dumps({"answer": f"Summary {i}: revenue of {i * 7} units in region {i % 9}."})
        for i in range(400)
    ]
    return zstandard.train_dictionary(2048, samples)


def test_a_dictionary_frame_with_only_its_id_is_corrupt_not_missing():
    codec = Codec("zstd", dictionaries=Dictionaries(d7=_zdict()))
    with pytest.raises(CodecError) as info:
        codec.decode(header(0xA1, 3, 1, 60) + struct.pack(">I", 7))
    assert str(info.value).startswith("corrupt zstd payload (dictionary 7): ")
    assert not isinstance(info.value, UnknownDictionary)


def test_a_retrained_dictionary_under_the_same_id_is_used_not_the_cached_one():
    payload = orjson.dumps({"answer": "Summary 5: revenue of 35 units in region 5."})
    first, second = (
        _zdict(),
        zstandard.train_dictionary(
            2048, [orjson.dumps({"other": f"Completely different text number {i} here."}) for i in range(400)]
        ),
    )
    codec = Codec("zstd", threshold=1, dictionaries=Dictionaries(d7=first))
    assert codec.loads(codec.encode(payload, 60, dictionary=(7, first)).data) == orjson.loads(payload)
    codec.dictionaries = Dictionaries(d7=second)
    other = orjson.dumps({"other": "Completely different text number 5 here. And number 6 here."})
    frame = codec.encode(other, 60, dictionary=(7, second)).data
    assert frame[1] == 3
    assert zstandard.ZstdDecompressor(dict_data=second).decompress(frame[18:]) == other
    assert codec.loads(frame) == orjson.loads(other)


def test_the_per_thread_dictionary_pairs_stay_bounded():
    from aicache.codec import ZstdCompressor

    compressor = ZstdCompressor()
    zdict = _zdict()
    for dict_id in range(70):
        compressor.compress_with(dict_id, zdict, b"x" * 100)
    assert len(compressor._local.dict_pairs) == 70 - 64  # cleared at 64, then 6 more


def test_zstd_size_declarations_at_the_limit_and_frames_that_do_not_declare(monkeypatch):
    from aicache import codec as codec_module

    payload = orjson.dumps({"a": "b" * 2000})
    monkeypatch.setattr(codec_module, "MAX_DECOMPRESSED_BYTES", len(payload))
    declared = header(0xA1, 2, 1, 60) + zstandard.ZstdCompressor().compress(payload)
    assert bytes(Codec("zstd").decode(declared).payload) == payload  # exactly at the limit
    monkeypatch.setattr(codec_module, "MAX_DECOMPRESSED_BYTES", len(payload) - 1)
    with pytest.raises(CodecError) as info:
        Codec("zstd").decode(declared)
    assert str(info.value) == f"zstd payload declares more than {len(payload) - 1} bytes"
    undeclared = zstandard.ZstdCompressor(write_content_size=False).compressobj()
    frame = undeclared.compress(payload) + undeclared.flush()
    with pytest.raises(CodecError, match=r"^corrupt zstd payload: "):
        Codec("zstd").decode(header(0xA1, 2, 1, 60) + frame)  # inflating stops at the limit


def test_a_dictionary_frame_past_the_limit(monkeypatch):
    from aicache import codec as codec_module

    zdict = _zdict()
    payload = orjson.dumps({"answer": "Summary 5: revenue of 35 units in region 5. " * 40})
    codec = Codec("zstd", threshold=1, dictionaries=Dictionaries(d7=zdict))
    frame = codec.encode(payload, 60, dictionary=(7, zdict)).data
    monkeypatch.setattr(codec_module, "MAX_DECOMPRESSED_BYTES", len(payload) - 1)
    with pytest.raises(CodecError) as info:
        codec.decode(frame)
    assert str(info.value) == f"zstd payload declares more than {len(payload) - 1} bytes"


def test_a_dictionary_zstd_cannot_use_says_so():
    from aicache.codec import ZstdCompressor

    with pytest.raises(CodecError) as info:
        ZstdCompressor().compress_with(
            9, zstandard.ZstdCompressionDict(b"\x37\xa4\x30\xec" + b"\x00" * 40), b"x"
        )
    assert str(info.value).startswith("dictionary 9 cannot compress: ")


def test_a_dictionary_frame_without_zstandard(monkeypatch):
    codec = Codec("zlib")
    monkeypatch.setattr(codec, "_zstd", None)
    with pytest.raises(CodecError) as info:
        codec.decode(header(0xA1, 3, 1, 60) + struct.pack(">I", 7) + b"zz")
    assert str(info.value) == "entry needs zstd (the 'zstandard' package) and a dictionary"


def test_small_dictionary_frames_use_the_small_payload_level_and_larger_ones_the_configured():
    from aicache.codec import SMALL_DICTIONARY_LEVEL, SMALL_DICTIONARY_PAYLOAD, ZstdCompressor

    zdict = _zdict()
    small = orjson.dumps({"answer": "Summary 5: revenue of 35 units in region 5. " * 10})
    large = orjson.dumps({"answer": "Summary 6: revenue of 42 units in region 6. " * 60})
    assert len(small) <= SMALL_DICTIONARY_PAYLOAD < len(large)

    def at(level, payload):
        copy = zstandard.ZstdCompressionDict(zdict.as_bytes())
        copy.precompute_compress(level=level)
        return zstandard.ZstdCompressor(level=level, dict_data=copy, write_dict_id=False).compress(payload)

    default = ZstdCompressor()
    assert default.compress_with(7, zdict, small) == at(SMALL_DICTIONARY_LEVEL, small)
    assert default.compress_with(7, zdict, large) == at(3, large)
    configured = ZstdCompressor(level=3)  # an explicit COMPRESSION_LEVEL holds for every size
    assert configured.compress_with(7, zdict, small) == at(3, small)
    for compressor in (default, configured):
        for payload in (small, large):
            frame = compressor.compress_with(7, zdict, payload)
            assert compressor.decompress_with(7, zdict, frame, 1 << 20) == payload


def test_edges_of_the_dictionary_and_metadata_bounds_and_the_compression_time():
    zdict = _zdict()
    codec = Codec("zstd", threshold=32, dictionaries=Dictionaries(d7=zdict))
    prefix = b'{"answer":"'
    exactly = prefix + b"Summary 1: revenue of 7 units in region 1. " * 400
    exactly = exactly[: DICTIONARY_MAX_PAYLOAD - 2] + b'"}'
    assert len(exactly) == DICTIONARY_MAX_PAYLOAD
    encoded = codec.encode(exactly, 60, dictionary=(7, zdict))
    assert encoded.data[1] == 3 and bytes(codec.decode(encoded.data).payload) == exactly
    # the time a compression took, not a clock reading
    assert encoded.compression_used and 0.0 < encoded.compression_seconds < 1.0
    # metadata exactly at its bound is written and read back
    meta = {"x": "y" * (MAX_META_BYTES - len(b'{"x":""}'))}
    assert len(orjson.dumps(meta)) == MAX_META_BYTES
    assert Codec("none").decode(Codec("none").encode(SMALL, 60, meta=meta).data).meta == meta
