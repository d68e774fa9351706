"""Run one pytest selection against many mutants from one warm process (scripts/mutation.py).

Started in a mutation work tree's ``mutants/`` directory with a JSON job on stdin: ``options`` and
``tests`` (the pytest arguments), ``mutants`` (names; ``""`` is a clean run), ``children``,
``timeout`` (seconds per run), ``attribute``, ``out`` and ``failures`` (a directory: each failing
run's pytest output goes to ``<mutant>.txt`` there, so a kill says which test failed and how).
It imports pytest and collects the selection once, then forks one child per mutant (at most
``children`` at a time), each in a session of its own with ``MUTANT_UNDER_TEST`` set, so a run
costs its tests and not a fresh interpreter, Django and the test modules (about 3 s each). A run
over its timeout, and whatever it started (redis-servers, worker processes), is stopped by its
process group. Writes
``{mutant: exit code}`` as JSON to ``out``; -1 is a timeout. The clean run, listed first, runs
alone, and a failing one ends the job.

With ``attribute``, the clean run is mutmut's own "stats" run (its trampolines record which
functions each test calls), and each mutant then runs only the tests that called its function, as
mutmut does; a mutant whose function no test of the selection calls is not run (exit 0: not
reached). Only for selections whose tests call aicache in the test process (the Redis Cluster
runs): calls made in worker processes are invisible to the trampolines.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import time


class _Attribution:
    """Which tests called which function, from mutmut's trampolines in "stats" mode."""

    def __init__(self) -> None:
        self.tests: dict[str, list[str]] = {}

    def pytest_runtest_teardown(self, item):
        from mutmut.state import state

        for function in state()._stats:
            self.tests.setdefault(function, []).append(item.nodeid)
        state()._stats.clear()


def main() -> int:
    job = json.load(sys.stdin)
    sys.path.insert(0, os.getcwd())
    import pytest

    base = ["--rootdir=.", "-q", "-p", "no:cacheprovider", *job["options"]]
    tests = job["tests"]
    with contextlib.redirect_stdout(io.StringIO()):
        collected = pytest.main([*base, "--collect-only", *tests])
    codes: dict[str, int] = {}
    if collected != 0:  # 5: the selection holds no test
        codes = {m: int(collected) for m in job["mutants"]}
    else:
        codes = _run_all(job, base, tests, pytest)
    with open(job["out"], "w") as f:
        json.dump(codes, f)
    return 0


def _run_all(job: dict, base: list[str], tests: list[str], pytest) -> dict[str, int]:
    attribution = f"{job['out']}.tests"
    pending = list(job["mutants"])
    running: dict[int, tuple[str, float]] = {}
    codes: dict[str, int] = {}
    called: dict[str, list[str]] | None = None
    while pending or running:
        if codes.get("", 0) != 0:
            break  # the clean run failed: no mutant's result would mean anything
        if "" in codes and job.get("attribute") and called is None:
            with open(attribution) as f:
                called = json.load(f)
        limit = 1 if "" in pending or "" in (m for m, _ in running.values()) else job["children"]
        while pending and len(running) < limit:
            mutant = pending.pop(0)
            selected = tests
            if called is not None:
                selected = called.get(mutant.partition("__mutmut_")[0], [])
                if not selected:
                    codes[mutant] = 0  # no test of this selection reaches its function
                    continue
            pid = os.fork()
            if pid == 0:  # the child: its own session, so that its group can be stopped whole
                os.setsid()
                record = attribution if job.get("attribute") else None
                _child(mutant, [*base, "-x", *selected], record, job.get("failures"), pytest)
            running[pid] = (mutant, time.monotonic() + job["timeout"])
        if not running:
            continue
        pid, status = os.waitpid(-1, os.WNOHANG)
        if pid:
            mutant, _ = running.pop(pid)
            codes[mutant] = os.waitstatus_to_exitcode(status)
            _stop_group(pid)
            continue
        now = time.monotonic()
        for pid, (mutant, deadline) in list(running.items()):
            if now > deadline:
                _stop_group(pid)
                os.waitpid(pid, 0)
                running.pop(pid)
                codes[mutant] = -1
        time.sleep(0.02)
    return codes


def _child(mutant: str, args: list[str], attribution: str | None, log_dir: str | None, pytest) -> None:
    plugins = []
    if mutant == "" and attribution is not None:
        os.environ["MUTANT_UNDER_TEST"] = "stats"  # the originals run, and record their callers
        plugins.append(_Attribution())
    else:
        os.environ["MUTANT_UNDER_TEST"] = mutant
    code = 3  # pytest's "internal error", should anything below raise
    try:
        output = io.StringIO()
        with contextlib.redirect_stdout(output):
            code = pytest.main(args, plugins=plugins)
        if plugins:
            with open(attribution, "w") as f:
                json.dump(plugins[0].tests, f)
        if code != 0 and log_dir is not None:  # which test failed, and how: a kill can be read back
            os.makedirs(log_dir, exist_ok=True)
            with open(os.path.join(log_dir, f"{mutant or 'clean'}.txt"), "w") as f:
                f.write(output.getvalue())
    finally:
        os._exit(int(code))  # never back into the parent's loop


def _stop_group(pid: int) -> None:
    """Stop what a run left behind (a test killed midway never reaches its fixtures' teardown)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
