"""Everything aicache serves, for one line in a project's urls.py::

    path("", include("aicache.urls")),

``/metrics`` (Prometheus) when ``aicache.monitoring`` is installed. Each part is included only when
its app is installed, so the core app alone adds no routes.
"""

from __future__ import annotations

from django.apps import apps
from django.urls import URLPattern, URLResolver, include, path

urlpatterns: list[URLPattern | URLResolver] = []

if apps.is_installed("aicache.monitoring"):
    urlpatterns += [
        path("", include("aicache.monitoring.urls")),  # /metrics (namespace aicache_monitoring)
    ]
