"""PostgreSQL stopped and restarted under `make prod-like`: the cache keeps answering, the stats
endpoints answer 503 with the reason, ingestion retries, and the history's totals are exact."""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections import Counter
from pathlib import Path

import pytest

from tests.load.test_load import settled

pytestmark = pytest.mark.integration


def pg_ctl(prod_like, action: str) -> None:
    pgdir = Path((prod_like.run_dir / "pgdir").read_text().strip())
    port = re.search(r"PG_PORT:=(\d+)", (prod_like.run_dir / "env").read_text()).group(1)
    as_pg = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
    pgbin = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))[-1]
    cmd = [*as_pg, str(pgbin), "-D", str(pgdir / "data"), "-w", "-m", "fast", action]
    if action == "start":
        cmd[-1:] = [
            "-l",
            str(pgdir / "pg.log"),
            "-o",
            f"-p {port} -k {pgdir} -c listen_addresses=127.0.0.1",
            "start",
        ]
    subprocess.run(cmd, check=True, capture_output=True, timeout=60)


CALLER = """
import json
from django.core.cache import caches
cache, seen = caches["ai"], {"hits": 0, "misses": 0}
for i in range(80):
    answer = cache.get_or_compute(
        f"Database down {i % 20} " * 6, "qa", lambda: {"answer": "computed"}, question="Still there?"
    )
    seen["hits" if answer["cache_hit"] else "misses"] += 1
print(json.dumps(seen))
"""


def test_postgresql_stopped_and_restarted(prod_like):
    """The cache does not need the database: a process of the project (manage.py shell, same
    settings, history on) answers 80 calls while PostgreSQL is down and ships its figures at exit;
    they reach the history once PostgreSQL is back (Celery retries the ingestion)."""
    before = settled(prod_like)
    pg_ctl(prod_like, "stop")
    try:
        seen = Counter(json.loads(prod_like.manage("shell", "-c", CALLER).strip().splitlines()[-1]))
        assert seen == Counter(hits=60, misses=20)
        status, _, body = prod_like.request("GET", "/api/aicache/stats/", role="staff")
        assert status == 503 and "database" in json.loads(body)["detail"]
        status, _, body = prod_like.request("GET", "/api/aicache/health/", role="staff")
        assert status == 503 and "database" in json.loads(body)["detail"], body
        status, _, body = prod_like.request("GET", "/health/")
        assert status == 503 and json.loads(body)["database"] == "unreachable"
        # The reference API authenticates by token, in the database: a clean 503, not a 500.
        status, _, body = prod_like.request(
            "POST", "/api/aicache/process/", {"text": "Database down", "operation": "sentiment"}, "user"
        )
        assert status == 503 and "database" in json.loads(body)["detail"]
    finally:
        pg_ctl(prod_like, "start")
    after = settled(prod_like, sum(before) + sum(seen.values()))
    assert (after[0] - before[0], after[1] - before[1]) == (seen["hits"], seen["misses"])
    retries = [
        r
        for r in map(json.loads, prod_like.stdout.read_text().splitlines())
        if "ingest_batch" in r["message"]
        and "Retry in" in r["message"]
        and "OperationalError" in r["message"]
    ]
    assert retries  # the worker met the outage and retried (the JSON log says so)
    status, _, _ = prod_like.request(
        "POST", "/api/aicache/process/", {"text": "Database back", "operation": "sentiment"}, "user"
    )
    assert status == 200
