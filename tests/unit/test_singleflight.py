"""singleflight.lead on its own, against a scripted host, lock and coherence tier: which source each
path reports, what it asks the fail-open guard to do (and under which name), how a waiter backs off,
when the lease is renewed and when renewing stops. No Redis, no sleeps: every step is an event.

The same guarantees against a real Redis and real processes: tests/integration/test_single_flight.py.
"""

from __future__ import annotations

import contextlib
import threading
from types import SimpleNamespace

import pytest
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import LockError, RedisError

from aicache import singleflight

REQ = SimpleNamespace(key="k1")
HIT = {"answer": "landed", "cache_source": "redis"}


class Host:
    """The cache as single flight sees it; ``guarded`` fails open on Redis errors like the real one."""

    def __init__(self, reads=(), usable=True):
        self.reads = list(reads)  # what each read_redis returns, in order (then None)
        self.usable = usable
        self.guarded_calls: list[str] = []
        self.faults: list[str] = []
        self.counts: list[str] = []
        self.abandoned: list[str] = []
        self.computed = 0

    def read_redis(self, req):
        return self.reads.pop(0) if self.reads else None

    def compute_and_store(self, req, compute):
        assert req is REQ
        self.computed += 1
        return compute()

    def guarded(self, what, default, fn, *args, **kwargs):
        self.guarded_calls.append(what)
        try:
            return fn(*args, **kwargs)
        except RedisError:
            self.faults.append(what)
            return default

    def redis_usable(self):
        return self.usable

    def count(self, kind):
        self.counts.append(kind)

    def announce_abandoned(self, key):
        self.abandoned.append(key)


class Lock:
    def __init__(self, acquire=(True,), reacquire_error=None, release_error=None):
        self.acquires = list(acquire)  # each acquire's outcome: True, False or an exception
        self.reacquire_error = reacquire_error
        self.release_error = release_error
        self.reacquired = 0
        self.released = 0
        self.renewed = threading.Condition()

    def acquire(self, blocking=True):
        assert blocking is False
        outcome = self.acquires.pop(0) if len(self.acquires) > 1 else self.acquires[0]
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def reacquire(self):
        with self.renewed:
            self.reacquired += 1
            self.renewed.notify_all()
        error = self.reacquire_error
        if callable(error):
            error = error(self.reacquired)
        if error is not None:
            raise error

    def wait_renewals(self, n, timeout=5.0):
        with self.renewed:
            return self.renewed.wait_for(lambda: self.reacquired >= n, timeout)

    def release(self):
        self.released += 1
        if self.release_error is not None:
            raise self.release_error


class Tier:
    """The coherence tier's waiter: records each wait's timeout; ``on_wait`` may act (a value lands,
    the lock frees) before the waiter wakes."""

    def __init__(self, signals=False, on_wait=None, max_waits=50):
        self.signals = signals
        self.timeouts: list[float] = []
        self.on_wait = on_wait
        self.max_waits = max_waits

    @contextlib.contextmanager
    def waiter(self, key):
        assert key == REQ.key
        tier = self

        class Woken:
            def wait(self, timeout):
                tier.timeouts.append(timeout)
                if len(tier.timeouts) > tier.max_waits:
                    raise AssertionError("the waiter never stops waiting")
                if tier.on_wait:
                    tier.on_wait(len(tier.timeouts))
                return False

        yield Woken()


def answer():
    return {"answer": "computed"}


def lead(host, lock, tier=None, lease=30.0, wait_timeout=60.0, compute=answer):
    return singleflight.lead(host, REQ, compute, lock, lease, wait_timeout, tier or Tier())


@pytest.fixture
def frozen(monkeypatch):
    """A monotonic clock that never moves: deadlines depend on wait_timeout alone."""
    monkeypatch.setattr(singleflight, "time", SimpleNamespace(monotonic=lambda: 1000.0))


@pytest.fixture
def renewers(monkeypatch):
    """Every _Renewer lead starts, so a test can see its thread."""
    made = []

    class Seen(singleflight._Renewer):
        def __init__(self, *args):
            super().__init__(*args)
            made.append(self)

    monkeypatch.setattr(singleflight, "_Renewer", Seen)
    return made


# ---------------------------------------------------------------------------- without the lease
def test_redis_not_usable_computes_alone_without_touching_the_lock():
    host, lock = Host(usable=False), Lock(acquire=[AssertionError("no lock without Redis")])
    assert lead(host, lock) == ({"answer": "computed"}, "compute")
    assert host.computed == 1 and host.guarded_calls == [] and lock.released == 0


def test_a_fault_taking_the_lease_computes_alone_and_is_counted_as_the_lock():
    host, lock = Host(), Lock(acquire=[RedisConnectionError("refused")])
    assert lead(host, lock) == ({"answer": "computed"}, "compute")
    assert host.faults == ["lock"] and host.guarded_calls == ["lock"]
    assert host.computed == 1 and lock.released == 0 and host.abandoned == []


# ---------------------------------------------------------------------------- holding the lease
def test_the_holder_finds_the_value_landed_before_its_lease(renewers):
    host, lock = Host(reads=[HIT]), Lock()
    assert lead(host, lock) == (HIT, "redis")
    assert host.computed == 0 and renewers == []
    assert host.guarded_calls == ["lock", "unlock"] and lock.released == 1
    assert host.abandoned == [] and host.counts == []


def test_the_holder_computes_stores_and_releases(renewers):
    host, lock = Host(), Lock()
    assert lead(host, lock) == ({"answer": "computed"}, "compute")
    assert host.computed == 1 and host.guarded_calls == ["lock", "unlock"] and lock.released == 1
    assert host.abandoned == []  # the value landed: waiters wake on its key, not on "abandoned"
    (renewer,) = renewers
    renewer._thread.join(5)
    assert not renewer._thread.is_alive()  # stopped with the compute


def test_a_failing_compute_wakes_the_waiters_releases_and_raises():
    host, lock = Host(), Lock()

    def failing():
        raise RuntimeError("LLM down")

    with pytest.raises(RuntimeError, match="LLM down"):
        lead(host, lock, compute=failing)
    assert host.abandoned == ["k1"] and lock.released == 1


def test_a_lease_that_ran_out_is_not_a_fault_when_released():
    host, lock = Host(), Lock(release_error=LockError("cannot release an unlocked lock"))
    assert lead(host, lock) == ({"answer": "computed"}, "compute")
    assert host.faults == [] and lock.released == 1


# ---------------------------------------------------------------------------- waiting for the holder
def test_a_waiter_that_wins_the_lease_later_reports_coalesced_and_counts_one_wait(frozen):
    host, lock = Host(reads=[None, None, HIT]), Lock(acquire=[False, False, True])
    assert lead(host, lock) == (HIT, "coalesced")
    assert host.counts == ["single_flight_waits"]  # once per call, however many rounds
    assert host.guarded_calls == ["lock", "lock", "lock", "unlock"] and host.computed == 0


def test_a_waiter_that_wins_the_lease_and_finds_nothing_computes(frozen):
    host, lock = Host(), Lock(acquire=[False, True])
    assert lead(host, lock) == ({"answer": "computed"}, "compute")
    assert host.counts == ["single_flight_waits"] and host.computed == 1


def test_a_value_landing_while_waiting_is_coalesced(frozen):
    host, lock = Host(), Lock(acquire=[False])
    tier = Tier(on_wait=lambda n: host.reads.append(HIT) if n == 2 else None)
    assert lead(host, lock, tier) == (HIT, "coalesced")
    assert len(tier.timeouts) == 2 and host.computed == 0 and lock.released == 0


def test_the_wait_ends_exactly_at_wait_timeout(frozen):
    host, lock = Host(), Lock(acquire=[False])
    tier = Tier(max_waits=3)
    assert lead(host, lock, tier, wait_timeout=0) == ({"answer": "computed"}, "compute")
    assert host.counts == ["single_flight_waits", "single_flight_wait_timeouts"]
    assert tier.timeouts == [] and host.computed == 1


def test_without_signals_the_poll_doubles_from_10_ms_to_200_ms(frozen):
    host, lock = Host(), Lock(acquire=[False] * 8 + [True])
    tier = Tier(signals=False)
    lead(host, lock, tier)
    assert tier.timeouts == [0.01, 0.02, 0.04, 0.08, 0.16, 0.2, 0.2, 0.2]


def test_with_signals_the_poll_is_only_a_safety_net(frozen):
    host, lock = Host(), Lock(acquire=[False] * 3 + [True])
    tier = Tier(signals=True)
    lead(host, lock, tier)
    assert tier.timeouts == [0.5, 0.5, 0.5]


def test_a_wait_never_outlasts_the_time_left(frozen):
    host, lock = Host(), Lock(acquire=[False] * 2 + [True])
    tier = Tier(signals=True)
    lead(host, lock, tier, wait_timeout=0.3)
    assert tier.timeouts == pytest.approx([0.3, 0.3])  # the frozen clock leaves all 0.3 s each round


# ---------------------------------------------------------------------------- renewing the lease
def test_the_lease_is_renewed_every_third_while_the_compute_runs(renewers, monkeypatch):
    host, lock = Host(), Lock()
    waits = []

    class Stop(threading.Event):
        def wait(self, timeout=None):
            waits.append(timeout)
            return super().wait(timeout)

    monkeypatch.setattr(singleflight, "threading", SimpleNamespace(Event=Stop, Thread=threading.Thread))

    def slow():
        assert lock.wait_renewals(3), "the lease was not renewed"
        return {"answer": "slow"}

    assert lead(host, lock, lease=0.03, compute=slow) == ({"answer": "slow"}, "compute")
    (renewer,) = renewers
    assert renewer._thread.daemon  # never keeps a process alive at exit
    renewer._thread.join(5)
    assert not renewer._thread.is_alive()
    assert renewer.renewals == lock.reacquired >= 3
    assert waits == pytest.approx([0.01] * len(waits))  # a third of the 30 ms lease, each time
    assert set(host.guarded_calls) == {"lock", "lock_renew", "unlock"}
    assert host.faults == []


def test_a_lost_lease_stops_the_renewals(renewers):
    host, lock = Host(), Lock(reacquire_error=LockError("not owned"))

    def slow():
        assert lock.wait_renewals(1)
        renewers[0]._thread.join(5)  # it gives up by itself, while the compute still runs
        assert not renewers[0]._thread.is_alive()
        return {"answer": "slow"}

    lead(host, lock, lease=0.03, compute=slow)
    assert lock.reacquired == 1 and renewers[0].renewals == 0
    assert host.faults == []  # a lost lease is an outcome, not a Redis fault


def test_a_fault_while_renewing_keeps_trying(renewers):
    host = Host()
    lock = Lock(reacquire_error=lambda n: RedisConnectionError("blip") if n == 1 else None)

    def slow():
        assert lock.wait_renewals(3)
        return {"answer": "slow"}

    lead(host, lock, lease=0.03, compute=slow)
    renewers[0]._thread.join(5)
    assert host.faults == ["lock_renew"]
    assert renewers[0].renewals == lock.reacquired - 1
