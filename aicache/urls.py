"""Everything aicache serves, for one line in a project's urls.py, placed before ``admin/`` (whose
catch-all would otherwise answer ``/admin/aicache/...``)::

    urlpatterns = [path("", include("aicache.urls")), *urlpatterns]

When ``aicache.monitoring`` is installed: ``/metrics`` (Prometheus), the monitoring API under
``/api/aicache/`` (docs at ``/api/aicache/docs/``) and the admin cockpit under ``/admin/aicache/``
(dashboard, entries; staff only). The core app alone adds no routes.
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
    if apps.is_installed("django.contrib.admin"):
        urlpatterns += [
            path("admin/aicache/", include("aicache.monitoring.admin_urls")),  # namespace aicache_admin
        ]
