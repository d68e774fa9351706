"""aicache.monitoring.actions: validation, counting, performing, and the recorded context."""

import pytest

from aicache.monitoring import actions
from aicache.monitoring.actions import Invalidation

SMALL = "A short text about caching. " * 3


def _fill(cache):
    for i in range(3):
        cache.cache_response(f"{SMALL} {i}", "summarize", None, {"summary": str(i)})
    for i in range(2):
        cache.cache_response(f"{SMALL} {i}", "sentiment", None, {"label": "pos"})


@pytest.mark.parametrize(
    "kwargs",
    [
        {"kind": "nope"},
        {"kind": "operation", "value": ""},
        {"kind": "operation", "value": "Summarize"},
        {"kind": "operation", "value": "a" * 65},
        {"kind": "operation", "value": "summ*"},
        {"kind": "pattern", "value": ""},
        {"kind": "pattern", "value": "ai_cache:*"},
        {"kind": "pattern", "value": "x" * 257},
        {"kind": "pattern", "value": "sum marize"},
        {"kind": "all", "value": "x"},
        {"kind": "memory", "value": "summarize"},
        {"kind": "all", "everywhere": True},
        {"kind": "memory", "everywhere": "yes"},
        {"kind": "all", "reason": "r" * 121},
        {"kind": "all", "reason": "line\nbreak"},
        {"kind": "operation", "value": 5},
    ],
)
def test_bad_invalidations_raise_value_error(kwargs):
    with pytest.raises(ValueError):
        Invalidation(**kwargs)


def test_valid_invalidations():
    assert Invalidation("pattern", "summ*:").value == "summ*:"
    assert Invalidation("pattern", "qa_v[^12]").describe() == "pattern 'qa_v[^12]'"
    assert Invalidation("memory", everywhere=True).describe() == "the memory tier of every process"
    assert Invalidation("all", reason="r" * 120).reason == "r" * 120


def test_count_changes_nothing_and_perform_removes_what_count_said(ai_cache):
    _fill(ai_cache)
    cases = [
        (Invalidation("operation", "sentiment"), 2),
        (Invalidation("pattern", "summ*"), 3),
    ]
    for inv, expected in cases:
        assert actions.count(ai_cache, inv) == expected
        assert actions.count(ai_cache, inv) == expected  # counting removed nothing
        assert actions.perform(ai_cache, inv, actor="alice", via="api") == expected
        assert actions.count(ai_cache, inv) == 0
    _fill(ai_cache)
    inv = Invalidation("all")
    assert actions.count(ai_cache, inv) == 5
    assert actions.perform(ai_cache, inv, actor="bob", via="command") == 5
    assert actions.count(ai_cache, inv) == 0


def test_memory_counts_this_process_tier(ai_cache):
    _fill(ai_cache)
    inv = Invalidation("memory")
    in_tier = len(ai_cache.memory)
    assert in_tier == 5  # small texts live in the memory tier too
    assert actions.count(ai_cache, inv) == in_tier
    assert actions.perform(ai_cache, inv, actor="carol", via="admin") == in_tier
    assert len(ai_cache.memory) == 0
    assert ai_cache.count_all() == 5  # Redis untouched


def test_context_names_actor_surface_and_reason(ai_cache):
    _fill(ai_cache)
    actions.perform(
        ai_cache, Invalidation("operation", "summarize", reason="model upgrade"), actor="alice", via="api"
    )
    (event,) = ai_cache.monitor.export_metrics()["invalidations"]
    assert event["operation_context"] == "via=api user=alice reason=model upgrade"
    assert (event["pattern"], event["keys_invalidated"], event["invalidation_type"]) == (
        "summarize",
        3,
        "operation",
    )
    assert len(actions.context(Invalidation("all", reason="r" * 120), actor="u" * 400, via="admin")) <= 300


@pytest.mark.parametrize("actor,via", [("", "api"), ("alice", "web"), (None, "api")])
def test_perform_rejects_bad_actor_or_surface_and_changes_nothing(ai_cache, actor, via):
    _fill(ai_cache)
    with pytest.raises(ValueError):
        actions.perform(ai_cache, Invalidation("all"), actor=actor, via=via)
    assert ai_cache.count_all() == 5
