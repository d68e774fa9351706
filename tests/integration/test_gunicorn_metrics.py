"""/metrics under gunicorn with two workers (Prometheus multiprocess mode) sums both workers."""

import json
import os
import re
import subprocess
import sys
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aicache.bench.redis_server import free_port
from tests.helpers import wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=10) as response:
        return response.read().decode()


def metric(body: str, name: str, **labels: str) -> float:
    wanted = ",".join(f'{k}="{v}"' for k, v in sorted(labels.items()))
    for line in body.splitlines():
        m = re.match(rf"^{name}\{{(.*)\}} (\S+)$", line)
        if m and ",".join(sorted(m.group(1).split(","))) == wanted:
            return float(m.group(2))
    return 0.0


@pytest.fixture
def gunicorn(redis_server, tmp_path):
    port = free_port()
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "tests.settings_gunicorn",
        "AICACHE_TEST_REDIS_URL": f"{redis_server.url}/0",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prom"),
        "GUNICORN_BIND": f"127.0.0.1:{port}",
        "GUNICORN_WORKERS": "2",
    }
    proc = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", "-c", "aicache_project/gunicorn.conf.py"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=open(tmp_path / "gunicorn.log", "w"),
    )
    base = f"http://127.0.0.1:{port}"

    def answers() -> bool:
        assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
        try:
            get(f"{base}/health/")
        except OSError:
            return False
        return True

    wait_for(answers, timeout=30, what="gunicorn to answer")
    yield base
    proc.terminate()
    proc.wait(timeout=20)


def test_metrics_sum_all_workers(gunicorn, redis_server):
    """Every request is one get_or_compute call, so one read (README, "Honest counts": a caller
    coalesced onto another's compute is a hit, never a second read); the scrape of either worker
    adds up both workers' reads exactly, hits and misses as the replies report them."""
    redis_server.client().flushdb()
    replies: list[dict] = []

    def both_workers_served() -> bool:
        # Until both workers have booted and served, keep sending (a worker still importing Django
        # would leave all the traffic to the other one).
        with ThreadPoolExecutor(8) as pool:
            replies.extend(
                json.loads(r)
                for r in pool.map(lambda _: get(f"{gunicorn}/test/cache-hit?sleep=0.05"), range(16))
            )
        return len({r["pid"] for r in replies}) == 2 and len(replies) >= 60

    wait_for(both_workers_served, timeout=30, what="both workers serving requests")
    hits = sum(r["hit"] for r in replies)
    misses = len(replies) - hits
    scraped = {}

    def every_read_exported() -> bool:  # each worker's exporter folds its records within a second
        body = get(f"{gunicorn}/metrics")
        scraped.update(
            body=body,
            hits=metric(body, "redis_cache_hits_total", operation="summarize", tier="small"),
            misses=metric(body, "redis_cache_misses_total", operation="summarize", tier="small"),
        )
        return scraped["hits"] + scraped["misses"] >= len(replies)

    wait_for(every_read_exported, timeout=15, what="every read in /metrics")
    assert (scraped["hits"], scraped["misses"]) == (hits, misses)
    assert misses == 1  # one compute for the key across both workers, Redis answering
    latency = metric(
        scraped["body"], "redis_cache_latency_ms_count", action="get", operation="summarize", tier="small"
    )
    assert latency == len(replies)
    assert "aicache_memory_tier_entries" in scraped["body"]


def test_each_worker_starts_coherence_at_boot(gunicorn):
    """gunicorn.conf.py's post_worker_init starts the listener; no request ever uses the cache here."""
    statuses: dict[str, str] = {}

    def both_live() -> bool:
        with ThreadPoolExecutor(4) as pool:
            for reply in pool.map(lambda _: get(f"{gunicorn}/test/coherence"), range(8)):
                pid, status = re.search(r'"pid": (\d+), "status": "(\w+)"', reply).groups()
                statuses[pid] = status
        return len(statuses) == 2 and set(statuses.values()) == {"live"}

    wait_for(both_live, timeout=20, what="coherence live in both workers")
