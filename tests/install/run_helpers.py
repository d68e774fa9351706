"""Drive `make run` as a user would: start it, read its banner, run what it prints."""

from __future__ import annotations

import fcntl
import os
import queue
import re
import select
import signal
import subprocess
import termios
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

# What a user's shell does not have: everything the run must find on its own (env.sh, $RUN/env).
_PRIVATE = (
    "SECRET_KEY",
    "DJANGO_SETTINGS_MODULE",
    "DATABASE_URL",
    "REDIS_URL",
    "METRICS_TOKEN",
    "REDIS_PORT",
    "WEB_PORT",
    "RUN_DIR",
    "PROMETHEUS_MULTIPROC_DIR",
    "MAKEFLAGS",
    "MFLAGS",
)


def user_env(**extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _PRIVATE and not k.startswith(("AICACHE_", "CELERY_", "PYTEST_"))
    }
    return {**env, **extra}


def children_of(pid: int) -> set[int]:
    """Every live descendant of ``pid`` (from /proc), zombies excluded."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat.rsplit(")", 1)[1].split()
        if fields[0] != "Z":
            parents[int(entry.name)] = int(fields[1])
    found, frontier = set(), {pid}
    while frontier:
        frontier = {p for p, parent in parents.items() if parent in frontier} - found
        found |= frontier
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


class MakeRun:
    """`make run` in a session of its own (as a terminal's foreground job is), output collected."""

    def __init__(self, run_dir: Path, redis_port: int, web_port: int, ignore_sigint: bool = False):
        self.env = user_env()
        self.pidfile = run_dir / "run.pid"
        start_env = {
            **self.env,
            "RUN_DIR": str(run_dir),
            "REDIS_PORT": str(redis_port),
            "WEB_PORT": str(web_port),
        }
        # A job backgrounded by a non-interactive shell starts with SIGINT ignored; a terminal's
        # foreground job with it at its default. Set either explicitly: this test process may itself
        # have been started with SIGINT ignored (CI backgrounded by a script), which make would inherit.
        disposition = signal.SIG_IGN if ignore_sigint else signal.SIG_DFL
        preexec = lambda: signal.signal(signal.SIGINT, disposition)  # noqa: E731
        self.proc = subprocess.Popen(
            ["make", "--no-print-directory", "run"],
            cwd=ROOT,
            env=start_env,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            preexec_fn=preexec,
        )
        self.lines: list[str] = []
        self._queue: queue.Queue[str | None] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        for line in self.proc.stdout:
            self._queue.put(line)
        self._queue.put(None)

    def banner(self, timeout: float = 120) -> list[str]:
        """The lines from 'aicache is running:' to 'Stop: ...'."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._queue.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError("no banner in time:\n" + "".join(self.lines[-40:])) from None
            if line is None:
                raise AssertionError(f"make run exited {self.proc.wait()}:\n" + "".join(self.lines[-40:]))
            self.lines.append(line)
            if line.startswith("Stop:"):
                start = max(i for i, s in enumerate(self.lines) if s.startswith("aicache is running:"))
                return [s.rstrip("\n") for s in self.lines[start:]]

    def finish(self, timeout: float = 60) -> tuple[int, str]:
        code = self.proc.wait(timeout=timeout)
        while (line := self._queue.get(timeout=5)) is not None:
            self.lines.append(line)
        return code, "".join(self.lines)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def parse_banner(lines: list[str]) -> dict[str, str]:
    """label -> the command or URL printed for it (parenthesised notes split off)."""
    entries: dict[str, str] = {}
    for line in lines[1:]:
        if m := re.match(r"^  (\S+(?: \S+)?)\s{2,}(.*)$", line):
            entries[m.group(1).strip()] = m.group(2)
        elif line.startswith("Stop:"):
            entries["stop"] = re.search(r"or (.*make stop) from", line).group(1)
    if "admin" in entries:
        entries["superuser"] = re.search(r"first: (.*make superuser)\)", entries["admin"]).group(1)
        entries["admin"] = entries["admin"].split()[0]
    entries["manage.py"] = entries["manage.py"].split("   (")[0]
    entries["home"] = entries["home"].split()[0]
    return entries


def run_in_pty(command: str, answers: list[tuple[str, str]], env: dict[str, str], timeout: float = 60):
    """Run a shell command on a terminal of its own, answering each prompt as it appears."""
    master, slave = os.openpty()

    def controlling_tty() -> None:
        os.setsid()
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen(
        ["bash", "-c", command],
        cwd=ROOT,
        env=env,
        stdin=slave,
        stdout=slave,
        stderr=slave,
        preexec_fn=controlling_tty,
    )
    os.close(slave)
    seen, pending = "", list(answers)
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 4096).decode(errors="replace")
                except OSError:  # EIO: the other side closed
                    break
                if not chunk:
                    break
                seen += chunk
                while pending and pending[0][0] in seen.rsplit("\n", 1)[-1]:
                    os.write(master, (pending.pop(0)[1] + "\n").encode())
                    seen += "\n"
            elif proc.poll() is not None:
                break
        return proc.wait(timeout=max(1, deadline - time.monotonic())), seen
    finally:
        os.close(master)
        if proc.poll() is None:
            proc.kill()
            proc.wait()
