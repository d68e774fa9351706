"""ZstdCompressor's own promises: frames that do not declare their size, the limit on dictionary
frames, one (de)compressor pair per thread reused by that thread, a dictionary digested once."""

import sys
import threading

import orjson
import pytest
import zstandard

from aicache.codec import SMALL_DICTIONARY_PAYLOAD, CodecError, ZstdCompressor
from tests.helpers import run_threads

PAYLOAD = orjson.dumps({"answer": "Summary 5: revenue of 35 units in region 5. " * 40})


def _samples():
    return [
        orjson.dumps({"answer": f"Summary {i}: revenue of {i * 7} units in region {i % 9}."})
        for i in range(400)
    ]


def _undeclared(data: bytes, dictionary=None) -> bytes:
    """A zstd frame that does not declare its content size (a streaming writer's frame)."""
    options = {"write_content_size": False}
    if dictionary is not None:
        options.update(dict_data=dictionary, write_dict_id=False)
    writer = zstandard.ZstdCompressor(**options).compressobj()
    frame = writer.compress(data) + writer.flush()
    assert zstandard.frame_content_size(frame) == -1
    return frame


def test_an_undeclared_frame_within_the_limit_inflates():
    """max_output_size is what lets zstd inflate a frame that does not declare its size at all."""
    compressor = ZstdCompressor()
    assert compressor.decompress(_undeclared(PAYLOAD), len(PAYLOAD)) == PAYLOAD
    with pytest.raises(CodecError, match=r"^corrupt zstd payload: "):
        compressor.decompress(_undeclared(PAYLOAD), len(PAYLOAD) - 1)


def test_an_undeclared_dictionary_frame_within_the_limit_inflates():
    zdict = zstandard.train_dictionary(2048, _samples())
    compressor = ZstdCompressor()
    frame = _undeclared(PAYLOAD, zdict)
    assert compressor.decompress_with(7, zdict, frame, len(PAYLOAD)) == PAYLOAD
    with pytest.raises(CodecError, match=r"^corrupt zstd payload \(dictionary 7\): "):
        compressor.decompress_with(7, zdict, frame, len(PAYLOAD) - 1)


def test_a_dictionary_frame_declaring_exactly_the_limit_inflates():
    zdict = zstandard.train_dictionary(2048, _samples())
    compressor = ZstdCompressor()
    frame = compressor.compress_with(7, zdict, PAYLOAD)
    assert zstandard.frame_content_size(frame) == len(PAYLOAD)
    assert compressor.decompress_with(7, zdict, frame, len(PAYLOAD)) == PAYLOAD
    with pytest.raises(CodecError) as info:
        compressor.decompress_with(7, zdict, frame, len(PAYLOAD) - 1)
    assert str(info.value) == f"zstd payload declares more than {len(PAYLOAD) - 1} bytes"


def test_each_thread_reuses_its_own_pair():
    """zstandard's (de)compressors are not thread-safe: one pair per thread, built once."""
    compressor = ZstdCompressor()
    here = compressor._pair()
    assert compressor._pair() is here
    assert compressor.decompress(compressor.compress(PAYLOAD), len(PAYLOAD)) == PAYLOAD
    assert compressor._pair() is here
    elsewhere = run_threads(lambda _: (compressor._pair(), compressor._pair()), 2)
    for first, again in elsewhere:
        assert first is again and first is not here
    assert elsewhere[0][0] is not elsewhere[1][0]


def test_each_thread_reuses_its_pair_per_dictionary_and_rebuilds_it_for_a_new_one():
    compressor = ZstdCompressor()
    first = zstandard.train_dictionary(2048, _samples())
    pair = compressor._dict_pair(7, first)
    assert compressor._dict_pair(7, first) is pair
    compressor.compress_with(7, first, PAYLOAD)
    compressor.decompress_with(7, first, compressor.compress_with(7, first, PAYLOAD), len(PAYLOAD))
    assert compressor._dict_pair(7, first) is pair
    retrained = zstandard.ZstdCompressionDict(first.as_bytes())  # same id, another dictionary
    assert compressor._dict_pair(7, retrained) is not pair
    assert compressor._dict_pair(7, retrained)[2] is retrained
    (other_thread,) = run_threads(lambda _: compressor._dict_pair(7, retrained), 1)
    assert other_thread is not compressor._dict_pair(7, retrained)


def _digests_during(fn):
    """The dictionaries ``precompute_compress`` was called on while ``fn`` ran, in any thread it
    starts (a profile hook sees C calls; zstandard's types cannot be patched or safely subclassed)."""
    seen = []

    def profile(frame, event, arg):
        if event == "c_call" and getattr(arg, "__name__", "") == "precompute_compress":
            seen.append(arg.__self__)

    sys.setprofile(profile)
    threading.setprofile(profile)
    try:
        fn()
    finally:
        sys.setprofile(None)
        threading.setprofile(None)
    return seen


def test_a_dictionary_is_digested_once_whatever_the_threads_and_ids():
    """Without the digest zstd re-reads the whole dictionary on every compress (docs/performance.md).
    The digest is made once per dictionary, on a private copy: digesting the shared object again
    would free the digest another thread may be compressing with."""
    compressor = ZstdCompressor(level=5)
    zdict = zstandard.train_dictionary(2048, _samples())
    other = zstandard.train_dictionary(2048, _samples()[::-1])

    def use(i):
        compressor.compress_with(7, zdict, PAYLOAD)
        compressor.compress_with(8, zdict, PAYLOAD)  # the same dictionary under another id
        return compressor.compress_with(9, other, PAYLOAD)

    digested = _digests_during(lambda: run_threads(use, 4))
    assert len(digested) == 2  # one per dictionary (level 5 is also the small-payload level)
    assert not any(d is zdict or d is other for d in digested)  # copies, never the shared objects
    assert {d.as_bytes() for d in digested} == {zdict.as_bytes(), other.as_bytes()}
    assert set(compressor._precomputed) == {id(zdict), id(other)}


def test_without_a_level_a_dictionary_gets_one_copy_per_level_digested_once():
    compressor = ZstdCompressor()
    zdict = zstandard.train_dictionary(2048, _samples())
    digested = _digests_during(
        lambda: run_threads(lambda i: compressor.compress_with(7, zdict, PAYLOAD * (1 + i % 2)), 4)
    )
    assert len(digested) == 2 and digested[0] is not digested[1]  # level 3, and level 5 up to 2 KB
    assert not any(d is zdict for d in digested)


def test_clearing_the_digests_never_digests_a_dictionary_in_use_again():
    compressor = ZstdCompressor()
    zdict = zstandard.train_dictionary(2048, _samples())
    frame = compressor.compress_with(7, zdict, PAYLOAD)
    for n in range(70):  # retrained dictionaries come and go: the set is cleared at 64
        compressor.compress_with(100 + n, zstandard.ZstdCompressionDict(zdict.as_bytes()), b"x" * 100)
    digested = _digests_during(lambda: compressor.compress_with(7, zdict, PAYLOAD))
    assert not any(d is zdict for d in digested)
    assert compressor.compress_with(7, zdict, PAYLOAD) == frame


@pytest.mark.parametrize(("level", "small", "large"), [(None, 5, 3), (1, 1, 1), (19, 19, 19)])
def test_the_level_reaches_plain_and_dictionary_frames(level, small, large):
    """Without a configured level: plain frames at 3, dictionary frames up to 2 KB at 5 (issue 14)."""
    zdict = zstandard.train_dictionary(2048, _samples())
    compressor = ZstdCompressor(level=level)
    big = PAYLOAD * 2
    assert len(PAYLOAD) <= SMALL_DICTIONARY_PAYLOAD < len(big)
    assert compressor.compress(PAYLOAD) == zstandard.ZstdCompressor(level=large).compress(PAYLOAD)
    for data, expected_level in ((PAYLOAD, small), (big, large)):
        reference = zstandard.ZstdCompressionDict(zdict.as_bytes())
        reference.precompute_compress(level=expected_level)
        expected = zstandard.ZstdCompressor(level=expected_level, dict_data=reference, write_dict_id=False)
        assert compressor.compress_with(7, zdict, data) == expected.compress(data)


def test_the_digests_are_bounded_at_64_dictionaries():
    compressor = ZstdCompressor(level=5)
    raw = zstandard.train_dictionary(2048, _samples()).as_bytes()
    kept = [zstandard.ZstdCompressionDict(raw) for _ in range(65)]  # alive: their ids stay distinct
    for n, zdict in enumerate(kept[:64]):
        compressor.compress_with(n, zdict, b"x" * 100)
    assert len(compressor._precomputed) == 64
    compressor.compress_with(64, kept[64], b"x" * 100)
    assert len(compressor._precomputed) == 1  # cleared, then the new one


def test_a_payload_of_exactly_2_kb_is_a_small_one():
    zdict = zstandard.train_dictionary(2048, _samples())
    data = (PAYLOAD * 2)[:SMALL_DICTIONARY_PAYLOAD]
    assert len(data) == SMALL_DICTIONARY_PAYLOAD
    reference = zstandard.ZstdCompressionDict(zdict.as_bytes())
    reference.precompute_compress(level=5)
    expected = zstandard.ZstdCompressor(level=5, dict_data=reference, write_dict_id=False).compress(data)
    assert ZstdCompressor().compress_with(7, zdict, data) == expected
