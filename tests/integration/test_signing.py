"""Signed entries (SIGNING_KEY) on a real Redis shared with another writer."""

import pytest
from django.core.cache import caches

from aicache.codec import SIGNATURE_SIZE, Codec, ForgedEntry

pytestmark = pytest.mark.integration

TEXT = "A Redis shared with other tenants must not let them plant answers. " * 2
KEY_A = "first-signing-secret-0123456789"
KEY_B = "second-signing-secret-987654321"


@pytest.fixture
def signed(settings, redis_server):
    def build(signing_key, alias="signed"):
        settings.CACHES = {
            **settings.CACHES,
            alias: {
                "BACKEND": "aicache.backend.AIResponseCache",
                "LOCATION": f"{redis_server.url}/0",
                "OPTIONS": {"SIGNING_KEY": signing_key, "MEMORY_TIERS": []},
            },
        }
        cache = caches[alias]
        return cache

    redis_server.client().flushdb()
    return build


def test_signed_round_trip_and_a_forgery_is_a_counted_miss(signed):
    cache = signed(KEY_A)
    cache.cache_response(TEXT, "qa", None, {"answer": "genuine"})
    assert cache.get_cached_response(TEXT, "qa")["answer"] == "genuine"
    key = cache.key_generator.generate(TEXT, "qa")
    raw = cache.redis.get(key)
    assert raw[0] == 0xB1  # a signed frame
    # Another tenant plants an answer: unsigned, signed with its own key, or a bit flipped.
    for planted in (
        Codec().encode(b'{"answer":"planted"}', 600).data,
        Codec(signing_keys=(b"someone-else's key",)).encode(b'{"answer":"planted"}', 600).data,
        raw[:-1] + bytes([raw[-1] ^ 1]),
        raw[:20] + b"X" + raw[21:],
        raw[: -SIGNATURE_SIZE - 1],
    ):
        cache.redis.set(key, planted, ex=600)
        assert cache.get_cached_response(TEXT, "qa") is None
    assert cache.error_counts()["forged_entry"] == 5


def test_key_rotation_reads_old_entries_and_signs_with_the_new_key(signed):
    old = signed(KEY_A, alias="old")
    old.cache_response(TEXT, "qa", None, {"answer": "signed with A"})
    rotated = signed([KEY_B, KEY_A], alias="rotated")
    assert rotated.get_cached_response(TEXT, "qa")["answer"] == "signed with A"
    rotated.cache_response(f"{TEXT} new", "qa", None, {"answer": "signed with B"})
    only_b = signed(KEY_B, alias="only_b")
    assert only_b.get_cached_response(f"{TEXT} new", "qa")["answer"] == "signed with B"
    assert only_b.get_cached_response(TEXT, "qa") is None  # A retired: its entries are refused


def test_auto_key_derives_from_secret_key(signed, settings):
    cache = signed("auto")
    cache.cache_response(TEXT, "qa", None, {"answer": 1})
    assert cache.get_cached_response(TEXT, "qa")["answer"] == 1
    frame = cache.redis.get(cache.key_generator.generate(TEXT, "qa"))
    with pytest.raises(ForgedEntry):
        Codec(signing_keys=(b"not the derived key",)).decode(frame)


@pytest.mark.parametrize("value", ["short", [], [KEY_A, 3], 42])
def test_bad_signing_keys_are_a_check_error(settings, value):
    from aicache.checks import check_aicache_settings

    settings.AICACHE = {"SIGNING_KEY": value}
    assert [m.id for m in check_aicache_settings()] == ["aicache.E015"]
