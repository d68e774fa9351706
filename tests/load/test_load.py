"""locust against `make prod-like`: no error, and the monitoring history of the run equals the load
generator's own counts exactly (no event lost or counted twice).

`make test` runs a short version (LOAD_SECONDS, 15 s); `make soak DURATION=10m` the long one
(marked soak). The figures are printed (pytest -s) and written to <run dir>/load.json.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.helpers import wait_for

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]
LOCUST = Path(sys.executable).parent / "locust"


def stats(prod_like) -> dict | None:
    status, _, body = prod_like.request("GET", "/api/aicache/stats/?last=1h", role="staff")
    if status == 503:  # the database is down or just back: ask again
        return None
    assert status == 200, body[:300]
    return json.loads(body)


def settled(prod_like, at_least: int = 0) -> tuple[int, int]:
    """The history's (hits, misses) once it holds at least ``at_least`` reads and two readings a
    flush interval apart agree: every process has shipped what it held, and the worker ingested it
    (retries included)."""
    last: list = [None]

    def steady() -> bool:
        s = stats(prod_like)
        if s is None:
            return False
        now = (s["cache_hits"], s["cache_misses"])
        done, last[0] = now == last[0] and sum(now) >= at_least, now
        if not done:
            time.sleep(2.5)
        return done

    wait_for(steady, timeout=180, what="the history to settle")
    return last[0]


def run_locust(prod_like, seconds: str, users: int = 8) -> dict:
    report = prod_like.run_dir / f"load-{time.monotonic_ns()}.json"
    env = {
        **os.environ,
        "LOAD_TOKENS": json.dumps(prod_like.tokens),
        "LOAD_REPORT": str(report),
    }
    out = subprocess.run(
        [
            str(LOCUST),
            "-f",
            "tests/load/locustfile.py",
            "--headless",
            "--only-summary",
            "-u",
            str(users),
            "-r",
            str(users),
            "-t",
            seconds,
            "--stop-timeout",
            "10",
            "--host",
            prod_like.base,
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=soak_seconds() + 3600,
    )
    assert report.exists(), out.stderr[-3000:]
    figures = json.loads(report.read_text())
    figures["exit_code"] = out.returncode
    figures["summary"] = out.stderr[-2500:]
    return figures


def check_run(prod_like, seconds: str, users: int = 8) -> dict:
    before = settled(prod_like)
    figures = run_locust(prod_like, seconds, users)
    after = settled(prod_like, sum(before) + figures.get("processed", 0))
    assert figures["failures"] == 0 and figures["exit_code"] == 0, figures["summary"]
    assert figures["processed"] > 0 and figures["stats_reads"] > 0
    hits, misses = after[0] - before[0], after[1] - before[1]
    figures.update(history_hits=hits, history_misses=misses, hit_rate=hits / (hits + misses))
    print(json.dumps({k: v for k, v in figures.items() if k != "summary"}, indent=1))
    (prod_like.run_dir / "load.json").write_text(json.dumps(figures, indent=1))
    # every answer the generator saw is in the history once: a hit as a hit, a miss as a miss
    assert (hits, misses) == (figures.get("hits", 0), figures.get("misses", 0))
    # a miss is one model call: nothing computed twice, nothing answered from nowhere
    assert figures.get("source_compute", 0) == figures.get("misses", 0)
    assert figures["processed"] == hits + misses
    return figures


def test_short_load_no_error_history_exact(prod_like):
    check_run(prod_like, os.environ.get("LOAD_SECONDS", "15s"), users=6)


def soak_seconds() -> int:
    """AICACHE_SOAK_DURATION as locust reads it (``90``, ``90s``, ``10m``, ``1h``), in seconds."""
    value = os.environ.get("AICACHE_SOAK_DURATION", "5m")
    number, unit = (value[:-1], value[-1]) if value[-1] in "smh" else (value, "s")
    return int(float(number) * {"s": 1, "m": 60, "h": 3600}[unit])


@pytest.mark.soak
@pytest.mark.timeout(soak_seconds() + 600)
def test_soak(prod_like):
    figures = check_run(prod_like, os.environ.get("AICACHE_SOAK_DURATION", "5m"), users=16)
    assert figures["hit_rate"] > 0.5  # a Zipf pattern over 15,000 requests repeats most of them
