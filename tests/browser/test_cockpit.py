"""The admin cockpit in a real browser: headless Chromium against the live test server, a real
redis-server behind the cache, factory history in the database."""

import re

import pytest

from aicache.monitoring import sketch
from aicache.monitoring.admin import ms
from aicache.monitoring.exporter import get_exporter
from aicache.monitoring.flusher import get_flusher
from aicache.monitoring.models import InvalidationEvent
from tests.admin.conftest import MEMORY_HIT, MISS, PRICES, REDIS_HIT

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.integration]

CARDS = (
    "hit-rate",
    "memory-share",
    "latency",
    "compression",
    "invalidations",
    "memory-tier",
    "redis-memory",
    "live-entries",
    "ingestion",
    "compute-saved",
    "tokens-saved",
    "money-saved",
)
CHARTS = (
    "hits-misses",
    "hit-rate",
    "latency",
    "invalidations",
    "top-traffic",
    "top-hit-rate",
    "top-patterns",
)


def login(page, base: str, username: str, then: str) -> None:
    page.goto(f"{base}/admin/login/?next={then}")
    page.fill("#id_username", username)
    page.fill("#id_password", "pw")
    navigate(page, "input[type=submit]")
    # Django's own login page has no icon: Chromium's /favicon.ico 404 there is not ours to judge.
    page.problems.clear()


def navigate(page, selector: str) -> None:
    """Click ``selector`` and wait until the page it leads to has loaded."""
    with page.expect_navigation(wait_until="load"):
        page.click(selector)


def card(page, slug: str) -> str:
    return " ".join(page.locator(f"#card-{slug}").text_content().split())


def fill_cache(cache, operation: str, n: int) -> list[str]:
    keys = []
    for i in range(n):
        text = f"{operation} document number {i} " * (1 + i % 3)
        cache.cache_response(text, operation, None, {"answer": "x" * (50 + 400 * (i % 4))})
        keys.append(cache.key_generator.generate(text, operation))
    return keys


def ship_monitoring() -> None:
    """What the exporter thread does every FLUSH_INTERVAL, now (ingestion runs eagerly here)."""
    get_exporter().flush_now()
    flusher = get_flusher()
    assert flusher is not None, "HISTORY_ENABLED should have installed the flusher"
    flusher.flush()


def test_dashboard_shows_every_card_and_chart_with_the_history_figures(
    live_server, page, screenshot, settings, operator, history, real_ai_cache
):
    settings.AICACHE = {**settings.AICACHE, "MODEL_PRICES": PRICES}
    fill_cache(real_ai_cache, "summarize", 7)
    login(page, live_server.url, "operator", "/admin/aicache/dashboard/?last=24h")
    assert page.url.endswith("/admin/aicache/dashboard/?last=24h")
    for slug in CARDS:
        assert page.locator(f"#card-{slug}").is_visible(), slug
    assert card(page, "hit-rate").startswith("Hit rate 65.0 % 130 hits, 70 misses of 200 reads")
    assert "69.2 %" in card(page, "memory-share") and "90 of 130 hits" in card(page, "memory-share")
    memory_hit, redis_hit, miss = (
        ms(sketch.bucket_value(sketch.bucket_of(v))) for v in (MEMORY_HIT, REDIS_HIT, MISS)
    )
    # medium: 30 Redis hits; small: 90 memory hits, 70 misses, 10 Redis hits (the 162nd of 170 is a Redis hit)
    assert f"medium {redis_hit} {redis_hit} small {memory_hit} {redis_hit}" in card(page, "latency")
    assert miss != redis_hit
    assert "29.3 KB" in card(page, "compression") and "75.0 %" in card(page, "compression")
    assert "2 in the last hour, alert level normal" in card(page, "invalidations")
    assert card(page, "memory-tier").startswith("Memory tier 2.0 MB 20.0 % of its 10.0 MB budget, 50 entries")
    assert card(page, "redis-memory").startswith(
        "Redis memory 5.0 MB 10.0 % of the 50.0 MB warning threshold"
    )
    assert re.match(r"Last ingested batch \d+ s ago 1 batch", card(page, "ingestion"))
    assert card(page, "live-entries").startswith("Live entries 7 ")
    assert "dropped: 1 batch, 7 records" in card(page, "ingestion")
    assert card(page, "compute-saved").startswith("Compute time saved 18.0 s 25 hits saved 18.0 s of compute")
    assert card(page, "tokens-saved") == "Tokens saved 14,000 11,500 prompt, 2,500 completion"
    assert card(page, "money-saved").startswith(
        "Money saved 0.0450 USD 85.7 % of the saved tokens have a price"
    )
    for slug in CHARTS:
        chart = page.locator(f"#chart-{slug}")
        assert chart.is_visible(), slug
        label = chart.locator("svg.aic-wide").get_attribute("aria-label")
        assert label and "no data" not in label, (slug, label)
    assert page.locator("#chart-hits-misses svg.aic-wide path[data-series=hits]").count() == 1
    assert "summarize 160, qa 40" in page.locator("#chart-top-traffic svg.aic-wide").get_attribute(
        "aria-label"
    )
    assert "summarize 75.0 %, qa 25.0 %" in page.locator("#chart-top-hit-rate svg.aic-wide").get_attribute(
        "aria-label"
    )
    assert page.locator("#chart-top-patterns svg.aic-wide .aic-bar").count() == 2
    assert "0.25" not in page.inner_text("#slow-operations") and "250 ms" in page.inner_text(
        "#slow-operations"
    )
    assert page.problems == []
    screenshot(page, "dashboard-1280")
    page.set_viewport_size({"width": 390, "height": 844})
    page.reload()
    # nothing sticks out sideways on a phone
    assert page.evaluate("document.documentElement.scrollWidth") <= 390 + 1
    # charts switch to their narrow layout, whose text stays readable
    assert page.locator("#chart-hit-rate svg.aic-narrow").is_visible()
    assert not page.locator("#chart-hit-rate svg.aic-wide").is_visible()
    screenshot(page, "dashboard-390")
    page.set_viewport_size({"width": 1280, "height": 900})
    # dark mode: the page follows the admin's theme variables
    page.emulate_media(color_scheme="dark")
    page.reload()
    background = "getComputedStyle(document.querySelector('#card-hit-rate')).backgroundColor"
    value_color = "getComputedStyle(document.querySelector('#card-hit-rate .aic-value')).color"
    assert luminance(page.evaluate(background)) < 0.2 and luminance(page.evaluate(value_color)) > 0.8
    screenshot(page, "dashboard-dark-1280")
    page.emulate_media(color_scheme="light")
    page.reload()
    assert luminance(page.evaluate(background)) > 0.8 and luminance(page.evaluate(value_color)) < 0.2
    assert page.problems == []


def luminance(css_rgb: str) -> float:
    r, g, b = (int(v) for v in re.findall(r"\d+", css_rgb)[:3])
    return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255


def test_window_picker_and_operation_filter_change_the_figures(
    live_server, page, operator, history, real_ai_cache
):
    login(page, live_server.url, "operator", "/admin/aicache/dashboard/")
    assert card(page, "hit-rate").startswith("Hit rate 65.0 %")  # 24h by default
    navigate(page, "a[data-window='1h']")
    assert "last=1h" in page.url
    # only the recent minute: summarize 60 + 20 hits, 10 misses; qa 10 hits, 30 misses
    assert card(page, "hit-rate").startswith("Hit rate 69.2 % 90 hits, 40 misses")
    page.select_option("#id_operation", "qa")
    navigate(page, ".aic-filter input[type=submit]")
    assert "operation=qa" in page.url and "last=1h" in page.url
    assert card(page, "hit-rate").startswith("Hit rate 25.0 % 10 hits, 30 misses")
    assert "qa 40" in page.locator("#chart-top-traffic svg.aic-wide").get_attribute("aria-label")
    navigate(page, "a[data-window='7d']")
    assert "operation=qa" in page.url  # the filter survives a window change
    assert card(page, "hit-rate").startswith("Hit rate 25.0 %")
    assert page.problems == []


def test_invalidation_through_the_ui_removes_entries_and_is_listed(
    live_server, page, screenshot, operator, history, real_ai_cache
):
    fill_cache(real_ai_cache, "summarize", 30)
    fill_cache(real_ai_cache, "qa", 12)
    login(page, live_server.url, "operator", "/admin/aicache/dashboard/")
    page.select_option("#id_inv_operation", "summarize")
    navigate(page, "input[data-action=operation]")
    assert page.locator(".aic-count").get_attribute("data-count") == "30"  # the count comes first
    assert real_ai_cache.count_by_operation("summarize") == 30  # nothing removed yet
    page.fill("#id_reason", "prompt v2")
    screenshot(page, "confirm-invalidation-1280")
    navigate(page, "input[data-confirm=yes]")
    assert "/admin/aicache/dashboard/" in page.url
    assert "30 entries removed" in page.inner_text(".messagelist")
    assert real_ai_cache.count_by_operation("summarize") == 0
    assert real_ai_cache.count_by_operation("qa") == 12
    ship_monitoring()
    event = InvalidationEvent.objects.get(invalidation_type="operation", keys_invalidated=30)
    assert event.operation_context == "via=admin user=operator reason=prompt v2"
    page.goto(f"{live_server.url}/admin/aicache_monitoring/invalidationevent/?q=operator")
    rows = page.locator("#result_list tbody tr")
    assert rows.count() == 1
    assert "via=admin user=operator reason=prompt v2" in rows.first.inner_text()
    assert page.locator("select[name=action]").count() == 0  # read-only: no "Delete selected"
    assert page.problems == []


def test_entry_browser_pages_through_every_entry_and_deletes_selected(
    live_server, page, screenshot, operator, real_ai_cache
):
    keys = set(fill_cache(real_ai_cache, "summarize", 70) + fill_cache(real_ai_cache, "qa", 50))
    login(page, live_server.url, "operator", "/admin/aicache/entries/?size=40")
    seen, pages = [], 0
    while True:
        pages += 1
        rows = page.locator("tr.aic-entry")
        seen += [rows.nth(i).get_attribute("data-key") for i in range(rows.count())]
        if pages == 1:
            screenshot(page, "entries-1280")
        if page.locator("a.aic-next").count() == 0:
            break
        navigate(page, "a.aic-next")
    assert pages > 1
    assert set(seen) == keys  # SCAN may repeat a key, never miss one
    # by operation: the index pages exactly
    page.goto(f"{live_server.url}/admin/aicache/entries/?operation=qa&size=20")
    first = [r.get_attribute("data-key") for r in page.locator("tr.aic-entry").all()]
    assert len(first) == 20
    cells = page.locator("tr.aic-entry").first.inner_text()
    assert "qa" in cells and re.search(
        r"\t(memory|redis)\t\d+ B\t(none|zlib|zstd)\t29 m 5\d s\t\d+ s", cells
    ), cells
    navigate(page, "a.aic-next")
    second = [r.get_attribute("data-key") for r in page.locator("tr.aic-entry").all()]
    assert len(second) == 20 and not set(first) & set(second)
    doomed = second[:2]
    for key in doomed:
        page.check(f"tr[data-key='{key}'] input[type=checkbox]")
    navigate(page, "input[data-action=delete]")
    assert page.locator("[data-count]").first.get_attribute("data-count") == "2"
    navigate(page, "input[data-confirm=yes]")
    assert "Deleted 2 of 2 selected entries" in page.inner_text(".messagelist")
    assert real_ai_cache.count_by_operation("qa") == 48
    assert not any(real_ai_cache.redis.exists(k) for k in doomed)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{live_server.url}/admin/aicache/entries/?operation=qa&size=10")
    screenshot(page, "entries-390")
    page.set_viewport_size({"width": 1280, "height": 900})
    assert page.problems == []


def test_a_non_staff_user_is_refused(live_server, page, django_user_model, real_ai_cache):
    django_user_model.objects.create_user("visitor", password="pw")
    login(page, live_server.url, "visitor", "/admin/aicache/dashboard/")
    assert "/admin/login/" in page.url
    assert "staff account" in page.inner_text(".errornote")
    for path in (
        "/admin/aicache/dashboard/",
        "/admin/aicache/entries/",
        "/admin/aicache/invalidate/?kind=all",
    ):
        page.goto(live_server.url + path)
        assert "/admin/login/" in page.url, path
        assert page.locator("#card-hit-rate").count() == 0


def test_staff_without_the_permission_sees_no_actions_and_cannot_invalidate(
    live_server, page, staff, history, real_ai_cache
):
    fill_cache(real_ai_cache, "summarize", 3)
    login(page, live_server.url, "viewer", "/admin/aicache/dashboard/")
    assert card(page, "hit-rate").startswith("Hit rate 65.0 %")
    assert page.locator("input[data-action]").count() == 0
    response = page.goto(f"{live_server.url}/admin/aicache/invalidate/?kind=all")
    assert response.status == 403
    assert real_ai_cache.count_all() == 3
