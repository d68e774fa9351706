"""Bad input is refused before anything is computed or written, naming the argument (issue 9.10,
9.11), on a real Redis."""

import math

import pytest

from aicache.conf import MAX_TTL

pytestmark = pytest.mark.integration

TEXT = "Bad input must cost nothing: no compute, no write, a clear error. " * 2


def _never():
    pytest.fail("compute ran for a request that should have been refused")


@pytest.mark.parametrize(
    ("kwargs", "error", "names"),
    [
        ({"ttl": 2**32}, ValueError, "ttl"),
        ({"ttl": MAX_TTL + 1}, ValueError, "ttl"),
        ({"ttl": 0}, ValueError, "ttl"),
        ({"ttl": 1.5}, ValueError, "ttl"),
        ({"ttl": True}, ValueError, "ttl"),
        ({"operation": "summarize\n"}, ValueError, "operation"),
        ({"operation": "Summarize"}, ValueError, "operation"),
        ({"operation": ""}, ValueError, "operation"),
        ({"options": {"temperature": math.nan}}, ValueError, "NaN"),
        ({"options": {"t": math.inf}}, ValueError, "NaN or infinite"),
        ({"options": {"nested": [1, {"x": -math.inf}]}}, ValueError, "infinite"),
        ({"options": {1: "x"}}, TypeError, "options"),
        ({"options": ["a"]}, TypeError, "options"),
        ({"question": 3}, TypeError, "question"),
        ({"text": ""}, ValueError, "text"),
        ({"text": b"bytes"}, TypeError, "text"),
    ],
)
def test_refused_before_any_compute_or_write(real_cache, kwargs, error, names):
    call = {"text": TEXT, "operation": "summarize", "compute": _never, **kwargs}
    with pytest.raises(error, match=names):
        real_cache.get_or_compute(**call)
    call.pop("compute")
    with pytest.raises(error, match=names):
        real_cache.cache_response(response={"a": 1}, **{"options": None, **call})
    assert not list(real_cache.redis.scan_iter("ai_cache:*:*"))


def test_nan_options_do_not_share_a_key_with_null(real_cache):
    real_cache.cache_response(TEXT, "summarize", {"temperature": None}, {"a": "null"})
    with pytest.raises(ValueError):
        real_cache.get_cached_response(TEXT, "summarize", {"temperature": math.nan})


def test_largest_ttl_accepted(real_cache):
    real_cache.cache_response(TEXT, "summarize", None, {"a": 1}, ttl=MAX_TTL)
    key = real_cache.key_generator.generate(TEXT, "summarize")
    assert real_cache.redis.ttl(key) > MAX_TTL - 5


@pytest.mark.parametrize("reserved", ["tier", "cached_at", "cache_hit", "cache_source"])
def test_reserved_metadata_key_refused_by_name(real_cache, reserved):
    computed = []
    with pytest.raises(ValueError, match=f"'{reserved}'"):
        real_cache.get_or_compute(TEXT, "qa", lambda: computed.append(1) or {"answer": 1, reserved: "mine"})
    with pytest.raises(ValueError, match=f"'{reserved}'"):
        real_cache.cache_response(TEXT, "qa", None, {"answer": 1, reserved: "mine"})
    assert computed == [1] and not list(real_cache.redis.scan_iter("ai_cache:*:*"))
