"""The reference project's home page links every place to look that the project serves."""

import re

import pytest
from django.http import HttpResponse
from django.urls import include, path

from aicache_project.views import PLACES

pytestmark = pytest.mark.django_db


def dashboard(request):
    return HttpResponse("dashboard")


# A project that also serves the dashboard (ROOT_URLCONF for one test).
urlpatterns = [
    path("admin/aicache/dashboard/", dashboard),
    path("", include("aicache_project.urls")),
]


def links(content: bytes) -> set[str]:
    return set(re.findall(r'href="([^"]+)"', content.decode()))


def test_home_links_what_the_project_serves(client):
    page = client.get("/")
    assert page.status_code == 200
    assert {"/metrics", "/health/", "/admin/"} <= links(page.content)
    for href in links(page.content):
        assert client.get(href).status_code != 404, href
    for missing in {p for p, _, _ in PLACES} - links(page.content):
        assert f"<code>{missing}</code>): not served" in page.content.decode()


def test_home_links_the_dashboard_once_served(client, settings):
    assert "/admin/aicache/dashboard/" not in links(client.get("/").content)
    settings.ROOT_URLCONF = __name__
    assert "/admin/aicache/dashboard/" in links(client.get("/").content)


def test_places_named_by_the_issue():
    assert [p for p, _, _ in PLACES] == [
        "/admin/aicache/dashboard/",
        "/api/aicache/docs/",
        "/metrics",
        "/health/",
        "/admin/",
    ]
