"""The admin dashboard's figures over the same generated history as the stats queries (30 days at
1,000 cache operations per second): what one page view costs the database."""

import pytest

from aicache.monitoring import dashboard, stats
from tests.benchmarks.test_stats_queries import history  # noqa: F401  (the module's fixture)

pytestmark = [pytest.mark.benchmark, pytest.mark.history, pytest.mark.django_db]


@pytest.mark.parametrize("last", ["1h", "24h", "7d", "30d"])
def test_dashboard_figures(benchmark, history, django_db_blocker, last):  # noqa: F811
    benchmark.group = "dashboard"
    benchmark.extra_info["rows_in_table"] = history
    with django_db_blocker.unblock():
        figures = benchmark.pedantic(
            lambda: dashboard.figures(stats.window(last=last), last, live_entries=0), rounds=3, iterations=1
        )
    cards = {c.slug: c for c in figures["cards"]}
    assert cards["hit-rate"].value.endswith("%") and len(figures["line_charts"]) == 4
