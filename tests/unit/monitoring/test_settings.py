"""Monitoring settings: each one given in a cache's OPTIONS is honoured for that cache, or refused by
a system check; history without a usable broker is a warning (aicache.W010), not a hang."""

import importlib
import logging

import pytest

from aicache import checks, conf
from aicache.monitoring import checks as monitoring_checks
from aicache.monitoring import exporter as exporter_module
from aicache.monitoring import flusher as flusher_module
from aicache.monitoring.exporter import Exporter
from aicache_project.celery import app as celery_app
from tests.helpers import FakeBroker, FakeClock, wait_for


@pytest.fixture
def fresh_exporter(monkeypatch):
    """A process-wide exporter and flusher of this test's own (the real ones serve other tests)."""
    exporter = Exporter()
    monkeypatch.setattr(exporter_module, "exporter", exporter)
    monkeypatch.setattr(flusher_module, "_flusher", None)
    yield exporter
    exporter.stop()


# setting -> (value, monitor attribute that must carry it)
PER_CACHE = {
    "MONITOR_RETENTION_HOURS": (3, "retention_hours"),
    "MONITOR_MAX_MEASUREMENTS": (7, "max_measurements"),
    "KEY_GENERATION_THRESHOLD": (0.3, "key_generation_threshold"),
    "CACHE_OPERATION_THRESHOLD": (0.2, "cache_operation_threshold"),
    "INVALIDATION_RATE_WARNING_PER_HOUR": (5, "invalidation_rate_warning_per_hour"),
    "INVALIDATION_RATE_CRITICAL_PER_HOUR": (500, "invalidation_rate_critical_per_hour"),
    "MEMORY_WARNING_THRESHOLD_BYTES": (1234, "memory_warning_threshold_bytes"),
}


@pytest.mark.parametrize("setting", sorted(PER_CACHE))
def test_monitor_settings_in_options_are_honoured(make_cache, fresh_exporter, setting):
    value, attribute = PER_CACHE[setting]
    assert conf.DEFAULTS[setting] != value
    cache = make_cache(**{setting: value})
    assert getattr(cache.monitor, attribute) == value
    assert checks.check_aicache_settings() == []


def test_monitor_class_in_options_is_honoured(make_cache, fresh_exporter):
    from aicache.instrument import NullMonitor

    assert isinstance(make_cache(MONITOR_CLASS=None).monitor, NullMonitor)


def test_memory_sample_seconds_in_options_is_honoured(make_cache, fresh_exporter):
    cache = make_cache(MEMORY_SAMPLE_SECONDS=42.0)
    monitor = cache.monitor
    (watched,) = [w for w in fresh_exporter._watched if w.monitor is monitor]
    assert watched.sample_seconds == 42.0


def test_metrics_export_seconds_above_one_is_honoured(make_cache, fresh_exporter):
    make_cache(METRICS_EXPORT_SECONDS=5.0).monitor
    assert fresh_exporter.interval == 5.0
    make_cache(METRICS_EXPORT_SECONDS=2.5, KEY_PREFIX="other").monitor
    assert fresh_exporter.interval == 2.5  # one exporter per process: the most frequent wins


def test_global_metrics_export_seconds_above_one_is_honoured(settings, make_cache, fresh_exporter):
    settings.AICACHE = {**settings.AICACHE, "METRICS_EXPORT_SECONDS": 3.0}
    make_cache().monitor
    assert fresh_exporter.interval == 3.0


def test_history_enabled_in_options_is_honoured(settings, make_cache, fresh_exporter):
    settings.AICACHE = {**settings.AICACHE, "HISTORY_ENABLED": False}
    on = make_cache(HISTORY_ENABLED=True).monitor
    assert on.history_enabled is True
    flusher = flusher_module.get_flusher()
    assert flusher is not None and flusher in fresh_exporter._sinks  # installed for this cache
    off = make_cache(HISTORY_ENABLED=False, KEY_PREFIX="off").monitor
    assert off.history_enabled is False
    for monitor in (on, off):
        monitor.record_lookup("qa", "small", "redis", 0.001, None, 10)
    assert flusher.collect(on, on.drain()) is not None
    assert flusher.collect(off, off.drain()) is False  # this cache's records are not shipped
    assert [k[1] for k in flusher._rollups] == ["get"]


@pytest.mark.parametrize("setting", conf.PROCESS_WIDE_SETTINGS)
def test_process_wide_settings_in_options_are_refused(settings, setting):
    value = {"METRICS_TOKEN": "t", "METRICS_PUBLIC": True, "FLUSH_INTERVAL": 5.0, "MODEL_PRICES": {}}.get(
        setting, 3
    )
    settings.CACHES = {
        **settings.CACHES,
        "ai": {**settings.CACHES["ai"], "OPTIONS": {**settings.CACHES["ai"]["OPTIONS"], setting: value}},
    }
    messages = checks.check_aicache_settings()
    assert [m.id for m in messages] == ["aicache.E012"]
    assert setting in messages[0].msg and messages[0].obj == "ai" and "settings.AICACHE" in messages[0].hint


def test_process_wide_settings_are_fine_globally(settings):
    settings.AICACHE = {**settings.AICACHE, "METRICS_TOKEN": "t", "FLUSH_INTERVAL": 5.0}
    assert checks.check_aicache_settings() == []


@pytest.fixture
def broker():
    """Set the project's Celery app as a process without eager tasks would see it."""
    saved = {"task_always_eager": celery_app.conf.task_always_eager, "broker_url": celery_app.conf.broker_url}

    def configure(url):
        celery_app.conf.update(task_always_eager=False, broker_url=url)

    yield configure
    celery_app.conf.update(**saved)


@pytest.mark.parametrize(
    "url,problem",
    [
        (None, "no Celery broker is configured"),
        ("", "no Celery broker is configured"),
        ("sqs://", "transport cannot be imported"),  # kombu's SQS transport needs boto3/botocore
        ("nosuchtransport://x", "not usable"),
    ],
)
def test_history_without_a_usable_broker_is_a_warning(settings, history_on, broker, url, problem):
    broker(url)
    messages = monitoring_checks.check_history_wiring()
    assert [m.id for m in messages] == [monitoring_checks.W_NO_BROKER]
    assert problem in messages[0].msg and messages[0].hint == monitoring_checks.W_NO_BROKER_HINT
    settings.AICACHE = {**settings.AICACHE, "HISTORY_ENABLED": False}
    assert monitoring_checks.check_history_wiring() == []


def test_history_with_a_broker_passes_the_check(history_on, broker):
    broker("redis://127.0.0.1:1/0")  # nothing listens there: the check connects to nothing
    assert monitoring_checks.check_history_wiring() == []


def test_history_without_a_broker_is_off_with_one_warning(
    history_on, broker, make_cache, fresh_exporter, caplog
):
    broker(None)
    flusher_module._warned.clear()
    with caplog.at_level(logging.WARNING, logger="aicache.monitoring"):
        make_cache().monitor
        make_cache(KEY_PREFIX="second").monitor
    assert flusher_module.get_flusher() is None  # history off: nothing to ship, nothing at exit
    assert not any(isinstance(s, flusher_module.CeleryFlusher) for s in fresh_exporter._sinks)
    warnings = [r.getMessage() for r in caplog.records if "history is off" in r.getMessage()]
    assert len(warnings) == 1 and "no Celery broker is configured" in warnings[0]


def test_reference_project_reads_metrics_token_from_the_environment(monkeypatch):
    import aicache_project.settings as project

    monkeypatch.setenv("METRICS_TOKEN", "from-env")
    try:
        assert importlib.reload(project).AICACHE["METRICS_TOKEN"] == "from-env"
        monkeypatch.delenv("METRICS_TOKEN")
        assert importlib.reload(project).AICACHE["METRICS_TOKEN"] == ""
    finally:
        importlib.reload(project)


def test_memory_sample_seconds_spaces_the_samples(make_cache, fresh_exporter, monkeypatch):
    clock = FakeClock(1000.0, wall_offset=1_795_000_000.0)
    monkeypatch.setattr(exporter_module, "time", clock)
    cache = make_cache(MEMORY_SAMPLE_SECONDS=42.0)
    monitor = cache.monitor  # registers with the exporter
    sampled = []
    record = monitor.record_memory_usage
    monkeypatch.setattr(
        monitor, "record_memory_usage", lambda *a, **k: sampled.append(clock.now) or record(*a)
    )
    for now in (1000.0, 1010.0, 1041.9, 1042.0, 1083.9, 1084.0):
        clock.now = now
        fresh_exporter.flush_now()
    assert sampled == [1000.0, 1042.0, 1084.0]


def test_flush_interval_spaces_the_batches(history_on, make_cache, fresh_exporter, monkeypatch):
    history_on(FLUSH_INTERVAL=30.0)
    clock = FakeClock(1000.0, wall_offset=1_795_000_000.0)
    monkeypatch.setattr(flusher_module, "time", clock)
    monkeypatch.setattr(flusher_module, "broker_problem", lambda: None)
    cache = make_cache()
    cache.monitor  # installs this process's flusher
    flusher = flusher_module.get_flusher()
    assert flusher is not None and flusher.interval == 30.0
    sent = []
    flusher._send = sent.append
    try:
        for now, batches in ((1010.0, 0), (1029.9, 0), (1030.0, 1), (1059.0, 1), (1060.0, 2)):
            clock.now = now
            cache.get_cached_response(f"text {now}", "summarize")  # something to ship
            fresh_exporter.flush_now()
            if batches:
                wait_for(lambda b=batches: len(sent) >= b, what=f"{batches} batch(es) sent")
            assert len(sent) == batches, now
    finally:
        flusher_module._flusher = None


def test_flush_max_rollups_sends_a_batch_early(history_on, make_cache, fresh_exporter, monkeypatch):
    """FLUSH_MAX_ROLLUPS, read where the process's flusher is installed: a batch holding that many
    rollups goes out at once, long before FLUSH_INTERVAL."""
    history_on(FLUSH_MAX_ROLLUPS=3, FLUSH_INTERVAL=3600.0)
    monkeypatch.setattr(flusher_module, "broker_problem", lambda: None)
    sent = []
    monkeypatch.setattr(flusher_module, "_send_with_celery", sent.append)
    monitor = make_cache().monitor  # installs this process's flusher
    flusher = flusher_module.get_flusher()
    assert flusher is not None
    for operation in ("one", "two"):  # a get rollup each: 2 pending, below the bound
        monitor.record_lookup(operation, "small", "redis", 0.001, None, 10)
    fresh_exporter.flush_now()
    assert flusher.waiting == 0 and sent == []  # not sealed: nothing can be on its way
    monitor.record_lookup("three", "small", "redis", 0.001, None, 10)
    fresh_exporter.flush_now()  # 3 rollups: sealed, and the sender thread woken
    wait_for(lambda: sent, what="the full batch, sent by the sender thread")
    assert sorted(r[2] for r in sent[0]["rollups"]) == ["one", "three", "two"]


def test_flush_buffer_batches_bounds_the_outbox(history_on, make_cache, fresh_exporter, monkeypatch):
    """FLUSH_BUFFER_BATCHES, read where the process's flusher is installed: with the broker down,
    that many batches wait; older ones are dropped and counted."""
    history_on(FLUSH_BUFFER_BATCHES=2, FLUSH_INTERVAL=3600.0)
    monkeypatch.setattr(flusher_module, "broker_problem", lambda: None)
    broker = FakeBroker()
    broker.up = False
    monkeypatch.setattr(flusher_module, "_send_with_celery", broker)
    monitor = make_cache().monitor  # installs this process's flusher
    flusher = flusher_module.get_flusher()
    assert flusher is not None
    for i in range(5):
        monitor.record_lookup(f"op{i}", "small", "redis", 0.001, None, 10)
        fresh_exporter.flush_now(ship=False)  # collected, not shipped: this thread sends below
        assert flusher.flush() is False
    assert (flusher.waiting, flusher.dropped_batches, flusher.failures) == (2, 3, 5)
