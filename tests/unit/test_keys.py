import hashlib

import pytest

from aicache.keys import CacheKeyGenerator, canonical_options

TEXT = "The quick brown fox jumps over the lazy dog. " * 10


@pytest.fixture
def gen():
    return CacheKeyGenerator("ai_cache", "sha256")


def test_key_is_deterministic_and_shaped(gen):
    key = gen.generate(TEXT, "summarize", {"max_length": 100}, None)
    assert key == gen.generate(TEXT, "summarize", {"max_length": 100}, None)
    prefix, operation, digest = key.split(":")
    assert (prefix, operation) == ("ai_cache", "summarize")
    assert len(digest) == 64 and all(c in "0123456789abcdef" for c in digest)


def test_raw_text_never_in_key(gen):
    key = gen.generate("secret patient name Alice", "qa", None, "who is Alice?")
    assert "Alice" not in key and "secret" not in key


@pytest.mark.parametrize(
    "change",
    [
        {"text": TEXT + "!"},
        {"operation": "sentiment"},
        {"options": {"max_length": 101}},
        {"options": {"max_length": 100, "style": "bullets"}},
        {"question": "What jumps?"},
    ],
)
def test_each_input_changes_the_key(gen, change):
    base = {"text": TEXT, "operation": "summarize", "options": {"max_length": 100}, "question": None}
    assert gen.generate(**base) != gen.generate(**{**base, **change})


def test_option_order_and_empty_forms_do_not_matter(gen):
    a = gen.generate(TEXT, "qa", {"a": 1, "b": {"y": 2, "x": 1}}, "q")
    b = gen.generate(TEXT, "qa", {"b": {"x": 1, "y": 2}, "a": 1}, "q")
    assert a == b
    assert gen.generate(TEXT, "qa", None) == gen.generate(TEXT, "qa", {})
    assert gen.generate(TEXT, "qa", None, None) == gen.generate(TEXT, "qa", None, "")


def test_parts_cannot_be_shifted_into_each_other(gen):
    # The same characters split differently between question and text are different requests.
    assert gen.generate("b c", "qa", None, "a") != gen.generate("c", "qa", None, "a b")
    assert gen.generate("x", "qa", {"k": "v"}) != gen.generate('{"k":"v"}x', "qa", None)


def test_algorithms_differ_and_have_fixed_length():
    sha = CacheKeyGenerator("p", "sha256").generate(TEXT, "op")
    blake = CacheKeyGenerator("p", "blake2b").generate(TEXT, "op")
    assert sha != blake
    assert len(sha) == len(blake) == len("p:op:") + 64
    with pytest.raises(ValueError, match="hash_algorithm"):
        CacheKeyGenerator("p", "md5")


def test_long_text_hashed_in_slices_equals_one_shot(gen):
    text = ("Ünïcode ✓ prose " * 70_000)[:1_000_000]
    opts = canonical_options(None)
    h = hashlib.sha256()
    h.update(len(opts).to_bytes(8, "big") + opts + b"\xff" * 8 + text.encode("utf-8"))
    assert gen.generate(text, "summarize") == f"ai_cache:summarize:{h.hexdigest()}"


def test_lone_surrogates_hash_without_error(gen):
    assert gen.generate("bad \ud800 text", "summarize") != gen.generate("bad  text", "summarize")


@pytest.mark.parametrize("options", [[1, 2], "x", 3])
def test_options_must_be_a_mapping(options):
    with pytest.raises(TypeError, match="options must be a mapping"):
        canonical_options(options)


def test_options_must_be_json_serialisable():
    with pytest.raises(TypeError, match="options must be JSON-serialisable"):
        canonical_options({"when": object()})
    with pytest.raises(TypeError, match="options must be JSON-serialisable"):
        canonical_options({1: "non-str key"})
