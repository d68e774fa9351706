"""Load for `make prod-like`: ``POST /api/aicache/process/`` with a Zipf repeat pattern over a few
thousand texts and the five operations, plus staff reads of ``stats/``.

Run by tests/load/test_load.py (and `make soak`); by hand:

    LOAD_TOKENS='{"user": "...", "staff": "..."}' LOAD_REPORT=load.json \\
        locust -f tests/load/locustfile.py --headless -u 8 -r 8 -t 1m --host http://127.0.0.1:8002

Besides locust's own statistics, it counts what the cache said about each answer (hit or miss,
and where it came from) and writes those counts to LOAD_REPORT when the run ends: the monitoring
history must show exactly these figures.
"""

from __future__ import annotations

import bisect
import itertools
import json
import os
import random
from collections import Counter

from locust import FastHttpUser, between, events, task

OPERATIONS = ("summarize", "sentiment", "key_points", "questions", "qa")
TEXTS = int(os.environ.get("LOAD_TEXTS", "3000"))
ZIPF_S = float(os.environ.get("LOAD_ZIPF_S", "1.1"))
TOKENS = json.loads(os.environ.get("LOAD_TOKENS", "{}"))
WORDS = (
    "cache model answer latency token prompt redis memory tier index batch worker queue "
    "history summary sentiment question review customer invoice shipment contract policy"
).split()

# Zipf: the k-th most frequent request is drawn with probability proportional to 1 / k**s.
_cumulative = list(itertools.accumulate(1 / k**ZIPF_S for k in range(1, TEXTS * len(OPERATIONS) + 1)))
counts: Counter = Counter()


def text_for(rank: int) -> str:
    words = random.Random(rank).choices(WORDS, k=40 + rank % 160)  # 40-200 words, stable per rank
    return f"Document {rank}. " + " ".join(words) + "."


def request_for(rank: int) -> dict:
    text_rank, operation = divmod(rank, len(OPERATIONS))
    body = {"text": text_for(text_rank), "operation": OPERATIONS[operation]}
    if OPERATIONS[operation] == "qa":
        body["question"] = "What is this about?"
    return body


class ProcessUser(FastHttpUser):
    wait_time = between(0, 0.01)

    @task(30)
    def process(self) -> None:
        rank = bisect.bisect_left(_cumulative, random.random() * _cumulative[-1])
        with self.client.post(
            "/api/aicache/process/",
            json=request_for(rank),
            headers={"Authorization": f"Token {TOKENS['user']}"},
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}: {response.text[:200]}")
                return
            cache = response.json()["cache"]
            counts["hits" if cache["hit"] else "misses"] += 1
            counts[f"source_{cache['source']}"] += 1
            counts["processed"] += 1

    @task(1)
    def stats(self) -> None:
        with self.client.get(
            "/api/aicache/stats/?last=1h",
            headers={"Authorization": f"Token {TOKENS['staff']}"},
            catch_response=True,
        ) as response:
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
            else:
                counts["stats_reads"] += 1


@events.quitting.add_listener
def _write_report(environment, **_kwargs) -> None:
    path = os.environ.get("LOAD_REPORT")
    if not path:
        return
    total = environment.stats.total
    report = {
        **counts,
        "requests": total.num_requests,
        "failures": total.num_failures,
        "rps": total.total_rps,
        "p50_ms": total.get_response_time_percentile(0.50),
        "p95_ms": total.get_response_time_percentile(0.95),
        "p99_ms": total.get_response_time_percentile(0.99),
        "process_p50_ms": environment.stats.get("/api/aicache/process/", "POST").get_response_time_percentile(
            0.5
        ),
        "process_p99_ms": environment.stats.get("/api/aicache/process/", "POST").get_response_time_percentile(
            0.99
        ),
    }
    with open(path, "w") as fh:
        json.dump(report, fh)
