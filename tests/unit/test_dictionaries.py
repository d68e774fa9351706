"""Codec behaviour with trained zstd dictionaries, and the default codec (no Redis needed)."""

import orjson
import pytest
import zstandard

from aicache import dictionaries
from aicache.bench.payloads import llm_response
from aicache.codec import DICT_ID, HEADER_SIZE, ZSTD_DICT_FLAG, Codec, UnknownDictionary

SAMPLES = [orjson.dumps(llm_response(800, seed=i)) for i in range(120)]
PAYLOAD = orjson.dumps(llm_response(800, seed=10_000))  # never in the training sample


def trained(dict_id: int) -> zstandard.ZstdCompressionDict:
    return zstandard.train_dictionary(8192, SAMPLES, dict_id=dict_id, level=3)


class Known(dict):
    """A Dictionaries resolver over a plain dict of id -> dictionary."""


def test_default_codec_is_zstd_with_a_low_threshold():
    codec = Codec()
    assert codec.compressor.name == "zstd"
    assert codec.encode(PAYLOAD, 60).data[1] == 2  # an 800 B answer is compressed by default


def test_a_dictionary_frame_names_its_id_and_round_trips():
    zdict = trained(41)
    codec = Codec(dictionaries=Known({41: zdict}))
    encoded = codec.encode(PAYLOAD, 60, dictionary=(41, zdict))
    assert encoded.data[1] == ZSTD_DICT_FLAG
    assert DICT_ID.unpack_from(encoded.data, HEADER_SIZE) == (41,)
    assert bytes(codec.decode(encoded.data).payload) == PAYLOAD
    plain = codec.encode(PAYLOAD, 60).stored_size
    assert encoded.stored_size < 0.6 * plain  # the point of a dictionary at 800 B


def test_a_frame_whose_dictionary_is_unknown_raises_unknown_dictionary():
    zdict = trained(42)
    data = Codec().encode(PAYLOAD, 60, dictionary=(42, zdict)).data
    for reader in (Codec(), Codec(dictionaries=Known({43: trained(43)}))):
        with pytest.raises(UnknownDictionary):
            reader.decode(data)


@pytest.mark.parametrize("algorithm", ["zlib", "none"])
def test_entries_of_every_builtin_codec_stay_readable_after_switching_to_zstd(algorithm):
    old = Codec(algorithm, threshold=0).encode(PAYLOAD, 60).data
    assert bytes(Codec().decode(old).payload) == PAYLOAD
    assert bytes(Codec("zlib").decode(Codec().encode(PAYLOAD, 60).data).payload) == PAYLOAD


def test_frames_of_a_retrained_dictionary_and_of_its_predecessor_both_decode():
    first, second = trained(50), zstandard.train_dictionary(8192, SAMPLES[::-1], dict_id=51, level=3)
    writer = Codec()
    old = writer.encode(PAYLOAD, 60, dictionary=(50, first)).data
    new = writer.encode(PAYLOAD, 60, dictionary=(51, second)).data
    reader = Codec(dictionaries=Known({50: first, 51: second}))
    assert bytes(reader.decode(old).payload) == bytes(reader.decode(new).payload) == PAYLOAD


def test_registry_fetches_an_id_once_and_remembers_a_missing_one_briefly():
    zdict = trained(60)
    calls = []

    def fetch(key):
        calls.append(key)
        return zdict.as_bytes() if key.endswith(":60") else None

    registry = dictionaries.DictionaryRegistry("p", refresh_seconds=60)
    assert registry.get(60, fetch).dict_id() == 60
    assert registry.get(60, fetch).dict_id() == 60
    assert registry.get(61, fetch) is None
    assert registry.get(61, fetch) is None
    assert calls == ["p!zdict:60", "p!zdict:61"]


def test_writers_reread_the_pointer_only_after_the_refresh_interval(monkeypatch):
    zdict = trained(70)
    store = {"p!zdict!op:qa": b"70", "p!zdict:70": zdict.as_bytes()}
    calls = []

    def fetch(key):
        calls.append(key)
        return store.get(key)

    clock = [1000.0]
    monkeypatch.setattr(dictionaries.time, "monotonic", lambda: clock[0])
    registry = dictionaries.DictionaryRegistry("p", refresh_seconds=60)
    assert registry.for_write("qa", fetch)[0] == 70
    store["p!zdict!op:qa"] = b"71"
    assert registry.for_write("qa", fetch)[0] == 70  # within the interval: no Redis call
    assert calls.count("p!zdict!op:qa") == 1
    clock[0] += 61
    assert registry.for_write("qa", fetch) is None  # 71 is not in Redis: write without one
    assert calls.count("p!zdict!op:qa") == 2


def test_training_never_runs_on_the_request_path(make_cache, monkeypatch):
    def forbidden(*args, **kwargs):
        raise AssertionError("train_dictionary called on the request path")

    monkeypatch.setattr(zstandard, "train_dictionary", forbidden)
    monkeypatch.setattr(dictionaries, "train_operation", forbidden)
    cache = make_cache(MEMORY_TIERS=[], DICTIONARY_MIN_SAMPLES=10)
    for i in range(60):
        text = f"request {i} asks the cache something long enough to matter"
        cache.get_or_compute(text, "qa", compute=lambda i=i: llm_response(800, seed=i))
        cache.cache_response(text, "qa", None, llm_response(800, seed=i + 1))
        assert cache.get_cached_response(text, "qa")["cache_hit"] is True


def test_large_payloads_are_compressed_without_the_dictionary():
    zdict = trained(80)
    big = orjson.dumps(llm_response(50_000, seed=3))
    assert Codec().encode(big, 60, dictionary=(80, zdict)).data[1] == 2  # plain zstd
    small = Codec().encode(PAYLOAD, 60, dictionary=(80, zdict)).data
    assert small[1] == ZSTD_DICT_FLAG


def test_signed_dictionary_frames_verify_before_any_dictionary_is_looked_up():
    from aicache.codec import ForgedEntry

    zdict = trained(90)
    looked_up = []

    class Spy(dict):
        def get(self, dict_id):
            looked_up.append(dict_id)
            return super().get(dict_id)

    signed = Codec(signing_keys=(b"k" * 32,), dictionaries=Spy({90: zdict}))
    data = signed.encode(PAYLOAD, 60, dictionary=(90, zdict)).data
    assert bytes(signed.decode(data).payload) == PAYLOAD and looked_up == [90]
    tampered = data[:20] + bytes([data[20] ^ 1]) + data[21:]
    with pytest.raises(ForgedEntry):
        signed.decode(tampered)
    assert looked_up == [90]  # a forged frame never reaches the dictionary lookup


@pytest.mark.parametrize(
    "raw,expected",
    [
        *[(b"7", 7), ("4294967295", 4294967295)],
        *[
            (bad, None)
            for bad in (b"0", b"-5", b"4294967296", b"1.5", b" 7", b"", b"\xff", b"1_0", b"9" * 40)
        ],
    ],
)
def test_parse_id_accepts_only_a_frame_s_u32(raw, expected):
    assert dictionaries.parse_id(raw) == expected


def test_a_pointer_that_is_not_an_id_is_a_fault_once_per_refresh_interval():
    faults, fetched = [], []
    registry = dictionaries.DictionaryRegistry("p", refresh_seconds=60)

    def fetch(key):
        fetched.append(key)
        return b"not-an-id"

    for _ in range(3):
        assert registry.for_write("qa", fetch, lambda *fault: faults.append(fault)) is None
    assert [f[:2] for f in faults] == [("corrupt_entry", "dictionary")]
    assert "not a dictionary id" in str(faults[0][2]) and fetched == ["p!zdict!op:qa"]


def test_new_ids_are_31_bit_and_above_zstd_s_registered_range():
    ids = {dictionaries.new_id() for _ in range(1000)}
    assert all(32768 <= i < 2**31 for i in ids) and len(ids) > 990
