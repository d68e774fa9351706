"""/metrics under gunicorn with two workers (Prometheus multiprocess mode) sums both workers."""

import os
import re
import subprocess
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from aicache.bench.redis_server import free_port

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
    deadline = time.monotonic() + 30
    while True:
        try:
            get(f"{base}/health/")
            break
        except OSError:
            assert proc.poll() is None, (tmp_path / "gunicorn.log").read_text()
            assert time.monotonic() < deadline, "gunicorn did not start"
            time.sleep(0.2)
    yield base
    proc.terminate()
    proc.wait(timeout=20)


def test_metrics_sum_all_workers(gunicorn, redis_server):
    redis_server.client().flushdb()
    replies: list[str] = []
    deadline = time.monotonic() + 30
    with ThreadPoolExecutor(8) as pool:
        # Until both workers have booted and served, keep sending (a worker still importing Django
        # would leave all the traffic to the other one).
        while True:
            replies += pool.map(lambda _: get(f"{gunicorn}/test/cache-hit?sleep=0.05"), range(16))
            pids = {re.search(r'"pid": (\d+)', r).group(1) for r in replies}
            if len(pids) == 2 and len(replies) >= 60:
                break
            assert time.monotonic() < deadline, "both workers should have served requests"
    # Each worker's exporter ships its figures within a second; poll instead of sleeping blindly.
    deadline = time.monotonic() + 15
    while True:
        body = get(f"{gunicorn}/metrics")
        reads = metric(body, "redis_cache_hits_total", operation="summarize", tier="small") + metric(
            body, "redis_cache_misses_total", operation="summarize", tier="small"
        )
        if reads >= len(replies) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    # Every request read once; a few that raced the first compute read again after waiting.
    assert reads >= len(replies)
    assert (
        metric(body, "redis_cache_latency_ms_count", action="get", operation="summarize", tier="small")
        == reads
    )
    assert "aicache_memory_tier_entries" in body


def test_each_worker_starts_coherence_at_boot(gunicorn):
    """gunicorn.conf.py's post_worker_init starts the listener; no request ever uses the cache here."""
    statuses: dict[str, str] = {}
    deadline = time.monotonic() + 20
    with ThreadPoolExecutor(4) as pool:
        while not (len(statuses) == 2 and set(statuses.values()) == {"live"}):
            assert time.monotonic() < deadline, f"coherence not live in both workers: {statuses}"
            for reply in pool.map(lambda _: get(f"{gunicorn}/test/coherence"), range(8)):
                pid, status = re.search(r'"pid": (\d+), "status": "(\w+)"', reply).groups()
                statuses[pid] = status
            time.sleep(0.1)
