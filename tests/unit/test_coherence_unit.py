"""CoherentTier's rules, one by one, without Redis (the integration tests stage them for real)."""

import math
import time

import pytest

from aicache import coherence
from aicache.coherence import DISCONNECTED, LIVE, LOCAL, STARTING, CoherentTier
from aicache.decorators import ai_cached
from aicache.listener import Listener
from aicache.memory import MISSING, MemoryTier
from aicache.namespace import Namespace
from tests.helpers import FakeClock

KEY = "p:a:1"


def make(status=LIVE):
    memory = MemoryTier(10, 1000)
    tier = CoherentTier(memory, "p", "tracking")
    if status == LIVE:
        # the tier's own clock: under the ``frozen`` fixture that is the fake one (a real
        # monotonic clock of a machine up for under ~16 minutes is behind the fake 1,000 s)
        tier.set_proven(coherence.time.monotonic() + 60)
    return memory, tier


def later(seconds=60):
    return time.monotonic() + seconds


def test_fill_only_if_unchanged_since_the_read_began():
    memory, tier = make()
    token = tier.token(KEY)
    tier.invalidate([KEY])  # a foreign write's message arrives between GET and fill
    assert tier.fill(KEY, "v1", 1, token, later()) is False
    assert KEY not in memory
    assert tier.fill(KEY, "v2", 1, tier.token(KEY), later()) is True
    assert tier.get(KEY) == "v2"


def test_own_overwrite_defeats_an_older_read_in_the_same_process():
    """Issue 9.1: thread A reads v0, thread B writes v1, A then tries to fill v0."""
    _memory, tier = make()
    token_a = tier.token(KEY)  # A starts its GET and reads v0
    token_b = tier.begin_write(KEY)  # B writes v1
    tier.end_write(KEY, token_b, "v1", 1, True, later())
    assert tier.fill(KEY, "v0", 1, token_a, later()) is False  # A's fill is refused
    assert tier.get(KEY) is MISSING  # with tracking the writer's next read fills from Redis


def test_a_read_racing_the_set_cannot_fill_after_the_write_returns():
    _memory, tier = make()
    token_w = tier.begin_write(KEY)
    token_r = tier.token(KEY)  # R begins after begin_write but its GET reaches Redis before the SET
    tier.end_write(KEY, token_w, "v1", 1, True, later())
    assert tier.fill(KEY, "v0", 1, token_r, later()) is False


def test_a_write_redis_did_not_acknowledge_never_fills():
    """Issue 9.3: OOM, READONLY or a timeout on SET leaves nothing in the tier."""
    memory = MemoryTier(10, 1000)
    tier = CoherentTier(memory, "p", LOCAL)  # local mode keeps acknowledged writes
    memory.set(KEY, "old", 1, 60)
    token = tier.begin_write(KEY)
    assert tier.end_write(KEY, token, "new", 1, False, later()) is False
    assert tier.get(KEY) is MISSING
    token = tier.begin_write(KEY)
    assert tier.end_write(KEY, token, "new", 1, True, later()) is True
    assert tier.get(KEY) == "new"


def test_every_message_evicts_even_right_after_our_own_write():
    """In BCAST mode one message may stand for our write and a foreign one in the same turn: no
    message is ever taken for our echo."""
    _memory, tier = make()
    token = tier.begin_write(KEY)
    assert tier.end_write(KEY, token, "mine", 1, True, later()) is False  # tracking: not kept
    assert tier.fill(KEY, "mine", 1, tier.token(KEY), later())  # the next read fills
    tier.invalidate([KEY])  # the message for our write (and maybe a foreign one)
    assert tier.get(KEY) is MISSING


def test_clear_refuses_fills_and_writes_begun_before_it():
    memory = MemoryTier(10, 1000)
    tier = CoherentTier(memory, "p", LOCAL)
    token = tier.token(KEY)
    token_w = tier.begin_write(KEY)
    tier.clear()
    assert tier.fill(KEY, "v", 1, token, later()) is False
    assert tier.end_write(KEY, token_w, "v", 1, True, later()) is False


def test_usable_only_while_proven():
    memory, tier = make(status=STARTING)
    assert tier.status == STARTING and not tier.usable
    assert tier.fill(KEY, "v", 1, tier.token(KEY), later()) is False
    tier.set_proven(time.monotonic() + 60)
    assert tier.fill(KEY, "v", 1, tier.token(KEY), later()) and tier.get(KEY) == "v"
    tier.set_proven(time.monotonic() - 0.001)  # the proof lapsed: reads bypass at once
    assert tier.get(KEY) is MISSING
    tier.lapse(DISCONNECTED)
    assert len(memory) == 0 and tier.status == DISCONNECTED and not tier.usable
    local = CoherentTier(MemoryTier(1, 1), "p", LOCAL)
    assert local.usable_until == math.inf and local.status == LOCAL and local.signals is False
    assert CoherentTier(MemoryTier(1, 1), "p", "tracking").status == STARTING


@pytest.fixture
def frozen(monkeypatch):
    """One fake monotonic clock for the tier and its memory (tests move ``frozen.now``)."""
    from aicache import coherence, memory

    clock = FakeClock(1_000.0)
    monkeypatch.setattr(coherence, "time", clock)
    monkeypatch.setattr(memory, "time", clock)
    return clock


def test_memory_copy_never_outlives_the_given_expiry(frozen):
    _memory, tier = make()
    tier.fill(KEY, "v", 1, tier.token(KEY), frozen.now + 5)
    frozen.now += 4.999
    assert tier.get(KEY) == "v"
    frozen.now += 0.001
    assert tier.get(KEY) is MISSING


def test_a_local_write_keeps_exactly_the_given_expiry(frozen):
    tier = CoherentTier(MemoryTier(10, 1000), "p", LOCAL)
    token = tier.begin_write(KEY)
    assert tier.end_write(KEY, token, "v", 1, True, frozen.now + 5) is True
    frozen.now += 4.999
    assert tier.get(KEY) == "v"
    frozen.now += 0.001
    assert tier.get(KEY) is MISSING


def test_the_proof_ends_exactly_at_usable_until(frozen):
    _memory, tier = make(status=STARTING)
    tier.set_proven(frozen.now + 10)
    assert tier.fill(KEY, "v", 1, tier.token(KEY), frozen.now + 60) and tier.get(KEY) == "v"
    frozen.now += 10
    assert tier.get(KEY) is MISSING and not tier.usable
    assert tier.fill("p:a:2", "v", 1, tier.token("p:a:2"), frozen.now + 60) is False
    local = CoherentTier(MemoryTier(10, 1000), "p", LOCAL)
    local.usable_until = frozen.now  # ends now: a write stores nothing
    token = local.begin_write(KEY)
    assert local.end_write(KEY, token, "v", 1, True, frozen.now + 60) is False


def test_every_clear_refuses_what_began_before_it():
    _memory, tier = make()
    tier.clear()
    token = tier.token(KEY)  # a read that began between two clears
    tier.clear()
    assert tier.fill(KEY, "v", 1, token, later()) is False


def _filled(tier, *keys):
    for key in keys:
        assert tier.fill(
            key, {"v": key, "tags": ["t"] if key.endswith("1") else []}, 1, tier.token(key), later()
        )


@pytest.mark.parametrize(
    "delete",
    [
        lambda tier: tier.delete_where(lambda key: key == KEY),
        lambda tier: tier.delete_keys([KEY]),
        lambda tier: tier.delete_entries(lambda entry: "t" in entry["tags"]),
    ],
    ids=["where", "keys", "entries"],
)
def test_local_deletes_remove_exactly_their_keys_and_fence_reads_in_flight(delete):
    _memory, tier = make()
    _filled(tier, KEY, "p:a:2")
    in_flight = tier.token(KEY)  # a read of KEY that began before the delete
    assert delete(tier) == 1
    assert tier.get(KEY) is MISSING and tier.get("p:a:2") == {"v": "p:a:2", "tags": []}
    assert tier.fill(KEY, {"v": "stale"}, 1, in_flight, later()) is False


def test_messages_for_keys_nobody_waits_on_wake_only_the_waiters():
    _, tier = make()
    with tier.waiter(KEY) as woken:
        tier.invalidate(["p:a:other", KEY, "p:a:third"])
        assert woken.is_set()
        tier.wake(["p:a:nobody"])


def test_waiters_are_woken_by_key_or_clear():
    _, tier = make()
    with tier.waiter("p:a:1") as ev1, tier.waiter("p:a:2") as ev2:
        tier.invalidate(["p:a:1"])
        assert ev1.is_set() and not ev2.is_set()
        tier.invalidate(None)
        assert ev2.is_set()
    assert tier._waiters == {}


def test_listener_parses_messages_and_probes():
    memory, tier = make()
    listener = Listener(tier, Namespace("p"), 1.0, 3.0)
    memory.set("p:a:1", "v", 1, 60)
    memory.set("p:a:2", "v", 1, 60)
    sent = __import__("collections").deque([(1, time.monotonic()), (2, time.monotonic())])
    listener._handle([b"message", b"__redis__:invalidate", [b"p:a:1"]], sent)
    assert memory.keys() == ["p:a:2"]
    probe = listener.ns.probe(listener.process, 2).encode()
    other = Namespace("p").probe("someone-else", 7).encode()
    listener._handle([b"message", b"__redis__:invalidate", [probe, other]], sent)
    assert not sent and memory.keys() == ["p:a:2"]  # probes prove, they never evict
    with tier.waiter("p:a:9") as ev:
        listener._handle([b"message", b"p!events", b"wp:a:9"], sent)
        assert ev.is_set()
    listener._handle([b"message", b"p!events", b"clear"], sent)
    assert len(memory) == 0
    listener._handle([b"subscribe", b"x", 1], sent)  # ignored


def test_ai_cached_decorator(ai_cache):
    calls = []

    @ai_cached("summarize")
    def summarize(text, max_words=50, question=None):
        calls.append((text, max_words, question))
        return {"summary": text[:max_words]}

    assert summarize("some long text", max_words=4)["summary"] == "some"
    assert summarize("some long text", max_words=4)["cache_hit"] is True
    assert summarize("some long text", max_words=5)["summary"] == "some "
    assert summarize("some long text", max_words=4, question="q")["cache_hit"] is False
    assert calls == [("some long text", 4, None), ("some long text", 5, None), ("some long text", 4, "q")]
    assert summarize.__name__ == "summarize"
