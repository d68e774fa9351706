"""The monitoring model admins: truly read-only, durations in ms, one rollup resolution at a time,
invalidation context and status visible and searchable."""

import datetime as dt

import pytest
from django.contrib import admin
from django.urls import reverse
from django.utils import timezone

from aicache.monitoring.admin import ms
from aicache.monitoring.models import (
    IngestionBatch,
    InvalidationEvent,
    MemorySnapshot,
    Resolution,
    Rollup,
    SlowOperation,
)
from tests.factories import (
    IngestionBatchFactory,
    InvalidationEventFactory,
    MemorySnapshotFactory,
    SlowOperationFactory,
    rollup_everywhere,
)

pytestmark = pytest.mark.django_db
MODELS = (Rollup, SlowOperation, InvalidationEvent, MemorySnapshot, IngestionBatch)


def changelist(model) -> str:
    return reverse(f"admin:aicache_monitoring_{model._meta.model_name}_changelist")


def test_ms_is_readable():
    assert ms(0.000026126000193471555) == "0.026 ms"
    assert ms(0.0123) == "12.3 ms"
    assert ms(1.204) == "1,204 ms"
    assert ms(0.0000025) == "0.0025 ms"
    assert ms(0) == "0 ms"
    assert ms(None) == "-"


@pytest.mark.parametrize("model", MODELS)
def test_every_monitoring_admin_is_view_only(rf, admin_user, model):
    model_admin = admin.site._registry[model]
    request = rf.get("/")
    request.user = admin_user  # even a superuser
    assert model_admin.has_view_permission(request)
    assert not model_admin.has_add_permission(request)
    assert not model_admin.has_change_permission(request)
    assert not model_admin.has_delete_permission(request)
    assert model_admin.get_actions(request) == {}  # no "Delete selected"


def test_deleting_an_ingestion_batch_is_refused_and_changes_nothing(admin_client):
    batch = IngestionBatchFactory()
    url = reverse("admin:aicache_monitoring_ingestionbatch_delete", args=[batch.pk])
    assert admin_client.post(url, {"post": "yes"}).status_code == 403
    response = admin_client.post(
        changelist(IngestionBatch),
        {"action": "delete_selected", "_selected_action": [batch.pk], "post": "yes"},
    )
    assert response.status_code in (200, 302)
    assert IngestionBatch.objects.filter(pk=batch.pk).exists()
    assert admin_client.get(reverse("admin:aicache_monitoring_ingestionbatch_add")).status_code == 403


def test_change_page_is_a_view_page(admin_client):
    event = InvalidationEventFactory(duration=0.0042, operation_context="via=admin user=ann")
    response = admin_client.get(reverse("admin:aicache_monitoring_invalidationevent_change", args=[event.pk]))
    assert response.status_code == 200
    body = response.content.decode()
    assert "4.2 ms" in body and "via=admin user=ann" in body
    assert 'name="_save"' not in body and "deletelink" not in body


def test_durations_show_in_ms(admin_client):
    SlowOperationFactory(duration=0.08)
    InvalidationEventFactory(duration=0.000026126000193471555)
    rollup_everywhere(timezone.now(), count=4, total_duration=0.002, min_duration=0.0001, max_duration=0.0012)
    assert "80.0 ms" in admin_client.get(changelist(SlowOperation)).content.decode()
    assert "0.026 ms" in admin_client.get(changelist(InvalidationEvent)).content.decode()
    body = admin_client.get(changelist(Rollup)).content.decode()
    assert "0.500 ms" in body and "0.100 ms" in body and "1.2 ms" in body  # avg, min, max
    assert "0.0012" not in body


def test_rollup_list_shows_one_resolution_by_default_and_the_others_one_click_away(admin_client):
    rollup_everywhere(timezone.now() - dt.timedelta(minutes=5), count=3)
    response = admin_client.get(changelist(Rollup))
    shown = response.context["cl"].result_list
    assert {r.resolution for r in shown} == {Resolution.HOUR}
    body = response.content.decode()
    for value in ("60", "3600", "86400", "all"):
        assert f"?resolution={value}" in body
    for value, expected in (("60", {60}), ("86400", {86400}), ("all", {60, 3600, 86400})):
        result = admin_client.get(changelist(Rollup), {"resolution": value}).context["cl"].result_list
        assert {r.resolution for r in result} == expected
    assert not admin_client.get(changelist(Rollup), {"resolution": "7"}).context["cl"].result_list


def test_invalidation_context_and_status_are_listed_and_searchable(admin_client):
    InvalidationEventFactory(operation_context="via=admin user=ann reason=prompt v2", status="success")
    InvalidationEventFactory(operation_context="via=api user=bob", status="failed", reason="unreachable")
    response = admin_client.get(changelist(InvalidationEvent))
    body = response.content.decode()
    assert "via=admin user=ann reason=prompt v2" in body and "failed" in body and "unreachable" in body
    for q, expected in (("ann", 1), ("prompt v2", 1), ("failed", 1), ("via=", 2), ("carol", 0)):
        assert (
            admin_client.get(changelist(InvalidationEvent), {"q": q}).context["cl"].result_count == expected
        ), q
    by_status = admin_client.get(changelist(InvalidationEvent), {"status": "failed"}).context["cl"]
    assert by_status.result_count == 1


@pytest.mark.parametrize("model", MODELS)
def test_date_hierarchy_on_every_list(admin_client, model):
    MemorySnapshotFactory()
    SlowOperationFactory()
    InvalidationEventFactory()
    IngestionBatchFactory()
    rollup_everywhere(timezone.now())
    response = admin_client.get(changelist(model))
    assert response.status_code == 200
    assert admin.site._registry[model].date_hierarchy
    year = f"{timezone.now().year}"
    assert '<nav class="toplinks">' in response.content.decode()
    assert f"__year={year}" in response.content.decode()


def test_admin_index_links_the_dashboard_and_the_entry_browser(admin_client):
    body = admin_client.get(reverse("admin:index")).content.decode()
    assert reverse("aicache_admin:dashboard") == "/admin/aicache/dashboard/"
    assert reverse("aicache_admin:entries") == "/admin/aicache/entries/"
    assert 'href="/admin/aicache/dashboard/"' in body and 'href="/admin/aicache/entries/"' in body


@pytest.mark.parametrize("model", MODELS)
def test_every_view_page_renders_without_raw_seconds(admin_client, model):
    SlowOperationFactory(duration=0.0812)
    InvalidationEventFactory(duration=0.0812)
    MemorySnapshotFactory()
    IngestionBatchFactory()
    rollup_everywhere(
        timezone.now(), count=2, total_duration=0.1624, min_duration=0.0812, max_duration=0.0812
    )
    obj = model.objects.first()
    response = admin_client.get(
        reverse(f"admin:aicache_monitoring_{model._meta.model_name}_change", args=[obj.pk])
    )
    assert response.status_code == 200
    body = response.content.decode()
    assert "0.0812" not in body and 'name="_save"' not in body
    if model in (Rollup, SlowOperation, InvalidationEvent):
        assert "81.2 ms" in body
