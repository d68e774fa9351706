"""Project-level pages: a home page that says where to look, and a JSON health check."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import caches
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from django.urls import Resolver404, resolve

from aicache.checks import aicache_aliases


def _redis_status() -> dict[str, str]:
    return {alias: ("ok" if caches[alias].ping() else "unreachable") for alias, _ in aicache_aliases()}


# (path, title, what it shows). Some come from apps a project may leave out (the API, the
# dashboard): the home page links only the ones this project serves.
PLACES = [
    (
        "/admin/aicache/dashboard/",
        "Dashboard",
        "hit rate, latency, savings and invalidations over time (staff)",
    ),
    (
        "/api/aicache/docs/",
        "API docs",
        "the monitoring REST API, browsable (OpenAPI; staff: log in to the admin first)",
    ),
    ("/metrics", "/metrics", "Prometheus metrics (staff login, or Authorization: Bearer METRICS_TOKEN)"),
    ("/health/", "/health/", "JSON health of the database and each cache"),
    ("/admin/", "Admin", "Django admin: monitoring history rows and users"),
]


def _served(path: str) -> bool:
    try:
        match = resolve(path)
    except Resolver404:
        return False
    return match.func.__name__ != "catch_all_view"  # the admin's catch-all resolves any /admin/ path


def home(request: HttpRequest) -> HttpResponse:
    places = [
        {"path": path, "title": title, "about": about, "served": _served(path)}
        for path, title, about in PLACES
    ]
    return render(
        request, "home.html", {"caches": _redis_status(), "places": places, "debug": settings.DEBUG}
    )


def health(request: HttpRequest) -> JsonResponse:
    """200 while the database answers; a Redis outage degrades the cache, not the site."""
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        database = "ok"
    except DatabaseError:
        database = "unreachable"
    caches_status = _redis_status()
    healthy = all(v == "ok" for v in caches_status.values())
    status = "ok" if healthy and database == "ok" else ("degraded" if database == "ok" else "down")
    return JsonResponse(
        {"status": status, "database": database, "caches": caches_status},
        status=200 if database == "ok" else 503,
    )
