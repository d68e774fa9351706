"""The aicache_* operator commands through call_command, with their output checked."""

import datetime as dt
import getpass
import json
import os
import subprocess
import sys
from io import StringIO
from pathlib import Path

import pytest
from celery import current_app
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from aicache.bench.redis_server import free_port
from aicache.monitoring import stats
from aicache.monitoring.models import InvalidationEvent, Resolution, Rollup, SlowOperation
from tests.factories import InvalidationEventFactory, RollupFactory, SlowOperationFactory, rollup_everywhere

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[2]
COMMANDS = {
    "aicache_stats": ["--last", "2h"],
    "aicache_invalidate": ["--operation", "Bad Op", "--yes"],
    "aicache_cleanup": ["--dry-run", "--keep-days", "3"],
    "aicache_compact": ["--now"],
    "aicache_status": ["--worker-timeout", "soon"],
    "aicache_export": ["--format", "xml"],
    "aicache_demo": ["--requests", "0"],
}
TEXT = "Caching makes repeated answers fast and cheap; it is a good idea for most services."


def run(name, *args):
    out, err = StringIO(), StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue()


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_help(name, capsys):
    with pytest.raises(SystemExit) as exit_info:
        call_command(name, "--help")
    assert exit_info.value.code == 0
    printed = capsys.readouterr().out
    assert printed.startswith("usage: ") and name in printed and len(printed) > 200


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_bad_arguments_exit_non_zero_with_usage(name):
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "manage.py", name, *COMMANDS[name]],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.startswith("usage: ") and "error:" in done.stderr and done.stdout == ""


@pytest.fixture
def history():
    at = timezone.now() - dt.timedelta(minutes=10)
    rollup_everywhere(period_start=at, outcome="hit_memory", count=75, sketch={"-300": 75})
    rollup_everywhere(period_start=at, outcome="miss", count=25, sketch={"-200": 25})
    rollup_everywhere(period_start=at, kind="compress", outcome="ok", count=4, bytes_in=4000, bytes_out=1000)
    InvalidationEventFactory(timestamp=at, keys_invalidated=3)


@pytest.mark.history
def test_stats_table(history):
    out = run("aicache_stats", "--last", "1h")
    assert "hit rate: 75.0 %" in out and "hits: 75" in out and "misses: 25" in out
    tier_line = next(line for line in out.splitlines() if line.startswith("small"))
    p50 = stats.latency_by_tier(stats.window(last="1h"))["small"]["p50"]
    assert tier_line.split()[:3] == ["small", "100", f"{p50 * 1000:.3f}"]
    assert "bytes saved by compression: 3000 (75.0 %)" in out
    assert "invalidations: 1 removing 3 keys" in out
    assert "recommendations: none" in out


@pytest.mark.history
def test_stats_json_is_only_json(history):
    data = json.loads(run("aicache_stats", "--last", "1h", "--operation", "summarize", "--json"))
    assert (data["cache_hits"], data["cache_misses"], data["source"]) == (75, 25, "database")
    assert data["latency_by_tier"]["small"]["count"] == 100


def test_stats_bad_window_is_a_command_error():
    with pytest.raises(CommandError, match="since must be before until"):
        run("aicache_stats", "--since", "2026-01-02T00:00:00Z", "--until", "2026-01-01T00:00:00Z")


def _fill(cache):
    for i in range(3):
        cache.cache_response(f"{TEXT} {i}", "summarize", None, {"summary": str(i)})
    cache.cache_response(TEXT, "sentiment", None, {"label": "positive"})


def test_invalidate_dry_run_only_counts(ai_cache):
    _fill(ai_cache)
    out = run("aicache_invalidate", "--operation", "summarize", "--dry-run")
    assert out.splitlines() == ["operation 'summarize': 3 entries now", "dry run: nothing removed"]
    assert ai_cache.count_all() == 4


def test_invalidate_with_yes_removes_and_records_who(ai_cache):
    _fill(ai_cache)
    out = run("aicache_invalidate", "--pattern", "summ*", "--yes", "--reason", "prompt v2")
    assert "pattern 'summ*': 3 entries now" in out and "removed 3" in out
    assert ai_cache.count_all() == 1
    (event,) = ai_cache.monitor.export_metrics()["invalidations"]
    assert event["operation_context"] == f"via=command user={getpass.getuser()} reason=prompt v2"


@pytest.mark.parametrize("answer,left", [("n", 4), ("", 4), ("y", 0)])
def test_invalidate_asks_first(ai_cache, monkeypatch, answer, left):
    _fill(ai_cache)
    asked = []
    monkeypatch.setattr("builtins.input", lambda prompt: asked.append(prompt) or answer)
    if left:
        with pytest.raises(CommandError, match="aborted"):
            run("aicache_invalidate", "--all")
    else:
        assert "removed 4" in run("aicache_invalidate", "--all")
    assert asked == ["Invalidate them? [y/N] "] and ai_cache.count_all() == left


def test_invalidate_by_tag(ai_cache):
    ai_cache.cache_response(f"{TEXT} tagged", "qa", None, {"a": 1}, tags=["prompt:v3"])
    _fill(ai_cache)
    out = run("aicache_invalidate", "--tag", "prompt:v3", "--tag", "unused", "--yes")
    assert "every entry tagged 'prompt:v3', 'unused': 1 entries now" in out and "removed 1" in out
    assert ai_cache.count_all() == 4
    (event,) = ai_cache.monitor.export_metrics()["invalidations"]
    assert event["invalidation_type"] == "tags"


def test_invalidate_memory_everywhere(ai_cache):
    _fill(ai_cache)
    assert "removed 4" in run("aicache_invalidate", "--memory", "--everywhere", "--yes")
    assert len(ai_cache.memory) == 0 and ai_cache.count_all() == 4


@pytest.mark.parametrize(
    "args,message",
    [
        (["--all", "--everywhere", "--yes"], "--everywhere goes with --memory"),
        (["--pattern", "ai_cache:*", "--yes"], "must be a glob"),
        (["--all", "--reason", "r" * 200, "--yes"], "reason must be at most"),
        (["--all", "--cache", "default", "--yes"], "--cache must name an aicache cache"),
        ([], "one of the arguments"),
        (["--all", "--operation", "qa"], "not allowed with"),
    ],
)
def test_invalidate_bad_arguments_change_nothing(ai_cache, args, message):
    _fill(ai_cache)
    with pytest.raises(CommandError, match=message):
        run("aicache_invalidate", *args)
    assert ai_cache.count_all() == 4


@pytest.mark.history
def test_cleanup_dry_run_then_for_real():
    old = timezone.now() - dt.timedelta(days=30)
    SlowOperationFactory(timestamp=old)
    SlowOperationFactory()
    InvalidationEventFactory(timestamp=old)
    RollupFactory(period_start=timezone.now() - dt.timedelta(days=200))
    dry = run("aicache_cleanup", "--dry-run")
    assert "would delete 1 slow operations" in dry and "would delete 1 rollups" in dry
    assert "would delete 3 rows in all" in dry
    assert (SlowOperation.objects.count(), Rollup.objects.count()) == (2, 1)
    done = run("aicache_cleanup")
    assert "deleted 1 invalidation events" in done and "deleted 3 rows in all" in done
    assert (SlowOperation.objects.count(), InvalidationEvent.objects.count(), Rollup.objects.count()) == (
        1,
        0,
        0,
    )


@pytest.mark.history
def test_compact_folds_old_minutes():
    old = timezone.now() - dt.timedelta(hours=30)
    rollup_everywhere(period_start=old)
    rollup_everywhere(period_start=timezone.now() - dt.timedelta(minutes=5))
    assert run("aicache_compact").strip() == "folded 1 minute rollups into their hours"
    assert Rollup.objects.filter(resolution=Resolution.MINUTE).count() == 1


@pytest.mark.integration
def test_status_healthy_and_json(wired):
    RollupFactory()
    out = run("aicache_status", "--worker-timeout", "0.2")
    assert "[ok  ] cache ai: Redis" in out and "[ok  ] broker (redis)" in out
    assert "Celery workers seen: none" in out and "aicache_monitoring_rollup 1" in out
    assert out.splitlines()[-1] == "healthy"
    data = json.loads(run("aicache_status", "--json", "--worker-timeout", "0.2"))
    assert data["healthy"] is True and data["tables"]["aicache_monitoring_rollup"] == 1
    assert data["workers"] == []


@pytest.mark.integration
def test_status_unhealthy_exits_non_zero_after_printing_json(wired, monkeypatch, history_on_for_health):
    monkeypatch.setattr(current_app.conf, "broker_url", f"redis://127.0.0.1:{free_port()}/1")
    out = StringIO()
    with pytest.raises(CommandError, match="not healthy: broker unreachable"):
        call_command("aicache_status", "--json", stdout=out, stderr=StringIO())
    data = json.loads(out.getvalue())
    assert data["healthy"] is False and data["broker"]["ok"] is False and data["caches"][0]["ok"] is True


@pytest.mark.history
def test_export_to_stdout_and_to_a_file(tmp_path):
    rollup_everywhere(period_start=timezone.now() - dt.timedelta(minutes=5), count=9)
    InvalidationEventFactory()
    data = json.loads(run("aicache_export", "--format", "json", "--last", "1h"))
    assert [r["count"] for r in data["rollups"]] == [9] and len(data["invalidations"]) == 1
    target = tmp_path / "out.csv"
    out = run("aicache_export", "--format", "csv", "--output", str(target))
    lines = target.read_text().splitlines()
    assert out.strip() == f"wrote {len(target.read_bytes())} bytes of csv to {target}"
    assert lines[0].startswith("record,") and [line.split(",")[0] for line in lines[1:]] == [
        "rollup",
        "invalidation",
    ]


def test_export_to_a_directory_is_refused(tmp_path):
    with pytest.raises(CommandError, match="is a directory"):
        run("aicache_export", "--format", "csv", "--output", str(tmp_path))


def test_demo_single_flight_and_summary(ai_cache):
    data = json.loads(
        run(
            "aicache_demo",
            "--requests",
            "60",
            "--patterns",
            "6",
            "--concurrency",
            "4",
            "--latency",
            "0.01",
            "--json",
        )
    )
    assert data["requests"] == 60 and data["distinct_requests"] <= 6
    assert data["model_calls"] == data["distinct_requests"]  # one model call per distinct request
    assert data["model_calls_avoided"] == 60 - data["model_calls"]
    assert sum(data["answered_by"].values()) == 60 and data["answered_by"]["compute"] == data["model_calls"]
    assert data["hit_rate_percent"] == pytest.approx((60 - data["model_calls"]) / 60 * 100)
    assert ai_cache.count_all() == data["distinct_requests"]
    perf = ai_cache.monitor.get_performance_stats()
    assert perf["cache_hits"] + perf["cache_misses"] >= 60


def test_demo_table(ai_cache):
    out = run("aicache_demo", "--requests", "10", "--patterns", "2", "--concurrency", "2", "--latency", "0")
    assert out.startswith("10 requests (") and "model calls" in out and "hit rate" in out
