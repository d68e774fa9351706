"""Savings exactly, through a real process, a real Celery worker and the database: known compute
times, token counts and prices give exactly the expected savings in the database stats."""

import pytest

from aicache.monitoring import stats
from tests.helpers import wait_for
from tests.integration.processes import Worker

pytestmark = [pytest.mark.integration, pytest.mark.history, pytest.mark.django_db(transaction=True)]

SPECS = [
    {
        "text": "First question, asked often. " * 3,
        "operation": "qa",
        "model": "gpt-4o",
        "seconds": 0.05,
        "prompt": 120,
        "completion": 30,
        "hits": 7,
    },
    {
        "text": "A long document to summarize. " * 40,
        "operation": "summarize",
        "model": "gpt-4o",
        "seconds": 0.08,
        "prompt": 900,
        "completion": 150,
        "hits": 4,
    },
    {
        "text": "Local model, no price. " * 3,
        "operation": "qa",
        "model": "local-llama",
        "seconds": 0.02,
        "prompt": 50,
        "completion": 10,
        "hits": 5,
    },
]
PRICES = {"gpt-4o": {"prompt_per_1k": 2.5, "completion_per_1k": 10.0, "currency": "USD"}}


def test_savings_are_exact_in_the_database(celery_worker, broker, redis_server, settings):
    settings.AICACHE = {**settings.AICACHE, "MODEL_PRICES": PRICES}
    redis_server.client().flushdb()
    env = {"AICACHE_TEST_HISTORY": "1", "AICACHE_TEST_BROKER_URL": f"{broker.url}/0"}
    w = Worker(f"{redis_server.url}/0", **env)
    try:
        measured = w.call("savings", specs=SPECS)["compute_seconds"]
        assert w.call("flush")["waiting"] == 0
    finally:
        w.close()
    window = stats.window(last="1h")
    total_hits = sum(s["hits"] for s in SPECS)
    wait_for(lambda: stats.savings(window)["hits"] >= total_hits, timeout=30, what="the savings ingested")
    saved = stats.savings(window)
    assert saved["hits"] == total_hits
    expected_seconds = sum(s["hits"] * m for s, m in zip(SPECS, measured, strict=True))
    # compute() is timed by the cache around the call, by the worker inside it: a few µs apart.
    assert saved["compute_seconds"] == pytest.approx(expected_seconds, abs=total_hits * 0.002)
    assert 0 < saved["hit_seconds"] < saved["compute_seconds"]
    assert saved["net_seconds"] == pytest.approx(saved["compute_seconds"] - saved["hit_seconds"])
    prompt = sum(s["hits"] * s["prompt"] for s in SPECS)
    completion = sum(s["hits"] * s["completion"] for s in SPECS)
    assert saved["tokens"] == {"prompt": prompt, "completion": completion, "total": prompt + completion}
    priced = [s for s in SPECS if s["model"] in PRICES]
    money = sum(s["hits"] * (s["prompt"] * 2.5 + s["completion"] * 10.0) / 1000 for s in priced)
    assert saved["cost"] == {"USD": pytest.approx(money, rel=1e-12)}
    priced_tokens = sum(s["hits"] * (s["prompt"] + s["completion"]) for s in priced)
    assert saved["pricing_coverage_ratio"] == pytest.approx(priced_tokens / (prompt + completion))
    assert saved["by_model"]["local-llama"]["cost"] == {}
    assert saved["by_model"]["local-llama"]["tokens"]["total"] == 5 * 60
    assert saved["by_operation"]["summarize"]["hits"] == 4
