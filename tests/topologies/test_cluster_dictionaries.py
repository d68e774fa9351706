"""Trained dictionaries on Redis Cluster: the sample is read from every bucket of the operation's
index (each bucket's ZRANGE on its own node), the dictionary is published, writers use it, and
another process reads the dictionary frames from every primary."""

import json
from io import StringIO

import pytest
from django.core.cache import caches
from django.core.management import call_command

from aicache import dictionaries, namespace
from aicache.bench.payloads import llm_response
from aicache.codec import HEADER_SIZE, ZSTD_DICT_FLAG
from aicache.state import reset_process_state
from tests.integration.processes import Worker
from tests.topologies.conftest import cluster_cache_settings

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

OPTIONS = {"CLIENT_CLASS": "aicache.cluster.ClusterClient"}
MONTH = 30 * 24 * 3600


@pytest.fixture
def cluster_cache(settings, cluster_setup):
    settings.CACHES = {
        **settings.CACHES,
        "ai": cluster_cache_settings(cluster_setup, MEMORY_TIERS=[], DICTIONARY_MIN_SAMPLES=50),
    }
    cache = caches["ai"]
    cache.redis.flushdb()
    yield cache
    cache.redis.flushdb()


def text(i: int) -> str:
    return f"Cluster document {i}: a request long enough to be a real prompt for a summary."


def test_trains_from_every_bucket_publishes_and_frames_read_in_another_process(
    cluster_cache, cluster_setup, settings
):
    cache = cluster_cache
    for i in range(120):
        cache.cache_response(text(i), "summarize", None, llm_response(800, seed=i))
    buckets = {cache.ns.bucket(cache.key_generator.generate(text(i), "summarize")) for i in range(120)}
    assert buckets == set(cache.ns.buckets)  # the sample really is spread over all 16 buckets
    assert len(dictionaries.sample_payloads(cache, "summarize", 2000)) == 120
    assert len(dictionaries.sample_payloads(cache, "summarize", 30)) == 30  # newest 30 over all

    out = StringIO()
    call_command("aicache_train_dictionaries", "--cache", "ai", stdout=out)
    assert "ai summarize: trained (120 samples" in out.getvalue()
    dict_id = int(cache.redis.get(namespace.dictionary_pointer("ai_cache", "summarize")))

    new = [10_000 + i for i in range(40)]
    for i in new:
        cache.cache_response(text(i), "summarize", None, llm_response(800, seed=i))
    frames = [cache.redis.get(cache.key_generator.generate(text(i), "summarize")) for i in new]
    assert {f[1] for f in frames} == {ZSTD_DICT_FLAG}
    assert {int.from_bytes(f[HEADER_SIZE : HEADER_SIZE + 4], "big") for f in frames} == {dict_id}
    written = {cache.ns.bucket(cache.key_generator.generate(text(i), "summarize")) for i in new}
    assert len(written) > 8  # dictionary frames on many slots, so on every primary

    reset_process_state()  # this process loads the dictionary from the cluster again
    fresh = caches["ai"]
    assert [fresh.get_cached_response(text(i), "summarize")["summary"] for i in new[:5]] == [
        llm_response(800, seed=i)["summary"] for i in new[:5]
    ]
    assert fresh.error_counts()["unknown_dictionary"] == fresh.error_counts()["corrupt_entry"] == 0

    worker = Worker(cluster_setup.location, AICACHE_TEST_OPTIONS=json.dumps({**OPTIONS, "MEMORY_TIERS": []}))
    try:
        for i in new:
            seen = worker.call("get", text=text(i), operation="summarize")
            assert seen["hit"] and seen["response"]["summary"] == llm_response(800, seed=i)["summary"]
    finally:
        worker.close()

    # Retraining retires the dictionary after the latest expiry in any bucket of the index: a frame
    # written by a process configured with a month-long TTL.
    settings.CACHES = {
        **settings.CACHES,
        "long": cluster_cache_settings(cluster_setup, MEMORY_TIERS=[], OPERATION_TTLS={"summarize": MONTH}),
    }
    caches["long"].cache_response(text(20_000), "summarize", None, llm_response(800, seed=20_000))
    call_command("aicache_train_dictionaries", "--cache", "ai", stdout=out)
    assert int(cache.redis.get(namespace.dictionary_pointer("ai_cache", "summarize"))) != dict_id
    assert cache.redis.ttl(namespace.dictionary_key("ai_cache", dict_id)) >= MONTH
