"""`make prod-like` started once for the load tests: scripts/prod-like.sh in a directory of its own,
on free loopback ports, stopped (and checked to leave nothing running) at the end."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from aicache.bench.redis_server import free_port

ROOT = Path(__file__).resolve().parents[2]
PG_READY = Path("/usr/lib/postgresql")


@dataclass
class ProdLike:
    proc: subprocess.Popen
    run_dir: Path
    base: str
    redis_port: int
    stdout: Path
    tokens: dict[str, str] = field(default_factory=dict)

    def env(self) -> dict[str, str]:
        return {**os.environ, "RUN_DIR": str(self.run_dir), "REDIS_PORT": str(self.redis_port)}

    def manage(self, *args: str) -> str:
        """manage.py in this run's environment (its database, Redis and secret key)."""
        out = subprocess.run(
            ["scripts/manage.sh", *args], cwd=ROOT, env=self.env(), capture_output=True, text=True, timeout=60
        )
        assert out.returncode == 0, out.stderr
        return out.stdout

    def request(self, method: str, path: str, body: dict | None = None, role: str | None = None):
        headers = {"Content-Type": "application/json"}
        if role:
            headers["Authorization"] = f"Token {self.tokens[role]}"
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, headers=headers, method=method)
        try:
            with urllib.request.urlopen(req, timeout=30) as response:
                return response.status, response.headers, response.read()
        except urllib.error.HTTPError as exc:
            return exc.code, exc.headers, exc.read()

    def child_pids(self) -> set[int]:
        """Every process in the script's tree (its children run in sessions of their own)."""
        out = subprocess.run(["ps", "-e", "-o", "pid=,ppid="], capture_output=True, text=True).stdout
        parents: dict[int, list[int]] = {}
        for line in out.splitlines():
            pid, ppid = map(int, line.split())
            parents.setdefault(ppid, []).append(pid)
        found, todo = set(), [self.proc.pid]
        while todo:
            pid = todo.pop()
            for child in parents.get(pid, []):
                if child not in found:
                    found.add(child)
                    todo.append(child)
        return found


USERS = """
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
User = get_user_model()
out = {}
for name, staff in (("loadstaff", True), ("loaduser", False), ("loaduser2", False)):
    user, _ = User.objects.get_or_create(username=name, defaults={"is_staff": staff})
    out[name] = Token.objects.get_or_create(user=user)[0].key
import json; print(json.dumps(out))
"""


@pytest.fixture(scope="session")
def prod_like(tmp_path_factory):
    if not any(PG_READY.glob("*/bin/initdb")):
        pytest.skip("make prod-like needs PostgreSQL (apt-get install postgresql)")
    run_dir = tmp_path_factory.mktemp("prod-like")
    redis_port, web_port = free_port(), free_port()
    stdout = run_dir / "stdout.log"
    env = {
        **os.environ,
        "RUN_DIR": str(run_dir),
        "REDIS_PORT": str(redis_port),
        "WEB_PORT": str(web_port),
        "AICACHE_PROCESSOR_LATENCY": "0.02",
        "AICACHE_FLUSH_INTERVAL": "2",
    }
    env.pop("DJANGO_SETTINGS_MODULE", None)
    proc = subprocess.Popen(
        ["scripts/prod-like.sh"],
        cwd=ROOT,
        env=env,
        stdout=open(stdout, "w"),
        stderr=open(run_dir / "stderr.log", "w"),
    )
    run = ProdLike(proc, run_dir, f"http://127.0.0.1:{web_port}", redis_port, stdout)
    deadline = time.monotonic() + 120
    while True:
        try:
            if run.request("GET", "/health/")[0] == 200:
                break
        except OSError:
            pass
        assert proc.poll() is None, (run_dir / "stderr.log").read_text()[-3000:]
        assert time.monotonic() < deadline, "prod-like did not answer within 120 s"
        time.sleep(0.5)
    users = json.loads(run.manage("shell", "-c", USERS).strip().splitlines()[-1])
    run.tokens = {"staff": users["loadstaff"], "user": users["loaduser"], "user2": users["loaduser2"]}
    yield run
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
