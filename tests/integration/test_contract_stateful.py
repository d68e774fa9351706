"""The coherence contract as a state machine: writes, reads, deletes made directly in Redis and
every kind of invalidation, from two processes, checked after every step.

Contract (README "Many processes, one truth"): in the process that wrote or invalidated, a read
that starts after the call returned never sees an older value; in the other process the old value
is gone once the invalidation message is delivered (checked within BOUND) and never comes back.
"""

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, rule, run_state_machine_as_test

from tests.helpers import wait_for
from tests.integration.processes import Worker

pytestmark = pytest.mark.integration

TEXTS = [f"{word} is a short text that lives in the memory tier." for word in ("Alpha", "Beta", "Gamma")]
OPERATIONS = ["summarize", "qa"]
PATTERNS = ["summ*", "q?", "*", "qa", "s[u]mmarize"]
BOUND = 2.0  # generous: correctness, not speed (the propagation test checks the 50 ms figure)
SIDES = st.sampled_from(["here", "there"])


class TwoProcesses(RuleBasedStateMachine):
    cache = None
    worker = None

    def __init__(self) -> None:
        super().__init__()
        self.truth: dict[tuple[str, str], int | None] = {}
        self.counter = 0

    @initialize()
    def start_empty(self) -> None:
        self.cache.redis.flushdb()
        self.cache.invalidate_memory_cache()
        self.worker.call("invalidate", method="invalidate_memory_cache")
        self.truth = {(t, op): None for t in TEXTS for op in OPERATIONS}

    # ------------------------------------------------------------------ helpers
    def _get(self, side: str, text: str, operation: str):
        if side == "here":
            hit = self.cache.get_cached_response(text, operation)
        else:
            hit = self.worker.call("get", text=text, operation=operation)["response"]
        return None if hit is None else hit["v"]

    def _check(self, origin: str) -> None:
        for side in ("here", "there"):
            for (text, operation), expected in self.truth.items():
                if side == origin:
                    assert self._get(side, text, operation) == expected, (side, text, operation)
                else:
                    wait_for(
                        lambda s=side, t=text, o=operation, e=expected: self._get(s, t, o) == e,
                        timeout=BOUND,
                        what=f"{side} to see {expected} for {operation}",
                    )

    def _invalidate(self, side: str, method: str, *args) -> None:
        if side == "here":
            getattr(self.cache, method)(*args)
        else:
            self.worker.call("invalidate", method=method, args=list(args))

    # ------------------------------------------------------------------ rules
    @rule(side=SIDES, text=st.sampled_from(TEXTS), operation=st.sampled_from(OPERATIONS))
    def write(self, side, text, operation):
        self.counter += 1
        if side == "here":
            self.cache.cache_response(text, operation, None, {"v": self.counter})
        else:
            self.worker.call("cache", text=text, operation=operation, response={"v": self.counter})
        self.truth[(text, operation)] = self.counter
        self._check(side)

    @rule(side=SIDES, text=st.sampled_from(TEXTS), operation=st.sampled_from(OPERATIONS))
    def read(self, side, text, operation):
        assert self._get(side, text, operation) == self.truth[(text, operation)]

    @rule(text=st.sampled_from(TEXTS), operation=st.sampled_from(OPERATIONS))
    def delete_directly_in_redis(self, text, operation):
        self.cache.redis.delete(self.cache.key_generator.generate(text, operation))
        self.truth[(text, operation)] = None
        self._check("nobody")

    @rule(side=SIDES, operation=st.sampled_from(OPERATIONS))
    def invalidate_operation(self, side, operation):
        self._invalidate(side, "invalidate_by_operation", operation)
        for key in self.truth:
            if key[1] == operation:
                self.truth[key] = None
        self._check(side)

    @rule(side=SIDES, pattern=st.sampled_from(PATTERNS))
    def invalidate_pattern(self, side, pattern):
        from fnmatch import fnmatchcase

        self._invalidate(side, "invalidate_pattern", pattern)
        for key in self.truth:
            if fnmatchcase(key[1], pattern):
                self.truth[key] = None
        self._check(side)

    @rule(side=SIDES)
    def invalidate_all(self, side):
        self._invalidate(side, "invalidate_all")
        self.truth = dict.fromkeys(self.truth)
        self._check(side)


def test_contract_holds_under_any_interleaving(real_cache, redis_server):
    worker = Worker(f"{redis_server.url}/0")
    try:
        assert worker.call("status")["status"] == "live"
        TwoProcesses.cache, TwoProcesses.worker = real_cache, worker
        run_state_machine_as_test(
            TwoProcesses,
            settings=settings(
                max_examples=12,
                stateful_step_count=10,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
    finally:
        worker.close()
