"""Run one pytest selection against many mutants from one warm process (scripts/mutation.py).

Started in a mutation work tree's ``mutants/`` directory with a JSON job on stdin: ``args`` (the
pytest arguments), ``mutants`` (names; ``""`` is a clean run), ``children`` and ``timeout``
(seconds per run). It imports pytest and collects the selection once, then forks one child per
mutant (at most ``children`` at a time), each in a session of its own with ``MUTANT_UNDER_TEST``
set, so a run costs its tests and not a fresh interpreter, Django and the test modules (about 3 s
each). A run over its timeout, and whatever it started (redis-servers, worker processes), is
stopped by its process group. Writes ``{mutant: exit code}`` as JSON to ``out``; -1 is a
timeout. A clean run (``""``) listed first runs alone, and a failing one ends the job.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import signal
import sys
import time


def main() -> int:
    job = json.load(sys.stdin)
    sys.path.insert(0, os.getcwd())
    import pytest

    base = ["--rootdir=.", "-q", "-p", "no:cacheprovider", *job["args"]]
    with contextlib.redirect_stdout(io.StringIO()):
        collected = pytest.main([*base, "--collect-only"])
    if collected != 0:  # 5: the selection holds no test
        with open(job["out"], "w") as f:
            json.dump({m: int(collected) for m in job["mutants"]}, f)
        return 0
    pending = list(job["mutants"])
    running: dict[int, tuple[str, float]] = {}
    codes: dict[str, int] = {}
    while pending or running:
        if codes.get("", 0) != 0:
            break  # the clean run failed: no mutant's result would mean anything
        # A clean run ("", listed first) runs alone: the mutants wait for its verdict.
        limit = 1 if "" in pending or "" in (m for m, _ in running.values()) else job["children"]
        while pending and len(running) < limit:
            mutant = pending.pop(0)
            pid = os.fork()
            if pid == 0:  # the child: its own session, so that its group can be stopped whole
                os.setsid()
                os.environ["MUTANT_UNDER_TEST"] = mutant
                with contextlib.redirect_stdout(io.StringIO()):
                    code = pytest.main([*base, "-x"])
                os._exit(int(code))
            running[pid] = (mutant, time.monotonic() + job["timeout"])
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
    with open(job["out"], "w") as f:
        json.dump(codes, f)
    return 0


def _stop_group(pid: int) -> None:
    """Stop what a run left behind (a test killed midway never reaches its fixtures' teardown)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(pid, signal.SIGKILL)


if __name__ == "__main__":
    sys.exit(main())
