"""Savings accounting: usage extraction, cost per hit, prices (fakeredis; the exact run through a
real worker is in tests/integration/test_savings_pipeline.py)."""

import pytest

from aicache.savings import Cost, Usage, default_usage, measure_cost, price
from tests.helpers import run_threads

SMALL = "A short text for the memory tier, asked again and again. " * 2


def openai_shape(prompt=120, completion=30, model="gpt-4o"):
    return {
        "answer": "x",
        "usage": {"prompt_tokens": prompt, "completion_tokens": completion},
        "model": model,
    }


def test_usage_from_both_common_shapes():
    assert default_usage(openai_shape()) == Usage(120, 30, "gpt-4o")
    anthropic = {"content": "x", "usage": {"input_tokens": 7, "output_tokens": 9}, "model": "claude"}
    assert default_usage(anthropic) == Usage(7, 9, "claude")
    assert default_usage({"usage": {"prompt_tokens": -1}}) is None
    assert default_usage({"usage": "lots"}) is None
    assert default_usage({"answer": 1}) is None


def custom_extractor(response):
    meta = response.get("meta", {})
    return Usage(meta.get("in", 0), meta.get("out", 0), meta.get("engine", ""))


def broken_extractor(response):
    raise KeyError("nope")


def test_custom_extractor_and_a_broken_one_never_breaks_the_call(caplog):
    cost = measure_cost({"meta": {"in": 3, "out": 4, "engine": "local"}}, 0.5, custom_extractor)
    assert cost == Cost(0.5, 3, 4, "local")
    assert measure_cost(openai_shape(), 0.5, broken_extractor) == Cost(0.5)
    assert measure_cost(openai_shape(), 0.5, lambda r: {"prompt": 1}) == Cost(0.5)
    assert "USAGE_EXTRACTOR" in caplog.text


def test_cost_round_trips_through_frame_metadata_and_refuses_damage():
    cost = Cost(1.25, 100, 20, "gpt-4o")
    assert Cost.from_meta(cost.to_meta()) == cost
    assert Cost.from_meta({"c": 0.1}) == Cost(0.1)
    for bad in ({"c": -1}, {"c": "1"}, {"c": 1, "u": [1]}, {"c": 1, "u": [1, -2]}, {"c": 1, "m": 3}, {}):
        assert Cost.from_meta(bad) is None


def test_price_per_model():
    prices = {"gpt-4o": {"prompt_per_1k": 2.5, "completion_per_1k": 10, "currency": "USD"}}
    assert price(prices, "gpt-4o", 1000, 500) == (7.5, "USD")
    assert price(prices, "unknown", 1000, 500) is None
    assert price(prices, "", 1000, 500) is None


def _savings(monitor):
    monitor._settle()
    return monitor.saved


def test_each_hit_reports_its_entry_cost(ai_cache):
    calls = []

    def compute():
        calls.append(1)
        return openai_shape()

    ai_cache.get_or_compute(SMALL, "qa", compute)  # the compute: nothing saved yet
    assert _savings(ai_cache.monitor) == {}
    ai_cache.get_or_compute(SMALL, "qa", compute)  # memory hit
    ai_cache.invalidate_memory_cache()
    ai_cache.get_cached_response(SMALL, "qa")  # Redis hit
    (((operation, model), totals),) = _savings(ai_cache.monitor).items()
    assert (operation, model) == ("qa", "gpt-4o")
    hits, compute_seconds, hit_seconds, prompt, completion = totals
    assert (hits, prompt, completion) == (2, 240, 60) and calls == [1]
    assert compute_seconds > 0 and hit_seconds > 0


def test_coalesced_callers_each_saved_the_compute(ai_cache):
    import threading

    release = threading.Event()

    def compute():
        release.wait(5)
        return openai_shape(model="m")

    def call(i):
        if i == 0:
            from tests.helpers import wait_for

            wait_for(lambda: ai_cache._state.counter_snapshot().get("single_flight_waits", 0) == 2)
            release.set()
            return None
        return ai_cache.get_or_compute(SMALL, "summarize", compute)

    run_threads(call, 4)
    ((_, totals),) = _savings(ai_cache.monitor).items()
    assert totals[0] == 2 and totals[3] == 240  # 3 callers, 1 computed, 2 coalesced


def test_stored_without_a_compute_saves_nothing(ai_cache):
    ai_cache.cache_response(SMALL, "qa", None, openai_shape())
    ai_cache.get_cached_response(SMALL, "qa")
    assert _savings(ai_cache.monitor) == {}


@pytest.mark.parametrize(
    ("prices", "fragment"),
    [
        ([], "must be a dict"),
        ({"m": {"prompt_per_1k": -1, "completion_per_1k": 1}}, "non-negative"),
        ({"m": {"prompt_per_1k": 1, "completion_per_1k": 1, "currency": "dollars"}}, "3-letter"),
        ({"m": {"prompt_per_1k": 1, "completion_per_1k": 1, "tax": 1}}, "keys are"),
    ],
)
def test_bad_model_prices_are_a_check_error(settings, prices, fragment):
    from aicache.checks import check_aicache_settings

    settings.AICACHE = {"MODEL_PRICES": prices}
    messages = check_aicache_settings()
    assert [m.id for m in messages] == ["aicache.E014"] and fragment in messages[0].msg


def test_bad_usage_extractor_is_a_check_error(settings):
    from aicache.checks import check_aicache_settings

    settings.AICACHE = {"USAGE_EXTRACTOR": "tests.unit.test_savings.nowhere"}
    assert [m.id for m in check_aicache_settings()] == ["aicache.E014"]


def test_usage_extractor_setting_takes_effect(make_cache):
    cache = make_cache(USAGE_EXTRACTOR="tests.unit.test_savings.custom_extractor")
    cache.get_or_compute(SMALL, "qa", lambda: {"meta": {"in": 5, "out": 6, "engine": "e"}})
    cache.get_or_compute(SMALL, "qa", lambda: pytest.fail("computed again"))
    ((key, totals),) = _savings(cache.monitor).items()
    assert key == ("qa", "e") and totals[3:] == [5, 6]


def test_usage_edge_shapes():
    assert default_usage({"usage": {"total_tokens": 40}}) == Usage(40, 0, "")
    assert default_usage({"usage": {"prompt_tokens": None, "input_tokens": 5, "output_tokens": 2}}) == Usage(
        5, 2, ""
    )
    assert measure_cost({}, 0.1, lambda r: Usage(1, 2, None)) == Cost(0.1, 1, 2, "")


def test_prometheus_saved_counters(settings):
    from prometheus_client import REGISTRY

    from aicache.monitoring import CachePerformanceMonitor, prometheus

    settings.AICACHE = {
        **settings.AICACHE,
        "MODEL_PRICES": {"priced-model": {"prompt_per_1k": 2.0, "completion_per_1k": 4.0, "currency": "EUR"}},
    }

    def sample(name, **labels):
        return REGISTRY.get_sample_value(name, labels) or 0.0

    labels = {"operation": "prom_qa", "model": "priced-model"}
    before = (
        sample("aicache_saved_seconds_total", **labels),
        sample("aicache_saved_tokens_total", **labels, kind="prompt"),
        sample("aicache_saved_tokens_total", **labels, kind="completion"),
        sample("aicache_saved_cost_total", **labels, currency="EUR"),
        sample("aicache_saved_cost_total", operation="prom_qa", model="free-model", currency="EUR"),
    )
    monitor = CachePerformanceMonitor()
    for _ in range(3):
        monitor.record_saving("prom_qa", "priced-model", 0.5, 100, 50, 0.001)
    monitor.record_saving("prom_qa", "free-model", 0.5, 100, 50, 0.001)
    prometheus.apply(monitor, monitor.drain())
    after = (
        sample("aicache_saved_seconds_total", **labels),
        sample("aicache_saved_tokens_total", **labels, kind="prompt"),
        sample("aicache_saved_tokens_total", **labels, kind="completion"),
        sample("aicache_saved_cost_total", **labels, currency="EUR"),
        sample("aicache_saved_cost_total", operation="prom_qa", model="free-model", currency="EUR"),
    )
    deltas = [a - b for a, b in zip(after, before, strict=True)]
    assert deltas[0] == pytest.approx(1.5) and deltas[1:3] == [300, 150]
    assert deltas[3] == pytest.approx(3 * (100 * 2.0 + 50 * 4.0) / 1000)
    assert deltas[4] == 0  # no price: no money, never a made-up zero series either
