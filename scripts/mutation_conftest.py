"""conftest.py at the root of each mutation work tree (scripts/mutation.py copies it there).

Two things make a mutant cheap to judge, without changing what judges it, and one makes sure the
cache objects are judged at all:

* **Tests that need no server first.** mutmut hands pytest each mutant's tests ordered by their
  call durations, which leave out fixture set-up: a test on a real redis-server (started per run)
  could come before a fakeredis test that kills the mutant at once. With ``-x`` the first failure
  ends the run; within each group mutmut's order stands (a stable sort).
* **Cache objects built under the mutant, by every test.** mutmut forks each mutant's run from a
  process that already ran the tests (its stats run), so the Django cache objects built then
  (``caches["ai"]``) were inherited, and a mutant of ``AIResponseCache.__init__`` (or of anything
  it builds) was judged only by the tests that configure a cache of their own. Dropped once per
  session, they were built under the mutant, but mutmut's stats run still credited ``__init__``
  only to the tests that happened to build one (the first after a settings change): adding one
  test file to the backend's selection reordered them, and ``test_plain_api_never_unpickles``
  stopped meeting the ``"SERIALIZER"`` mutants it kills. Django's own handler for a changed
  ``CACHES`` setting now drops them before every test (autouse fixtures come first), so each test
  that uses a cache builds it, in the stats run and under each mutant alike.
* **A timeout per test from its own clean duration.** A mutant that breaks a wake-up leaves a test
  waiting on its event until pytest-timeout stops it (a failure: the mutant is detected). One
  bound for every test (5 s) made each such mutant cost 5 s, most of the whole run's time; a test
  that took 0.01 s clean now fails at 2.5 s, one that took 1.5 s at 8.5 s. The durations are
  mutmut's own clean-run figures (``mutmut-stats.json``); a test without one keeps the command
  line's ``--timeout``.
"""

import json

import pytest

SERVERS = ("redis_server", "workers", "cluster_setup", "sentinel_setup", "topology_setup")
BASE_SECONDS = 2.5  # set-up included: a redis-server and a live coherence listener take < 0.5 s
PER_CLEAN_SECOND = 4.0


def _clean_durations():
    try:
        with open("mutmut-stats.json") as f:
            return json.load(f)["duration_by_test"]
    except (OSError, ValueError, KeyError):
        return {}


def pytest_collection_modifyitems(items):
    durations = _clean_durations()
    for item in items:
        clean = durations.get(item.nodeid)
        if clean is not None:
            item.add_marker(pytest.mark.timeout(BASE_SECONDS + PER_CLEAN_SECOND * clean))
    items.sort(key=lambda item: any(name in item.fixturenames for name in SERVERS))


@pytest.fixture(autouse=True, scope="session")
def _pools_built_under_the_mutant():
    """django-redis keeps its connection pools in a process-global dict keyed by URL alone, also
    inherited from the stats run: a test whose redis-server or proxy got a port used there would
    reuse a pool built before the mutant (``Retry(NoBackoff(), 1)`` survived one run that way)."""
    from django_redis.pool import ConnectionFactory

    ConnectionFactory._pools = {}


@pytest.fixture(autouse=True)
def _caches_built_under_the_mutant():
    from django.conf import settings
    from django.test.signals import setting_changed

    setting_changed.send(sender=None, setting="CACHES", value=settings.CACHES, enter=True)
