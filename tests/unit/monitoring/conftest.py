import pytest

from aicache.monitoring import readings, recorder
from tests.helpers import FakeClock

T0 = 1_795_000_020.0  # a whole minute (2026-11-18)


@pytest.fixture
def clock(monkeypatch):
    """The recorder's and the readings' clock, at T0 until the test moves it."""
    c = FakeClock(T0)
    monkeypatch.setattr(recorder, "time", c)
    monkeypatch.setattr(readings, "time", c)
    return c
