#!/usr/bin/env python3
"""Mutation testing (`make mutation`): mutmut over the core and the monitor, module by module.

Each module gets its own work tree under .run/mutation/<module>/ (a copy of the tracked files) and its
own [tool.mutmut] section naming the fast tests that cover it, so a mutant in keys.py never waits for
the history tests. mutmut then runs, for each mutant, only the selected tests that called the mutated
function. The summary (killed / survived / timeout per module, and every survivor) goes to
.run/mutation/summary.md and stdout; `docs/testing.md` explains each survivor that is left.

    scripts/mutation.py                  # every module, about 30 minutes on two vCPUs
    scripts/mutation.py keys codec       # only these
    scripts/mutation.py --fail-under 85  # exit 1 if a module kills fewer than 85 %
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / ".run" / "mutation"
MUTMUT = ROOT / ".venv" / "bin" / "mutmut"

# module -> the fast tests that exercise it (mutmut narrows each mutant to the ones that call it).
MODULES: dict[str, tuple[str, list[str]]] = {
    "keys": ("aicache/keys.py", ["tests/unit/test_keys.py", "tests/unit/test_properties.py"]),
    "codec": (
        "aicache/codec.py",
        [
            "tests/unit/test_codec.py",
            "tests/unit/test_frames.py",
            "tests/unit/test_zstd_compressor.py",
            "tests/unit/test_dictionaries.py",
            "tests/unit/test_checks.py",
            "tests/unit/test_backend.py",
            "tests/unit/test_properties.py",
            "tests/integration/test_signing.py",
            "tests/integration/test_dictionaries.py",
        ],
    ),
    "memory": ("aicache/memory.py", ["tests/unit/test_memory.py", "tests/unit/test_backend.py"]),
    "coherence": (
        "aicache/coherence.py",
        ["tests/unit/test_coherence_unit.py", "tests/integration/test_coherence.py"],
    ),
    "singleflight": (
        "aicache/singleflight.py",
        [
            "tests/unit/test_singleflight.py",
            "tests/unit/test_flights.py",
            "tests/integration/test_single_flight.py",
        ],
    ),
    "invalidation": (
        "aicache/invalidation.py",
        [
            "tests/integration/test_invalidation_races.py",
            "tests/integration/test_counts.py",
            "tests/integration/test_invalidation_batches.py",
            "tests/integration/test_tags.py",
            "tests/integration/test_redis_backend.py",
            "tests/topologies/test_shared_guarantees.py",
        ],
    ),
    "backend": (
        "aicache/backend.py",
        [
            "tests/unit/test_backend.py",
            "tests/integration/test_redis_backend.py",
            "tests/integration/test_single_flight.py",
            "tests/integration/test_faults.py",
            "tests/integration/test_settings_take_effect.py",
            "tests/integration/test_invalidation_races.py",
            "tests/integration/test_tags.py",
            "tests/integration/test_signing.py",
            "tests/integration/test_dictionaries.py",
            "tests/unit/monitoring/test_seed_api.py",
            "tests/unit/monitoring/test_instrumentation.py",
            "tests/unit/test_savings.py",
            "tests/topologies/test_shared_guarantees.py",
        ],
    ),
    "recorder": ("aicache/monitoring/recorder.py", ["tests/unit/monitoring"]),
    "readings": ("aicache/monitoring/readings.py", ["tests/unit/monitoring"]),
    "rollups": (
        "aicache/monitoring/rollups.py",
        ["tests/unit/monitoring", "tests/history/test_flusher.py", "tests/history/test_bounds.py"],
    ),
    "ingest": (
        "aicache/monitoring/ingest.py",
        ["tests/history/test_ingest.py", "tests/history/test_flusher.py"],
    ),
}

CONFIG = """
[tool.mutmut]
source_paths = ["aicache/"]
only_mutate = [{module!r}]
pytest_add_cli_args_test_selection = {tests!r}
# A hung mutant costs a timeout: its test's own (scripts/mutation_conftest.py), and 3x the tests'
# estimate for the whole run.
# Tests that start worker processes are left to the recheck of survivors (see recheck()).
# The topologies' shared guarantees run here on "buckets" only (Sentinel and Cluster take seconds to
# start; the Cluster recheck in scripts/mutation.py keeps what needs several primaries).
pytest_add_cli_args = [
    "-p", "no:cacheprovider", "--timeout={timeout}", "-m", "not processes and not cluster and not sentinel",
]
timeout_multiplier = 3.0
# the project beside the mutated package: pytest-django then finds manage.py in mutants/ itself
# (otherwise it puts the work tree first on sys.path, and worker processes import unmutated code)
also_copy = ["aicache_project/", "templates/", "manage.py", "conftest.py"]
"""


# Seconds one test may take before its mutant counts as a hang (detected), where mutmut has no clean
# duration for it (its stats run; scripts/mutation_conftest.py bounds every other test by its own),
# and for the rechecks' tests (worker processes, Redis Cluster: 2-4 s clean, more under load).
DEFAULT_TEST_TIMEOUT = 20
TEST_TIMEOUT = {"coherence": 60}


def prepare(name: str, module: str, tests: list[str]) -> Path:
    """A fresh copy of the tracked files with this module's mutmut section appended."""
    tree = WORK / name
    if tree.exists():
        shutil.rmtree(tree)
    tree.mkdir(parents=True)
    files = subprocess.run(
        ["git", "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
    ).stdout.split(b"\0")
    for raw in filter(None, files):
        path = raw.decode()
        if not (ROOT / path).is_file():
            continue
        (tree / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / path, tree / path)
    (tree / ".venv").symlink_to(ROOT / ".venv")
    # tests that need no server first (scripts/mutation_conftest.py)
    shutil.copy2(ROOT / "scripts" / "mutation_conftest.py", tree / "conftest.py")
    with (tree / "pyproject.toml").open("a") as f:
        f.write(
            CONFIG.format(
                module=module,
                tests=[t for t in tests if (ROOT / t).exists()],
                timeout=TEST_TIMEOUT.get(name, DEFAULT_TEST_TIMEOUT),
            )
        )
    return tree


def outcomes(tree: Path) -> dict[str, str]:
    """mutant name -> killed | survived | timeout | other, from mutmut's own result files."""
    from mutmut.stats import status_by_exit_code  # mutmut's own reading of its exit codes

    result: dict[str, str] = {}
    for meta in (tree / "mutants").rglob("*.meta"):
        for key, code in json.loads(meta.read_text())["exit_code_by_key"].items():
            result[key] = status_by_exit_code[code]
    return result


def diff(tree: Path, mutant: str) -> str:
    shown = subprocess.run(
        [str(MUTMUT), "show", mutant], cwd=tree, capture_output=True, text=True, check=False
    ).stdout
    return "\n".join(line for line in shown.splitlines() if line.startswith(("-", "+")) and line[:3] != "---")


RECHECK_SECONDS = 300


# Tests mutmut's selection cannot attribute, run against every survivor after mutmut (see recheck):
# those that run aicache in worker processes, and for the modules whose keys and scripts differ on
# Redis Cluster, the Cluster tests that need several primaries. The shared guarantees' bucket and
# slot rules (hash-tag buckets, one slot per script, no transaction across slots) are judged in
# mutmut's own stage, on the "buckets" topology (tests/topologies/buckets.py: the cluster layout on
# the plain redis-server, a fraction of a second a run): in the run that measured it, it killed
# all 86 invalidation mutants that the Cluster runs of the shared guarantees had killed, and passed
# the 60 that survived them, the same verdicts in 80 s of runs instead of 7 minutes.
class Selection(NamedTuple):
    options: list[str]
    tests: list[str]
    attribute: bool  # run each mutant against the tests that call its function only
    extra_children: int = 0  # runs at once beyond one per vCPU, for selections that mostly wait


CLUSTER = Selection(
    ["-m", "cluster"],
    [
        "tests/topologies/test_cluster.py::test_counts_exact_across_primaries",
        "tests/topologies/test_cluster.py::test_single_flight_lease_and_fence_in_every_bucket",
    ],
    # They call aicache in the test process, so their clean run can record which functions each
    # calls (mutmut's "stats" mode), and a survivor meets only those.
    attribute=True,
    # A cluster run spends much of its time waiting (a cluster's start is about 3 s: a new primary
    # refuses writes for its first 2 s). Measured with the shared guarantees in this selection
    # (38 tests): one more child than vCPUs took the invalidation survivors 238 s instead of 344 s
    # with the same verdicts; two more (188 s) failed two equivalent mutants' runs under the load,
    # which would count them as killed.
    extra_children=1,
)
# Coherence's selection takes no "buckets" runs (see docs/testing.md, "Tried and left out"), and on a
# cluster its tier is driven by a listener watching every primary (aicache.cluster_coherence),
# which "buckets" (one plain node) never starts: its survivors meet the shared guarantees' Cluster
# runs as well.
CLUSTER_WATCH = CLUSTER._replace(tests=["tests/topologies/test_shared_guarantees.py", *CLUSTER.tests])
RECHECK_CLUSTER = {"invalidation": CLUSTER, "backend": CLUSTER, "coherence": CLUSTER_WATCH}


def _forks(
    tree: Path, selection: Selection, mutants: list[str], children: int, failures: Path | None = None
) -> dict[str, int]:
    """Exit codes of a pytest selection run against each of ``mutants`` in the mutants directory,
    from one warm process (scripts/mutation_forks.py): mutmut's trampolines read
    MUTANT_UNDER_TEST, and worker processes inherit it. A hang counts as detected (-1)."""
    env = {**os.environ, "AICACHE_HYPOTHESIS_EXAMPLES": "25", "PYTHONDONTWRITEBYTECODE": "1"}
    out = tree / "forks.json"
    out.unlink(missing_ok=True)
    job = {
        "options": [f"--timeout={TEST_TIMEOUT.get(tree.name, DEFAULT_TEST_TIMEOUT)}", *selection.options],
        "tests": selection.tests,
        "attribute": selection.attribute,
        "mutants": mutants,
        "children": children + selection.extra_children,
        "timeout": RECHECK_SECONDS,
        "out": str(out),
        "failures": str(failures) if failures else None,
    }
    job_file = tree / "forks-job.json"
    job_file.write_text(json.dumps(job))
    with job_file.open() as stdin:
        _in_own_group(
            [str(ROOT / ".venv" / "bin" / "python"), str(ROOT / "scripts" / "mutation_forks.py")],
            cwd=tree / "mutants",
            env=env,
            stdin=stdin,
            stdout=subprocess.DEVNULL,
        )
    return json.loads(out.read_text()) if out.exists() else {m: -2 for m in mutants}


def _in_own_group(command: list[str], timeout: float | None = None, **kwargs: Any) -> int:
    """Run ``command`` in a process group of its own and stop whatever is left in that group
    afterwards: a test killed by a timeout never reaches its fixtures' teardown, so the
    redis-servers (and worker processes) it started would outlive the run. -1 on a timeout."""
    proc = subprocess.Popen(command, start_new_session=True, stderr=subprocess.STDOUT, **kwargs)
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        return -1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)


def recheck(
    tree: Path, selections: list[Selection], found: dict[str, str], children: int
) -> tuple[list[str], list[str]]:
    """Survivors (and mutants mutmut found no test for) that tests outside mutmut's view kill.

    mutmut learns which tests cover a function by recording calls in the test process; calls made
    in the worker processes some tests start (tests/integration/processes.py: the stampede across
    processes, lease renewal, a crashed holder, coherence between processes) are invisible to it,
    and the Cluster tests are not in the fast selection at all. Each candidate gets each selection
    here, after a clean run proved the selection passes without a mutant.

    A kill here counts only if a second run of the same selection, one mutant at a time, fails
    too: these tests start worker processes and clusters, and under the load of several runs at
    once one of them can fail for want of CPU, which would count an equivalent mutant as killed
    (two did in one full run). Returns (killed, unconfirmed: failed once only, left as survivors
    and named in the summary). Each failing run's pytest output is kept in
    .run/mutation/<module>/recheck-failures/<selection>/ and recheck-confirmed/<selection>/."""
    candidates = sorted(k for k, v in found.items() if v in ("survived", "no tests"))
    killed: list[str] = []
    unconfirmed: list[str] = []
    for number, selection in enumerate(selections):
        candidates = [m for m in candidates if m not in killed]
        if not candidates:
            continue
        name = f"{number}-{selection.options[-1]}"  # e.g. 0-processes, 1-cluster
        codes = _forks(tree, selection, ["", *candidates], children, tree / "recheck-failures" / name)
        clean = codes.get("", -2)
        if clean == 5:
            continue  # the selection holds no test
        if clean != 0:
            raise SystemExit(f"{selection} fails without a mutant (exit {clean}): fix it first")
        suspects = [m for m in candidates if codes.get(m, 0) != 0]
        if not suspects:
            continue
        alone = selection._replace(extra_children=0)
        again = _forks(tree, alone, ["", *suspects], 1, tree / "recheck-confirmed" / name)
        if again.get("", -2) != 0:
            raise SystemExit(
                f"{selection} failed without a mutant when confirming kills (exit {again.get('', -2)}; "
                f"see {tree / 'recheck-confirmed' / name}): fix it first"
            )
        killed += [m for m in suspects if again.get(m, 0) != 0]
        unconfirmed += [m for m in suspects if again.get(m, 0) == 0]
    return killed, [m for m in unconfirmed if m not in killed]


def run(name: str, children: int) -> dict:
    module, tests = MODULES[name]
    tree = prepare(name, module, tests)
    env = {**os.environ, "AICACHE_HYPOTHESIS_EXAMPLES": "25", "PYTHONDONTWRITEBYTECODE": "1"}
    started = time.monotonic()
    log = (WORK / f"{name}.log").open("w")
    _in_own_group([str(MUTMUT), "run", "--max-children", str(children)], cwd=tree, env=env, stdout=log)
    mutmut_seconds = time.monotonic() - started
    found = outcomes(tree)
    # worker processes of the single-node tests; not the stampede's copies on other layouts (on
    # "buckets" it would add about 2 s per survivor; the lease per bucket is a Cluster recheck test)
    in_processes = [t for t in tests if (ROOT / t).exists() and not t.startswith("tests/topologies/")]
    selections = [Selection(["-m", "processes"], in_processes, attribute=False)]
    if name in RECHECK_CLUSTER:
        selections.append(RECHECK_CLUSTER[name])
    rechecked, unconfirmed = recheck(tree, selections, found, children)
    for mutant in rechecked:
        found[mutant] = "killed"
    counts: dict[str, int] = {}
    for status in found.values():
        counts[status] = counts.get(status, 0) + 1
    total = len(found)
    # A timeout is a detected mutant: the change made the code hang, and a test noticed.
    detected = counts.get("killed", 0) + counts.get("timeout", 0)
    survivors = sorted(k for k, v in found.items() if v not in ("killed", "timeout"))
    return {
        "module": module,
        "total": total,
        "counts": counts,
        "score": 100.0 * detected / total if total else 100.0,
        "seconds": round(time.monotonic() - started),
        "mutmut_seconds": round(mutmut_seconds),  # the rest is the recheck of survivors
        "killed_in_worker_processes": len(rechecked),  # and on Redis Cluster: by the rechecks
        "unconfirmed": unconfirmed,  # failed a recheck once, passed it alone: survivors
        "survivors": {k: (found[k], diff(tree, k)) for k in survivors},
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("modules", nargs="*", help=f"some of: {' '.join(MODULES)} (default: all)")
    parser.add_argument("--children", type=int, default=os.cpu_count() or 2)
    parser.add_argument("--fail-under", type=float, default=0.0, help="minimum killed %% per module")
    args = parser.parse_args()
    unknown = set(args.modules) - set(MODULES)
    if unknown:
        parser.error(f"unknown module(s): {', '.join(sorted(unknown))}; choose from {', '.join(MODULES)}")
    WORK.mkdir(parents=True, exist_ok=True)
    results = []
    for name in args.modules or list(MODULES):
        print(f"== {name}", flush=True)
        result = run(name, args.children)
        results.append(result)
        (WORK / f"{name}.json").write_text(json.dumps(result, indent=1))
        print(
            f"   {result['module']}: {result['score']:.1f} % detected of {result['total']} "
            f"{result['counts']} in {result['seconds']} s",
            flush=True,
        )
    # The summary covers every module measured so far, this run's figures replacing older ones, so
    # `scripts/mutation.py backend` after a full run still leaves a complete table.
    ran = {r["module"] for r in results}
    earlier = [
        json.loads((WORK / f"{name}.json").read_text())
        for name in MODULES
        if (WORK / f"{name}.json").exists()
    ]
    every = [r for r in earlier if r["module"] not in ran] + results
    lines = [
        "| module | mutants | killed | timeout | survived | detected | seconds |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in every:
        c = r["counts"]
        lines.append(
            f"| {r['module']} | {r['total']} | {c.get('killed', 0)} | {c.get('timeout', 0)} | "
            f"{r['total'] - c.get('killed', 0) - c.get('timeout', 0)} | {r['score']:.1f} % | {r['seconds']} |"
        )
    lines.append("")
    for r in every:
        for mutant, (status, change) in r["survivors"].items():
            if mutant in r.get("unconfirmed", ()):
                status += "; failed a recheck once, passed it alone"
            lines.append(f"### {mutant} ({status})\n```diff\n{change}\n```")
    summary = "\n".join(lines)
    (WORK / "summary.md").write_text(summary + "\n")
    (WORK / "summary.json").write_text(json.dumps(every, indent=1))
    print(summary)
    low = [r["module"] for r in results if r["score"] < args.fail_under]
    if low:
        print(f"under {args.fail_under} %: {', '.join(low)}")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
