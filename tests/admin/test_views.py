"""Dashboard, entry browser and action views through Django's test client (fakeredis cache)."""

import re

import pytest
from django.urls import reverse

from aicache.monitoring import dashboard, stats

from .conftest import PRICES

pytestmark = pytest.mark.django_db

DASHBOARD = "/admin/aicache/dashboard/"
ENTRIES = "/admin/aicache/entries/"
INVALIDATE = "/admin/aicache/invalidate/"
DELETE = "/admin/aicache/entries/delete/"


def store(cache, operation: str, n: int) -> list[str]:
    for i in range(n):
        cache.cache_response(f"{operation} text {i}", operation, None, {"zebra": i})
    return [cache.key_generator.generate(f"{operation} text {i}", operation) for i in range(n)]


def cards(response) -> dict[str, str]:
    return {c.slug: c for c in response.context["cards"]}


def text(html: bytes) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html.decode()))


def test_cards_show_what_stats_computed(client, staff, history, ai_cache):
    store(ai_cache, "summarize", 3)
    client.force_login(staff)
    response = client.get(DASHBOARD)
    assert response.status_code == 200
    got = cards(response)
    perf = stats.performance_stats(stats.window(last="24h"))
    assert got["hit-rate"].value == dashboard.percent(perf["cache_hit_rate"]) == "65.0 %"
    assert got["memory-share"].value == "69.2 %"
    assert got["compression"].value == dashboard.size(perf["compression"]["total_bytes_saved"])
    assert got["live-entries"].value == "3"
    assert got["ingestion"].level == "warning"  # drops were reported
    page = text(response.content)
    for card in got.values():
        assert card.label in page and card.value in page


def test_operation_filter_and_window_change_the_figures(client, staff, history, ai_cache):
    client.force_login(staff)
    assert cards(client.get(DASHBOARD, {"operation": "qa"}))["hit-rate"].value == "25.0 %"
    assert cards(client.get(DASHBOARD, {"last": "1h"}))["hit-rate"].value == "69.2 %"
    assert (
        cards(client.get(DASHBOARD, {"last": "30d", "operation": "summarize"}))["hit-rate"].value == "75.0 %"
    )
    empty = client.get(DASHBOARD, {"operation": "sentiment"})
    assert cards(empty)["hit-rate"].value == "0.0 %"
    hits_misses, hit_rate = empty.context["line_charts"][:2]
    assert not hits_misses.empty and "from 0 to 0" in hits_misses.summary  # no traffic: zero, not missing
    assert hit_rate.empty and hit_rate.summary == "Hit rate: no data in this window."


@pytest.mark.parametrize(
    "query",
    [
        {"last": "2h"},
        {"operation": "Bad Op"},
        {"operation": "x" * 65},
        {"cache": "default"},
        {"last": "1h\x00"},
    ],
)
def test_bad_dashboard_input_is_a_400_naming_the_field(client, staff, query):
    client.force_login(staff)
    response = client.get(DASHBOARD, query)
    assert response.status_code == 400
    assert next(iter(query)) in text(response.content)


def test_every_chart_has_a_text_alternative(client, staff, history, ai_cache):
    client.force_login(staff)
    body = client.get(DASHBOARD).content.decode()
    for slug in (
        "hits-misses",
        "hit-rate",
        "latency",
        "invalidations",
        "top-traffic",
        "top-hit-rate",
        "top-patterns",
    ):
        figure = re.search(rf'<figure[^>]*id="chart-{slug}".*?</figure>', body, re.S).group(0)
        assert re.search(r'<svg[^>]*role="img"[^>]*aria-label="[^"]+"', figure), slug
        assert "<table>" in figure and "<desc>" in figure, slug
    assert "<script" not in body.split("<body")[1] or "http" not in re.findall(r"<script[^>]*>", body)[0]
    assert not re.search(r'(src|href)="https?://', body)  # nothing from the network


def test_anonymous_and_non_staff_are_sent_to_the_login(client, django_user_model):
    for path in (DASHBOARD, ENTRIES, INVALIDATE + "?kind=all"):
        assert client.get(path).url.startswith(reverse("admin:login"))
    django_user_model.objects.create_user("visitor", password="pw")
    client.login(username="visitor", password="pw")
    for path in (DASHBOARD, ENTRIES):
        assert client.get(path).url.startswith(reverse("admin:login"))


def test_actions_need_the_permission(client, staff, ai_cache):
    keys = store(ai_cache, "qa", 2)
    client.force_login(staff)
    body = client.get(DASHBOARD).content.decode()
    assert "data-action" not in body and "invalidate_cache" in body
    assert client.get(INVALIDATE, {"kind": "all"}).status_code == 403
    assert client.post(INVALIDATE, {"kind": "all"}).status_code == 403
    assert client.post(DELETE, {"keys": keys, "confirm": "yes"}).status_code == 403
    assert ai_cache.count_all() == 2


def test_confirmation_shows_the_count_and_changes_nothing(client, operator, ai_cache):
    store(ai_cache, "qa", 4)
    store(ai_cache, "summarize", 2)
    client.force_login(operator)
    for query, expected in (
        ({"kind": "operation", "value": "qa"}, 4),
        ({"kind": "pattern", "value": "q*"}, 4),
        ({"kind": "pattern", "value": "*"}, 6),
        ({"kind": "all"}, 6),
    ):
        response = client.get(INVALIDATE, query)
        assert response.status_code == 200
        assert response.context["count"] == expected, query
        assert f'data-count="{expected}"' in response.content.decode()
    assert ai_cache.count_all() == 6


def test_invalidating_through_the_admin_uses_the_shared_action_and_names_the_user(client, operator, ai_cache):
    store(ai_cache, "qa", 4)
    store(ai_cache, "summarize", 2)
    client.force_login(operator)
    response = client.post(
        INVALIDATE,
        {"kind": "operation", "value": "qa", "reason": "new prompt", "next": ENTRIES + "?operation=qa"},
    )
    assert response.status_code == 302 and response.url == ENTRIES + "?operation=qa"
    assert ai_cache.count_by_operation("qa") == 0 and ai_cache.count_by_operation("summarize") == 2
    event = ai_cache.monitor.export_metrics()["invalidations"][-1]
    assert event["operation_context"] == "via=admin user=operator reason=new prompt"
    assert event["invalidation_type"] == "operation" and event["keys_invalidated"] == 4
    messages = [str(m) for m in client.get(DASHBOARD).context["messages"]]
    assert messages == ["Invalidated operation 'qa': 4 entries removed."]


def test_memory_everywhere_and_all(client, operator, ai_cache):
    store(ai_cache, "qa", 3)
    client.force_login(operator)
    assert client.get(INVALIDATE, {"kind": "memory", "everywhere": "on"}).context["count"] == 3
    client.post(INVALIDATE, {"kind": "memory", "everywhere": "on"})
    assert len(ai_cache.memory) == 0 and ai_cache.count_all() == 3
    client.post(INVALIDATE, {"kind": "all"})
    assert ai_cache.count_all() == 0


@pytest.mark.parametrize(
    "data",
    [
        {"kind": "drop"},
        {"kind": "operation", "value": "Bad"},
        {"kind": "pattern", "value": "a:b"},
        {"kind": "all", "value": "qa"},
        {"kind": "operation", "value": "qa", "everywhere": "on"},
        {"kind": "operation", "value": "qa", "reason": "x" * 121},
        {"kind": "operation", "value": "qa", "reason": "a\x07b"},
    ],
)
def test_bad_invalidations_are_a_400_and_remove_nothing(client, operator, ai_cache, data):
    store(ai_cache, "qa", 2)
    client.force_login(operator)
    assert client.get(INVALIDATE, data).status_code == 400
    assert client.post(INVALIDATE, data).status_code == 400
    assert ai_cache.count_all() == 2 and len(ai_cache.memory) == 2


def test_next_never_leaves_the_site(client, operator, ai_cache):
    client.force_login(operator)
    response = client.post(INVALIDATE, {"kind": "all", "next": "https://evil.example/"})
    assert response.url == DASHBOARD
    response = client.get(INVALIDATE, {"kind": "all", "next": "//evil.example/"})
    assert response.context["back"] == DASHBOARD


def test_entry_browser_lists_pages_and_deletes_after_confirmation(client, operator, ai_cache):
    keys = store(ai_cache, "qa", 30)
    client.force_login(operator)
    first = client.get(ENTRIES, {"operation": "qa", "size": 20})
    assert len(first.context["page"].entries) == 20
    assert "page=20" in first.context["next_query"]
    second = client.get(ENTRIES + "?" + first.context["next_query"])
    assert len(second.context["page"].entries) == 10 and not second.context["next_query"]
    body = first.content.decode()
    assert "qa text" not in body and "zebra" not in body  # neither the request nor the response
    doomed = keys[:3]
    confirm = client.post(DELETE, {"keys": doomed, "next": ENTRIES})
    assert confirm.status_code == 200 and len(confirm.context["found"]) == 3
    assert ai_cache.count_by_operation("qa") == 30
    done = client.post(DELETE, {"keys": doomed, "next": ENTRIES, "confirm": "yes", "reason": "wrong"})
    assert done.status_code == 302 and done.url == ENTRIES
    assert ai_cache.count_by_operation("qa") == 27


@pytest.mark.parametrize("keys", [[], ["not-a-key"], ["other:qa:" + "ab" * 32]])
def test_bad_deletes_are_a_400(client, operator, ai_cache, keys):
    store(ai_cache, "qa", 2)
    client.force_login(operator)
    assert client.post(DELETE, {"keys": keys, "confirm": "yes"}).status_code == 400
    assert ai_cache.count_all() == 2


@pytest.mark.parametrize(
    "query",
    [
        {"size": 0},
        {"size": 501},
        {"tier": "small"},
        {"page": "x"},
        {"page": "12\n"},
        {"page": "99999999999999999999"},
        {"operation": "A"},
        {"operation": "qa!"},
    ],
)
def test_bad_entry_queries_are_a_400(client, staff, query):
    client.force_login(staff)
    assert client.get(ENTRIES, query).status_code == 400


def test_previews_only_for_superusers_and_only_when_the_setting_allows(
    client, settings, admin_user, operator, ai_cache
):
    ai_cache.cache_response("some text", "qa", None, {"answer": "the secret answer " * 20})
    client.force_login(admin_user)
    assert "secret" not in client.get(ENTRIES).content.decode()  # off by default
    settings.AICACHE = {**settings.AICACHE, "ADMIN_ENTRY_PREVIEW_CHARS": 40}
    body = client.get(ENTRIES).content.decode()
    assert "the secret answer" in body and "the secret answer " * 3 not in body  # truncated
    assert "some text" not in body  # the request's text is never stored
    client.force_login(operator)  # staff, permitted, but not a superuser
    assert "secret" not in client.get(ENTRIES).content.decode()


@pytest.fixture
def dead_redis_cache(settings):
    """caches["ai"] pointed at a port where nothing listens."""
    from django.core.cache import caches

    settings.CACHES = {
        **settings.CACHES,
        "ai": {
            "BACKEND": "aicache.backend.AIResponseCache",
            "LOCATION": "redis://127.0.0.1:9/0",
            "OPTIONS": {"MEMORY_COHERENCE": "local", "SOCKET_CONNECT_TIMEOUT": 0.2, "SOCKET_TIMEOUT": 0.2},
        },
    }
    return caches["ai"]


def test_a_dead_redis_never_breaks_the_pages(client, operator, history, dead_redis_cache):
    client.force_login(operator)
    response = client.get(DASHBOARD)
    assert response.status_code == 200  # the history still answers
    live = cards(response)["live-entries"]
    assert (live.value, live.detail, live.level) == ("-", "Redis does not answer", "critical")
    response = client.get(ENTRIES)
    assert response.status_code == 503 and "Redis did not answer" in response.content.decode()
    key = "ai_cache:qa:" + "ab" * 32
    assert client.post(DELETE, {"keys": [key], "confirm": "yes"}).status_code == 503
    event = dead_redis_cache.monitor.export_metrics()["invalidations"][-1]
    assert (event["invalidation_type"], event["status"], event["keys_invalidated"]) == ("keys", "failed", 0)
    assert event["reason"] == "ConnectionError"
    assert client.post(DELETE, {"keys": [key]}).status_code == 503
    response = client.get(INVALIDATE, {"kind": "all"})  # a failed count is said, never shown as 0
    assert response.status_code == 503 and b"Redis failed" in response.content


def test_savings_cards_come_from_stats_savings(client, settings, staff, history, ai_cache):
    client.force_login(staff)
    got = cards(client.get(DASHBOARD))
    # 25 costed hits: 16 s + 2 s of compute saved, 0.002 s spent answering them
    assert got["compute-saved"].value == "18.0 s"
    assert got["compute-saved"].detail == "25 hits saved 18.0 s of compute and took 2.0 ms themselves"
    assert (got["tokens-saved"].value, got["tokens-saved"].detail) == (
        "14,000",
        "11,500 prompt, 2,500 completion",
    )
    # no price configured: no money figure, never a made-up zero
    assert (got["money-saved"].value, got["money-saved"].detail) == (
        "-",
        "no model of these hits has a price: set MODEL_PRICES",
    )
    settings.AICACHE = {**settings.AICACHE, "MODEL_PRICES": PRICES}
    money = cards(client.get(DASHBOARD))["money-saved"]
    # gpt-4o: 10,000 prompt x 0.0025 / 1k + 2,000 completion x 0.01 / 1k; the local model has no price
    assert money.value == "0.0450 USD"
    assert money.detail == "85.7 % of the saved tokens have a price (MODEL_PRICES)"
    qa_only = cards(client.get(DASHBOARD, {"operation": "qa"}))
    assert (qa_only["compute-saved"].value, qa_only["money-saved"].value) == ("2.0 s", "-")
    nothing = cards(client.get(DASHBOARD, {"operation": "sentiment"}))
    assert nothing["tokens-saved"].detail == "no hit of a costed entry in this window"


def test_entry_browser_shows_and_filters_tags_and_invalidates_a_tag(admin_client, ai_cache):
    real_cache = ai_cache
    real_cache.cache_response("tagged text one", "qa", None, {"a": 1}, tags=["prompt:v3", "model:x"])
    real_cache.cache_response("tagged text two", "summarize", None, {"a": 2}, tags=["prompt:v3"])
    real_cache.cache_response("untagged text", "qa", None, {"a": 3})
    page = admin_client.get("/admin/aicache/entries/", {"tag": "prompt:v3"})
    assert page.status_code == 200
    body = page.content.decode()
    assert body.count("<code>prompt:v3</code>") == 2 and "<code>model:x</code>" in body
    assert "Invalidate tag prompt:v3" in body
    confirm = admin_client.get(
        "/admin/aicache/invalidate/", {"kind": "tags", "value": "prompt:v3", "cache": "ai"}
    )
    assert confirm.status_code == 200 and b"2" in confirm.content
    done = admin_client.post(
        "/admin/aicache/invalidate/", {"kind": "tags", "value": "prompt:v3", "cache": "ai", "next": "/admin/"}
    )
    assert done.status_code == 302
    assert real_cache.count_all() == 1
    (event,) = real_cache.monitor.export_metrics()["invalidations"]
    assert event["invalidation_type"] == "tags" and "via=admin" in event["operation_context"]
    assert admin_client.get("/admin/aicache/entries/", {"tag": "bad tag!"}).status_code == 400
