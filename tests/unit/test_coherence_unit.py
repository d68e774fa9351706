import threading

from aicache.coherence import LIVE, Coherence
from aicache.decorators import ai_cached
from aicache.memory import MemoryTier


def make(status=LIVE):
    memory = MemoryTier(10, 1000)
    coherence = Coherence(memory, "p", "tracking")
    coherence.status = status
    return memory, coherence


def test_foreign_invalidation_evicts_and_moves_the_fill_token():
    memory, coherence = make()
    memory.set("p:a:1", "v", 1, 60)
    token = coherence.fill_token("p:a:1")
    coherence.invalidate(["p:a:1"])
    assert "p:a:1" not in memory
    assert coherence.fill_token("p:a:1") != token


def test_own_write_echo_is_skipped_once():
    memory, coherence = make()
    assert coherence.expect_own_write("p:a:1")
    memory.set("p:a:1", "mine", 1, 60)
    coherence.invalidate(["p:a:1"])  # the echo of our own write
    assert memory.get("p:a:1") == "mine"
    coherence.invalidate(["p:a:1"])  # somebody else's write
    assert "p:a:1" not in memory


def test_own_write_notes_only_when_live_and_cleared_by_flush():
    memory, coherence = make(status="starting")
    assert coherence.expect_own_write("p:a:1") is False
    coherence.status = LIVE
    coherence.expect_own_write("p:a:1")
    coherence.invalidate(None)  # reconnect or flush: notes are dropped
    memory.set("p:a:1", "v", 1, 60)
    coherence.invalidate(["p:a:1"])
    assert "p:a:1" not in memory


def test_cancelled_write_is_not_expected():
    memory, coherence = make()
    coherence.expect_own_write("p:a:1")
    coherence.cancel_own_write("p:a:1")
    memory.set("p:a:1", "v", 1, 60)
    coherence.invalidate(["p:a:1"])
    assert "p:a:1" not in memory


def test_waiters_are_woken_by_key_or_flush():
    _, coherence = make()
    with coherence.waiter("p:a:1") as ev1, coherence.waiter("p:a:2") as ev2:
        coherence.invalidate(["p:a:1"])
        assert ev1.is_set() and not ev2.is_set()
        coherence.invalidate(None)
        assert ev2.is_set()
    assert coherence._waiters == {}


def test_handle_parses_messages():
    memory, coherence = make()
    memory.set("p:a:1", "v", 1, 60)
    memory.set("p:a:2", "v", 1, 60)
    coherence._handle([b"message", b"__redis__:invalidate", [b"p:a:1"]])
    assert memory.keys() == ["p:a:2"]
    with coherence.waiter("p:a:9") as ev:
        coherence._handle([b"message", b"p!events", b"wp:a:9"])
        assert ev.is_set()
    coherence._handle([b"message", b"p!events", b"clear"])
    assert len(memory) == 0
    coherence._handle([b"subscribe", b"x", 1])  # ignored


def test_memory_usable_by_status():
    _, coherence = make()
    for status, usable in [("starting", False), (LIVE, True), ("disconnected", True), ("unsupported", False)]:
        coherence.status = status
        assert coherence.memory_usable is usable
    assert Coherence(MemoryTier(1, 1), "p", "local").memory_usable


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


def test_single_flight_threads_on_fakeredis(ai_cache):
    import time

    calls = []

    def compute():
        calls.append(1)
        time.sleep(0.2)
        return {"answer": "one"}

    results = []
    threads = [
        threading.Thread(target=lambda: results.append(ai_cache.get_or_compute("t" * 20, "qa", compute)))
        for _ in range(8)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert calls == [1]
    assert sorted(r["cache_hit"] for r in results) == [False] + [True] * 7
    assert ai_cache._state.counter_snapshot()["single_flight_coalesced"] == 7
