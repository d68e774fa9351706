import pytest

from aicache.monitoring.flusher import CeleryFlusher
from aicache.monitoring.ingest import ingest
from aicache.monitoring.recorder import CachePerformanceMonitor


def pytest_collection_modifyitems(items):
    for item in items:
        if "tests/history/" in str(item.fspath):
            item.add_marker(pytest.mark.history)


@pytest.fixture
def pipeline(settings):
    """A monitor whose drained data goes through a CeleryFlusher straight into ``ingest`` (the
    task's body), so the database sees exactly what a worker would write."""
    settings.AICACHE = {**settings.AICACHE, "HISTORY_ENABLED": True}
    sent = []

    def send(payload):
        sent.append(payload)
        ingest(payload)

    monitor = CachePerformanceMonitor(max_measurements=100_000)
    flusher = CeleryFlusher(interval=3600, max_rollups=10_000, buffer_batches=10, send=send)

    class Pipeline:
        def __init__(self):
            self.monitor, self.flusher, self.sent = monitor, flusher, sent

        def flush(self):
            flusher(monitor, monitor.drain())
            flusher.flush()

    return Pipeline()
