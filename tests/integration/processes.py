"""Start and talk to worker processes (tests/integration/worker.py)."""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


class Worker:
    def __init__(self, redis_url: str, **env_extra: str) -> None:
        env = {
            **os.environ,
            "AICACHE_TEST_REDIS_URL": redis_url,
            "DJANGO_SETTINGS_MODULE": "tests.settings_real",
            **env_extra,
        }
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.integration.worker"],
            cwd=ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.pid = self.read()["ready"]

    def send(self, op: str, **msg) -> None:
        self.proc.stdin.write(json.dumps({"op": op, **msg}) + "\n")
        self.proc.stdin.flush()

    def read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker exited with {self.proc.wait(timeout=5)}")
        return json.loads(line)

    def call(self, op: str, **msg) -> dict:
        self.send(op, **msg)
        return self.read()

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.stdin.close()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc.stdout.close()


@contextlib.contextmanager
def worker_pool(redis_url: str, **env_extra: str) -> Iterator[Callable[[int], list[Worker]]]:
    """``start(n)`` starts n more workers on ``redis_url``, each with a live coherence listener,
    and returns them; all of them are closed when the block ends (the ``workers`` fixtures)."""
    started: list[Worker] = []

    def start(n: int) -> list[Worker]:
        for _ in range(n):
            worker = Worker(redis_url, **env_extra)
            started.append(worker)
            assert worker.call("status")["status"] == "live"
        return started[-n:]

    try:
        yield start
    finally:
        for worker in started:
            worker.close()
