"""The reference project's home page links every place to look that the project serves."""

import re

import pytest
from django.contrib import admin
from django.urls import path

from aicache_project import views
from aicache_project.views import PLACES

pytestmark = pytest.mark.django_db


# A project that serves the app alone: no monitoring API or dashboard (ROOT_URLCONF for one test).
urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    path("admin/", admin.site.urls),
]


def links(content: bytes) -> set[str]:
    return set(re.findall(r'href="([^"]+)"', content.decode()))


def test_home_links_every_place_the_reference_project_serves(client):
    page = client.get("/")
    assert page.status_code == 200
    assert links(page.content) == {path for path, _, _ in PLACES}
    for href in links(page.content):
        assert client.get(href).status_code != 404, href


def test_home_marks_what_a_project_does_not_serve(client, settings):
    settings.ROOT_URLCONF = __name__
    page = client.get("/").content.decode()
    assert links(page.encode()) == {"/health/", "/admin/"}
    for missing in ("/admin/aicache/dashboard/", "/api/aicache/docs/", "/metrics"):
        assert f"<code>{missing}</code>): not served" in page


def test_places_named_by_the_issue():
    assert [p for p, _, _ in PLACES] == [
        "/admin/aicache/dashboard/",
        "/api/aicache/docs/",
        "/metrics",
        "/health/",
        "/admin/",
    ]
