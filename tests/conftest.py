import pytest
from django.core.cache import caches

from aicache.bench.redis_server import RedisServer
from aicache.state import reset_process_state
from tests.helpers import started


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    """A real redis-server on a free loopback port for the whole session (stopped at the end)."""
    with started(RedisServer(tmp_path_factory.mktemp("redis"))) as server:
        yield server


@pytest.fixture(autouse=True)
def _fresh_process_state():
    """Every test starts with empty memory tiers, closed breakers and zeroed counters."""
    reset_process_state()
    yield
    reset_process_state()


@pytest.fixture
def ai_cache(settings):
    """The fakeredis-backed AIResponseCache, emptied before the test."""
    cache = caches["ai"]
    cache.redis.flushdb()
    return cache


@pytest.fixture
def make_cache(settings):
    """Build a fakeredis-backed AIResponseCache with extra OPTIONS (a fresh cache alias)."""
    base = settings.CACHES["ai"]

    def build(**options):
        caches_setting = dict(settings.CACHES)
        caches_setting["custom"] = {**base, "OPTIONS": {**base["OPTIONS"], **options}}
        settings.CACHES = caches_setting
        cache = caches["custom"]
        cache.redis.flushdb()
        return cache

    return build


def pytest_sessionfinish(session, exitstatus):
    """The test process must not ship monitoring batches at exit: its test database is gone."""
    from aicache.monitoring import flusher

    flusher._flusher = None


@pytest.fixture
def history_on(settings):
    """HISTORY_ENABLED on for this test (tests/settings.py keeps it off). Call it to set more of
    ``settings.AICACHE`` with it: ``history_on(FLUSH_INTERVAL=30.0)``."""

    def update(**values):
        settings.AICACHE = {**settings.AICACHE, "HISTORY_ENABLED": True, **values}
        return settings.AICACHE

    update()
    return update
