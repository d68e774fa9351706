import pytest

from aicache.monitoring.flusher import CeleryFlusher
from aicache.monitoring.recorder import CachePerformanceMonitor
from tests.helpers import FakeBroker


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/history/" in str(item.fspath):
            item.add_marker(pytest.mark.history)


@pytest.fixture
def pipeline(history_on):
    """A monitor whose drained data goes through a CeleryFlusher straight into ``ingest`` (the
    task's body), so the database sees exactly what a worker would write."""
    monitor, broker = CachePerformanceMonitor(max_measurements=100_000), FakeBroker()
    flusher = CeleryFlusher(interval=3600, max_rollups=10_000, buffer_batches=10, send=broker)

    class Pipeline:
        def __init__(self):
            self.monitor = monitor

        def flush(self):
            flusher(monitor, monitor.drain())
            flusher.flush()

    return Pipeline()
