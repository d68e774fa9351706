"""Project-level pages: a home page that says where to look, and a JSON health check."""

from __future__ import annotations

from django.conf import settings
from django.core.cache import caches
from django.db import DatabaseError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render

from aicache.checks import aicache_aliases


def _redis_status() -> dict[str, str]:
    return {alias: ("ok" if caches[alias].ping() else "unreachable") for alias, _ in aicache_aliases()}


def home(request: HttpRequest) -> HttpResponse:
    return render(request, "home.html", {"caches": _redis_status(), "debug": settings.DEBUG})


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
