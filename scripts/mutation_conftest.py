"""conftest.py at the root of each mutation work tree (scripts/mutation.py copies it there).

Two things make a mutant cheap to judge, without changing what judges it:

* **Tests that need no server first, a cluster last.** mutmut hands pytest each mutant's tests
  ordered by their call durations, which leave out fixture set-up: a test on a real redis-server
  (started per run) or on a Redis Cluster (six of them) could come before a fakeredis test that
  kills the mutant at once. With ``-x`` the first failure ends the run; within each group mutmut's
  order stands (a stable sort).
* **A timeout per test from its own clean duration.** A mutant that breaks a wake-up leaves a test
  waiting on its event until pytest-timeout stops it (a failure: the mutant is detected). One
  bound for every test (5 s) made each such mutant cost 5 s, most of the whole run's time; a test
  that took 0.01 s clean now fails at 2.5 s, one that took 1.5 s at 8.5 s. The durations are
  mutmut's own clean-run figures (``mutmut-stats.json``); a test without one keeps the command
  line's ``--timeout``.
"""

import json

import pytest

SERVERS = ("redis_server", "workers")  # a redis-server (~0.4 s), worker processes
TOPOLOGIES = ("cluster_setup", "sentinel_setup", "topology_setup")  # six redis-servers (~3 s)
BASE_SECONDS = 2.5  # set-up included: a redis-server and a live coherence listener take < 0.5 s
TOPOLOGY_BASE_SECONDS = 20.0  # six redis-servers and `redis-cli --cluster create`: ~3 s, more under load
PER_CLEAN_SECOND = 4.0


def _clean_durations():
    try:
        with open("mutmut-stats.json") as f:
            return json.load(f)["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return {}


def _cost(item) -> int:
    names = item.fixturenames
    return 2 if any(n in names for n in TOPOLOGIES) else 1 if any(n in names for n in SERVERS) else 0


def pytest_collection_modifyitems(items):
    durations = _clean_durations()
    for item in items:
        clean = durations.get(item.nodeid)
        if clean is not None:
            # The first test on a topology also pays for starting it (its set-up is inside the bound).
            base = TOPOLOGY_BASE_SECONDS if _cost(item) == 2 else BASE_SECONDS
            item.add_marker(pytest.mark.timeout(base + PER_CLEAN_SECOND * clean))
    items.sort(key=_cost)
