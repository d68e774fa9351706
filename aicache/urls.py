"""Everything aicache serves, for one line in a project's urls.py::

    path("", include("aicache.urls")),

``/metrics`` (Prometheus) and the monitoring API under ``/api/aicache/`` (docs at
``/api/aicache/docs/``) when ``aicache.monitoring`` is installed; the core app alone adds no routes.
"""

from __future__ import annotations

from django.apps import apps
from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = []

if apps.is_installed("aicache.monitoring"):
    urlpatterns += [
        path("", include("aicache.monitoring.urls")),  # /metrics (namespace aicache_monitoring)
        path("api/aicache/", include("aicache.monitoring.api.urls")),  # namespace aicache_api
    ]
