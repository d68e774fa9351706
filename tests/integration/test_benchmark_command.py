"""manage.py aicache_benchmark runs, reports the machine, ratios and targets, and rejects bad input."""

import json
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

pytestmark = pytest.mark.integration


def test_smoke_run_of_some_groups(tmp_path, redis_server):
    """The report's layout, end to end, in seconds (--smoke: a token few calls per case)."""
    out = StringIO()
    path = tmp_path / "bench.json"
    call_command(
        "aicache_benchmark",
        "--smoke",
        "--only",
        "keys",
        "compression",
        "--redis-url",
        f"{redis_server.url}/5",
        "--json",
        str(path),
        stdout=out,
        stderr=StringIO(),
    )
    text = out.getvalue()
    assert "## Machine" in text and "## Key generation" in text and "## Compression" in text
    data = json.loads(path.read_text())
    assert data["machine"]["cpu_count"] and data["machine"]["libraries"]["django"].startswith("5.2")
    assert {r["algorithm"] for r in data["compression"]["codecs"]} == {"zlib", "zstd"}
    assert any(t["target"].startswith("zlib-6 stores") for t in data["targets"])
    assert len(data["keys"]) == 10 and all(r["p50_us"] > 0 for r in data["keys"])


def test_seed_scenario_quick(redis_server):
    out = StringIO()
    call_command(
        "aicache_benchmark",
        "--only",
        "seed",
        "--latency",
        "0.01",
        "--redis-url",
        f"{redis_server.url}/5",
        "--json",
        "-",
        stdout=out,
        stderr=StringIO(),
    )
    seed = json.loads(out.getvalue())["seed"]
    assert seed["no_cache"]["model_calls"] == 1000
    assert seed["aicache_cold"]["model_calls"] == 50  # one model call per distinct request
    assert seed["aicache_cold"]["hit_ratio"] == 0.95 and seed["aicache_warm"]["hit_ratio"] == 1.0


@pytest.mark.parametrize("args", [["--latency", "-1"], ["--only", "nonsense"]])
def test_bad_arguments(args):
    with pytest.raises((CommandError, SystemExit)):
        call_command("aicache_benchmark", *args, stdout=StringIO(), stderr=StringIO())


def test_smoke_run_of_the_shape_targets_and_dictionaries(redis_server):
    """The issue-14 groups end to end: every shape and size, a trained dictionary, the targets."""
    out = StringIO()
    call_command(
        "aicache_benchmark",
        "--smoke",
        "--only",
        "shapes",
        "dictionaries",
        "--redis-url",
        f"{redis_server.url}/6",
        "--json",
        "-",
        stdout=out,
        stderr=StringIO(),
    )
    data = json.loads(out.getvalue())
    rows = data["shapes"]
    from aicache.bench.report import _nominal

    assert {(r["shape"], _nominal(r)) for r in rows} == {
        (shape, size) for shape in ("prose", "fields", "cyrillic") for size in (800, 5000, 50000)
    }
    assert all(r["trained"] == "trained" and r["memory_usage"]["aicache_bytes"] > 0 for r in rows)
    assert all(r["dictionary"] for r in rows if r["response_bytes"] < 16384)  # small answers use it
    assert sum(t["target"].startswith("stored value") for t in data["targets"]) == 6
    assert len(data["dictionaries"]) == 3 * 5 * 3  # shapes x sizes x (plain, dictionary, codec default)
