"""Stats queries over generated history: 30 days at 1,000 cache operations per second.

The history is what ingestion and compaction leave behind: day rows for 30 days, hour rows for 30
days, minute rows for the last day, for 30 series (operations x tiers x outcomes, plus writes and
key generation). Run by `make bench` on SQLite, and on PostgreSQL through scripts/with-postgres.sh.
"""

import datetime as dt
import random

import pytest
from django.utils import timezone

from aicache.monitoring import stats
from aicache.monitoring.models import Resolution, Rollup

pytestmark = [pytest.mark.benchmark, pytest.mark.history, pytest.mark.django_db]

SERIES = [
    ("get", op, tier, outcome)
    for op in ("summarize", "qa", "sentiment")
    for tier in ("small", "medium")
    for outcome in ("hit_memory", "hit_redis", "miss")
]
SERIES += [("set", op, tier, "ok") for op in ("summarize", "qa", "sentiment") for tier in ("small", "medium")]
SERIES += [("keygen", op, "", "ok") for op in ("summarize", "qa", "sentiment")]
OPS_PER_SECOND = 1000


def _sketch(rng: random.Random, count: int) -> dict[str, int]:
    centre = rng.randint(-1300, -700)
    weights = [rng.random() for _ in range(25)]
    total = sum(weights)
    return {str(centre + i * 8): max(1, int(count * w / total)) for i, w in enumerate(weights)}


@pytest.fixture(scope="module")
def history(django_db_setup, django_db_blocker):
    rng = random.Random(1)
    now = timezone.now()
    per_series_second = OPS_PER_SECOND / len(SERIES)
    rows = []
    with django_db_blocker.unblock():
        Rollup.objects.all().delete()
        for res, periods in (
            (Resolution.DAY, 31),
            (Resolution.HOUR, 30 * 24 + 1),
            (Resolution.MINUTE, 24 * 60 + 1),
        ):
            start = stats._floor(now, res)
            for p in range(periods):
                at = start - dt.timedelta(seconds=int(res) * p)
                for kind, op, tier, outcome in SERIES:
                    n = int(per_series_second * res)
                    rows.append(
                        Rollup(
                            period_start=at,
                            resolution=res,
                            kind=kind,
                            operation=op,
                            tier=tier,
                            outcome=outcome,
                            count=n,
                            total_duration=n * 0.0002,
                            min_duration=0.000004,
                            max_duration=0.02,
                            sketch=_sketch(rng, n),
                            text_length=n * 700,
                            text_length_max=9000,
                        )
                    )
            Rollup.objects.bulk_create(rows, batch_size=2000)
            rows.clear()
        yield Rollup.objects.count()
        Rollup.objects.all().delete()


@pytest.mark.parametrize("last", ["1h", "24h", "30d"])
def test_performance_stats(benchmark, history, django_db_blocker, last):
    benchmark.group = "stats-queries"
    benchmark.extra_info["rows_in_table"] = history
    with django_db_blocker.unblock():
        result = benchmark.pedantic(
            lambda: stats.performance_stats(stats.window(last=last)), rounds=5, iterations=1
        )
    assert result["cache_hits"] > 0


def test_time_series_hourly_7d(benchmark, history, django_db_blocker):
    benchmark.group = "stats-queries"
    with django_db_blocker.unblock():
        points = benchmark.pedantic(
            lambda: stats.time_series(stats.window(last="7d"), "hour"), rounds=3, iterations=1
        )
    assert len(points) >= 7 * 24
