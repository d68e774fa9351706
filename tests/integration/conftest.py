import contextlib

import pytest
from celery.contrib.testing.worker import start_worker
from django.core.cache import caches

from aicache.bench.redis_server import RedisServer
from aicache_project.celery import app as celery_app
from tests.helpers import started, tcp_proxy
from tests.integration.processes import worker_pool


def pytest_collection_modifyitems(items):
    """Mark the tests that run aicache in worker processes: mutmut's per-function test selection
    cannot see calls made there, so scripts/mutation.py rechecks survivors with ``-m processes``."""
    for item in items:
        if "workers" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.processes)


@pytest.fixture
def real_cache_settings(redis_server):
    return {
        "BACKEND": "aicache.backend.AIResponseCache",
        "LOCATION": f"{redis_server.url}/0",
        "OPTIONS": {
            "CIRCUIT_BREAKER_RESET_SECONDS": 0.5,
            "SOCKET_TIMEOUT": 0.5,
            "SOCKET_CONNECT_TIMEOUT": 0.5,
        },
    }


@pytest.fixture
def real_cache(settings, redis_server, real_cache_settings):
    """caches["ai"] on the real redis-server, database emptied."""
    if redis_server.process is None:
        redis_server.start()
    settings.CACHES = {**settings.CACHES, "ai": real_cache_settings}
    cache = caches["ai"]
    cache.redis.flushdb()
    assert cache.start_coherence(wait=5) == "live"
    yield cache
    if redis_server.process is None:  # a test stopped it: bring it back for the next one
        redis_server.start()


@pytest.fixture
def cache_with(settings, redis_server):
    """``build(alias="configured", db=0, **options)``: a cache of its own on the real redis-server
    (database emptied), ``MEMORY_COHERENCE="local"`` unless ``options`` say otherwise."""

    def build(alias="configured", db=0, **options):
        settings.CACHES = {
            **settings.CACHES,
            alias: {
                "BACKEND": "aicache.backend.AIResponseCache",
                "LOCATION": f"{redis_server.url}/{db}",
                "OPTIONS": {"MEMORY_COHERENCE": "local", **options},
            },
        }
        cache = caches[alias]
        cache.redis.flushdb()
        return cache

    return build


@pytest.fixture
def workers(redis_server, real_cache):
    """Start n worker processes on the real Redis, each with a live coherence listener."""
    with worker_pool(f"{redis_server.url}/0") as start:
        yield start


@pytest.fixture
def proxied_cache(settings, redis_server):
    """``build(alias="proxied", *, accept_only=False, live=False, **options)``: ``(caches[alias],
    proxy)``, a cache whose Redis is reached through a ``tests.helpers.TcpProxy`` (delay it,
    black-hole it, or, with ``accept_only``, a Redis that accepts connections and never answers).
    ``options`` are the cache's whole OPTIONS: none means aicache's own defaults. ``live`` waits
    for the coherence listener's first proof. Every proxy is stopped after the test."""
    with contextlib.ExitStack() as proxies:

        def build(alias: str = "proxied", *, accept_only: bool = False, live: bool = False, **options):
            proxy = proxies.enter_context(tcp_proxy("127.0.0.1", redis_server.port))
            proxy.accept_only = accept_only
            config = {"BACKEND": "aicache.backend.AIResponseCache", "LOCATION": f"{proxy.url}/0"}
            settings.CACHES = {
                **settings.CACHES,
                alias: {**config, **({"OPTIONS": options} if options else {})},
            }
            cache = caches[alias]
            if not accept_only:
                cache.redis.flushdb()
            if live:
                assert cache.start_coherence(wait=5) == "live"
            return cache, proxy

        yield build


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    """The Celery broker: its own redis-server, so a test can stop it while the cache works on."""
    with started(RedisServer(tmp_path_factory.mktemp("broker"))) as server:
        yield server


@pytest.fixture
def celery_worker(broker, history_on):
    if broker.process is None:
        broker.start()
    url = f"{broker.url}/0"
    broker.client().flushdb()  # no message left over from an earlier test
    if celery_app.conf.broker_url != url:
        # Publishers must use this broker, not a connection pool made for an earlier one.
        celery_app._pool = None
        celery_app.amqp._producer_pool = None
    celery_app.conf.update(
        broker_url=url,
        task_always_eager=False,
        result_backend=None,
        broker_connection_retry=True,
        broker_connection_max_retries=None,
    )
    with start_worker(
        celery_app,
        pool="solo",
        perform_ping_check=False,
        queues=["aicache_monitoring", "celery"],
        shutdown_timeout=20,
    ) as worker:
        yield worker
    celery_app.conf.update(task_always_eager=True, broker_url="memory://")
