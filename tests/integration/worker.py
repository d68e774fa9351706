"""A Django process driven by JSON lines on stdin, for multi-process integration tests.

Each request line is a JSON object with an ``op``; each answer is one JSON line on stdout.
"""

from __future__ import annotations

import json
import os
import sys
import threading
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings_real")

import django

django.setup()

from django.core.cache import caches  # noqa: E402

from tests.helpers import wait_for, write_and_settle  # noqa: E402

cache = caches["ai"]


def _args(msg: dict) -> dict:
    return {"text": msg["text"], "operation": msg["operation"], "question": msg.get("question")}


def op_status(msg: dict) -> dict:
    return {"status": cache.start_coherence(wait=msg.get("wait", 5))}


def op_cache(msg: dict) -> dict:
    """cache_response, then wait for the write's own invalidation message: every message evicts,
    so a read filled before it arrived would be dropped again."""
    key = cache.key_generator.generate(msg["text"], msg["operation"], None, msg.get("question"))
    write = lambda: cache.cache_response(**_args(msg), options=None, response=msg["response"])  # noqa: E731
    if cache._state.listener is None:
        write()
    else:
        write_and_settle(cache, key, write, timeout=5)
    return {}


def op_get(msg: dict) -> dict:
    hit = cache.get_cached_response(**_args(msg))
    return {"hit": hit is not None, "source": hit and hit["cache_source"], "response": hit}


def op_watch(msg: dict) -> dict:
    """Poll the memory tier until the entry is gone; report when (CLOCK_MONOTONIC is system-wide)."""
    key = cache.key_generator.generate(msg["text"], msg["operation"], None, msg.get("question"))
    deadline = time.monotonic() + msg.get("timeout", 5)
    _reply({"watching": key in cache.memory})
    while key in cache.memory:
        if time.monotonic() > deadline:
            return {"gone_at": None}
        time.sleep(0.0001)  # a spinning loop would hold the GIL the listener thread needs
    return {"gone_at": time.monotonic()}


def op_invalidate(msg: dict) -> dict:
    method = getattr(cache, msg["method"])
    started = time.monotonic()
    removed = method(*msg.get("args", []), **msg.get("kwargs", {}))
    return {"removed": removed, "started_at": started, "returned_at": time.monotonic()}


def op_stampede(msg: dict) -> dict:
    """``threads`` threads call get_or_compute; compute INCRs a Redis counter, then runs
    ``compute_seconds`` or, with ``gate``, until the test sets that Redis key (at most 30 s: then
    an AssertionError, never taken for the compute's own RuntimeError, "LLM failed")."""
    results: list[dict] = []
    errors: list[str] = []

    def compute() -> dict:
        cache.redis.incr(msg["counter"])
        if msg.get("crash"):
            os._exit(3)  # die while holding the lock, without releasing it
        if msg.get("gate"):
            wait_for(
                lambda: cache.redis.exists(msg["gate"]), timeout=30, what=f"the test to set {msg['gate']}"
            )
        else:
            time.sleep(msg.get("compute_seconds", 0.3))
        if msg.get("raise"):
            raise RuntimeError("LLM failed")
        return {"answer": f"computed by {os.getpid()}"}

    def run() -> None:
        try:
            out = cache.get_or_compute(
                **_args(msg),
                compute=compute,
                lock_timeout=msg.get("lock_timeout"),
                wait_timeout=msg.get("wait_timeout"),
            )
            results.append({"hit": out["cache_hit"], "answer": out["answer"]})
        except RuntimeError as exc:
            errors.append(str(exc))

    threads = [threading.Thread(target=run) for _ in range(msg["threads"])]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return {"results": results, "errors": errors, "counters": cache._state.counter_snapshot()}


_background: dict = {}


def op_stampede_start(msg: dict) -> dict:
    """``op_stampede`` in the background: answered at once, so the test can ask for ``counters``
    while the callers wait; ``stampede_result`` answers with its outcome."""
    thread = threading.Thread(target=lambda: _background.update(result=op_stampede(msg)))
    _background["thread"] = thread
    thread.start()
    return {"started": True}


def op_stampede_result(msg: dict) -> dict:
    _background.pop("thread").join()
    return _background.pop("result")


def op_counters(msg: dict) -> dict:
    """This process's single-flight and fault counters now."""
    return cache._state.counter_snapshot()


def op_savings(msg: dict) -> dict:
    """For each spec: one compute (timed inside compute) then ``hits`` hits on it."""
    measured = []
    for spec in msg["specs"]:
        inside: list[float] = []

        def compute(spec: dict = spec, inside: list[float] = inside) -> dict:
            started = time.perf_counter()
            time.sleep(spec["seconds"])
            usage = {"prompt_tokens": spec["prompt"], "completion_tokens": spec["completion"]}
            inside.append(time.perf_counter() - started)
            return {"answer": spec["text"][:10], "usage": usage, "model": spec["model"]}

        args = {"text": spec["text"], "operation": spec["operation"]}
        cache.get_or_compute(**args, compute=compute)
        for i in range(spec["hits"]):
            if i % 2:
                cache.get_or_compute(**args, compute=compute)
            else:
                cache.get_cached_response(**args)
        measured.append(inside[0])
    return {"compute_seconds": measured}


def op_script(msg: dict) -> dict:
    """A scripted mix of writes and reads (deterministic given the seed)."""
    import random

    rng = random.Random(msg["seed"])
    for i in range(msg["n"]):
        text = f"scripted text {rng.randint(0, msg['distinct'])} " * (3 if i % 4 else 60)
        operation = rng.choice(["summarize", "qa"])
        if cache.get_cached_response(text, operation) is None:
            cache.cache_response(text, operation, None, {"answer": "x" * rng.randint(10, 3000)})
    return {}


def op_flush(msg: dict) -> dict:
    """Ship everything recorded so far (what the exporter and the flusher do on their own)."""
    from aicache.monitoring.exporter import get_exporter
    from aicache.monitoring.flusher import get_flusher

    get_exporter().flush_now()
    flusher = get_flusher()
    if flusher is not None:
        flusher.flush()
    return {"waiting": flusher.waiting if flusher else None, "sent": flusher.sent if flusher else 0}


def op_figures(msg: dict) -> dict:
    """The exact in-process figures, for comparison with the database."""
    stats = cache.monitor.get_performance_stats()
    raw = cache.monitor.export_metrics()
    return {
        "hits": stats["cache_hits"],
        "misses": stats["cache_misses"],
        "operations": stats["total_cache_operations"],
        "bytes_processed": stats.get("compression", {}).get("total_bytes_processed", 0),
        "bytes_saved": stats.get("compression", {}).get("total_bytes_saved", 0),
        "get_durations": [r["duration"] for r in raw["cache_operations"] if r["operation"] == "get"],
    }


def op_history(msg: dict) -> dict:
    """The history sender's state, without waiting on the broker."""
    from aicache.monitoring.flusher import get_flusher

    flusher = get_flusher()
    if flusher is None:
        return {"installed": False}
    return {
        "installed": True,
        "in_flight": flusher.in_flight,
        "sent": flusher.sent,
        "failures": flusher.failures,
    }


def _reply(data: dict) -> None:
    sys.stdout.write(json.dumps(data) + "\n")
    sys.stdout.flush()


def main() -> None:
    _reply({"ready": os.getpid()})
    for line in sys.stdin:
        msg = json.loads(line)
        _reply(globals()[f"op_{msg['op']}"](msg))


if __name__ == "__main__":
    main()
