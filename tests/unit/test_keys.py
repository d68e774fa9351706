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


def _framed(text: str, options_json: bytes = b"{}", question: str | None = None, algo=hashlib.sha256):
    """The documented framing, written out independently: 8-byte big-endian length + canonical
    options, then 8-byte length + question (or 8 x 0xff for none), then the text, all UTF-8 with
    lone surrogates passed through."""
    h = algo()
    h.update(len(options_json).to_bytes(8, "big") + options_json)
    if question:
        q = question.encode("utf-8", "surrogatepass")
        h.update(len(q).to_bytes(8, "big") + q)
    else:
        h.update(b"\xff" * 8)
    h.update(text.encode("utf-8", "surrogatepass"))
    return h.hexdigest()


@pytest.mark.parametrize(
    ("text", "options", "options_json", "question"),
    [
        ("hello", None, b"{}", None),
        ("h\udcffi", {"b": [1, 2.5], "a": None}, b'{"a":null,"b":[1,2.5]}', "why \ud800?"),
        ("x" * (64 * 1024) + "\udcff" + "y" * 10, None, b"{}", None),  # sliced, a surrogate in slice 2
        ("x" * (64 * 1024 * 2), {"k": 1}, b'{"k":1}', None),  # exactly two slices
        ("z" * (64 * 1024), None, b"{}", "q"),  # exactly one slice
    ],
)
def test_keys_follow_the_documented_framing(gen, text, options, options_json, question):
    """Keys are stable across releases (a change would orphan every stored entry on upgrade)."""
    assert (
        gen.generate(text, "qa", options, question) == f"ai_cache:qa:{_framed(text, options_json, question)}"
    )
    blake = CacheKeyGenerator("p", "blake2b")
    assert blake.generate(text, "qa", options, question) == (
        f"p:qa:{_framed(text, options_json, question, lambda: hashlib.blake2b(digest_size=32))}"
    )


def test_defaults_are_the_documented_ones():
    default = CacheKeyGenerator()
    assert (default.prefix, default.hash_algorithm) == ("ai_cache", "sha256")
    assert default.generate("t", "qa") == f"ai_cache:qa:{_framed('t')}"


def test_known_options_bytes_are_used_as_given(gen):
    given = canonical_options({"a": 1})
    assert gen.generate("t", "qa", None, options_bytes=given) == gen.generate("t", "qa", {"a": 1})


@pytest.mark.parametrize(
    ("operation", "error", "message"),
    [
        (7, TypeError, "operation must be a str, got int"),
        ("Bad Op", ValueError, "operation must be a 1-64 character [a-z0-9_-] token, got 'Bad Op'"),
    ],
)
def test_operation_errors_say_what_is_wrong(gen, operation, error, message):
    from aicache.keys import validate_operation

    with pytest.raises(error) as info:
        validate_operation(operation)
    assert str(info.value) == message


@pytest.mark.parametrize(
    "options",
    [
        {"t": float("nan")},
        {"nested": {"deep": [1, float("inf")]}},
        {"list": [0.5, [float("-inf")]]},
        {"tuple": (1, float("nan"))},
    ],
)
def test_non_finite_numbers_anywhere_in_options_are_refused(options):
    with pytest.raises(ValueError) as info:
        canonical_options(options)
    assert str(info.value) == "options must not contain NaN or infinite numbers (JSON has no such value)"


def test_a_real_null_is_not_mistaken_for_nan():
    assert canonical_options({"a": None, "b": [None, 1.5]}) == b'{"a":null,"b":[null,1.5]}'


@pytest.mark.parametrize(
    "value", [__import__("datetime").datetime(2026, 1, 1), __import__("decimal").Decimal(1)]
)
def test_non_json_option_values_are_refused(value):
    with pytest.raises(TypeError, match="options must be JSON-serialisable with str keys"):
        canonical_options({"v": value})


def test_a_dataclass_option_is_refused():
    import dataclasses

    @dataclasses.dataclass
    class Opt:
        x: int = 1

    with pytest.raises(TypeError, match="options must be JSON-serialisable"):
        canonical_options({"v": Opt()})
    with pytest.raises(TypeError) as info:
        canonical_options([("a", 1)])
    assert str(info.value) == "options must be a mapping or None, got list"
