"""`make prod-like` answers as production would, and stops leaving nothing running.

The stop test is last in this file (and the load tests, in test_load.py, run before it)."""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.integration


def test_health_debug_off_and_static_served_by_whitenoise(prod_like):
    status, _, body = prod_like.request("GET", "/health/")
    assert status == 200 and json.loads(body)["database"] == "ok"
    status, headers, body = prod_like.request("GET", "/static/admin/css/base.css")
    assert status == 200 and headers["Content-Type"].startswith("text/css") and len(body) > 1000
    assert "max-age" in headers.get("Cache-Control", "")  # WhiteNoise's header, not runserver's
    status, _, body = prod_like.request("GET", "/no-such-page/")
    assert status == 404 and b"Traceback" not in body and b"URLconf" not in body  # DEBUG off


def test_runs_on_postgresql_with_three_workers_and_metrics_of_all(prod_like):
    env_file = (prod_like.run_dir / "env").read_text()
    assert "postgres://" in env_file
    for i in range(30):
        status, _, body = prod_like.request(
            "POST",
            "/api/aicache/process/",
            {"text": f"Prod-like {i} " * 8, "operation": "summarize"},
            "user2",
        )
        assert status == 200, body[:300]
    metrics_token = (prod_like.run_dir / "metrics_token").read_text().strip()
    req = urllib.request.Request(
        prod_like.base + "/metrics", headers={"Authorization": f"Bearer {metrics_token}"}
    )
    with urllib.request.urlopen(req, timeout=10) as response:
        metrics = response.read().decode()
    misses = sum(
        float(m.group(1)) for m in re.finditer(r"^redis_cache_misses_total\{[^}]*\} (\S+)$", metrics, re.M)
    )
    assert misses > 0
    files = list((prod_like.run_dir / "prometheus").glob("*.db"))
    pids = {int(m.group(1)) for f in files if (m := re.search(r"_(\d+)\.db$", f.name))}
    assert len(pids & prod_like.child_pids()) >= 3  # three gunicorn workers (and Celery) write metrics


def test_logs_are_json_lines(prod_like):
    prod_like.request("GET", "/health/")
    lines = [line for line in prod_like.stdout.read_text().splitlines() if line.strip()]
    assert len(lines) > 5
    records = [json.loads(line) for line in lines]  # every line on stdout is one JSON object
    loggers = {r["logger"] for r in records}
    assert {"gunicorn.error", "gunicorn.access"} <= loggers
    assert any(name.startswith("celery") for name in loggers)
    assert all({"time", "level", "message", "pid"} <= set(r) for r in records)


PERMITTED = """
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from rest_framework.authtoken.models import Token
user = get_user_model().objects.create_user("throttled", is_staff=True)
user.user_permissions.add(Permission.objects.get(codename="invalidate_cache"))
print(Token.objects.create(user=user).key)
"""


def test_throttle_holds_across_the_three_workers(prod_like):
    """10/minute for invalidate/ per user, counted in Redis (DEFAULT_CACHE_URL): three gunicorn
    workers with a per-process cache would let 30 through."""
    prod_like.tokens["permitted"] = prod_like.manage("shell", "-c", PERMITTED).strip().splitlines()[-1]
    statuses = [
        prod_like.request(
            "POST", "/api/aicache/invalidate/", {"operation": "qa", "dry_run": True}, "permitted"
        )[0]
        for _ in range(30)
    ]
    assert statuses == [200] * 10 + [429] * 20


def test_stop_leaves_nothing_running(prod_like):
    children = prod_like.child_pids()
    pgdir = Path((prod_like.run_dir / "pgdir").read_text().strip())
    assert (pgdir / "data").is_dir()
    assert len(children) >= 7  # redis, 2 celery (+ pool), gunicorn master + 3 workers
    out = subprocess.run(
        ["scripts/prod-like-stop.sh"],
        cwd=ROOT,
        env=prod_like.env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0 and "stopped" in out.stdout, out.stdout + out.stderr
    assert prod_like.proc.wait(timeout=10) == 0
    for pid in children:
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            continue
        # a zombie awaiting its reaper is gone for every purpose but ps
        state = open(f"/proc/{pid}/stat").read().split(")")[-1].split()[0]
        assert state == "Z", f"pid {pid} still running"
    assert not pgdir.exists()
    for port in (prod_like.redis_port, int(prod_like.base.rsplit(":", 1)[1])):
        with socket.socket() as s:
            assert s.connect_ex(("127.0.0.1", port)) != 0, f"port {port} still open"
