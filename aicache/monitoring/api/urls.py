"""The monitoring API. A project mounts it with
``path("api/aicache/", include("aicache.monitoring.api.urls"))``.

The schema (drf-spectacular) and its Swagger UI and Redoc pages (assets from
drf-spectacular-sidecar, no CDN) are served here too.
"""

from django.urls import path
from drf_spectacular.views import SpectacularAPIView, SpectacularRedocView, SpectacularSwaggerView

from aicache.monitoring.api import views
from aicache.monitoring.api.permissions import IsStaff

STAFF = {"permission_classes": [IsStaff], "authentication_classes": views._authentication()}

app_name = "aicache_api"

urlpatterns = [
    path("stats/", views.StatsView.as_view(), name="stats"),
    path("stats/timeseries/", views.TimeSeriesView.as_view(), name="timeseries"),
    path("slow-operations/", views.SlowOperationsView.as_view(), name="slow-operations"),
    path("invalidations/", views.InvalidationsView.as_view(), name="invalidations"),
    path("invalidations/stats/", views.InvalidationStatsView.as_view(), name="invalidation-stats"),
    path(
        "invalidations/recommendations/",
        views.InvalidationRecommendationsView.as_view(),
        name="invalidation-recommendations",
    ),
    path("memory/", views.MemoryView.as_view(), name="memory"),
    path("export/", views.ExportView.as_view(), name="export"),
    path("health/", views.HealthView.as_view(), name="health"),
    path("invalidate/", views.InvalidateView.as_view(), name="invalidate"),
    path("reset/", views.ResetView.as_view(), name="reset"),
    # The schema and its viewers are reads like the rest: staff only (session or token).
    path("schema/", SpectacularAPIView.as_view(**STAFF), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="aicache_api:schema", **STAFF), name="docs"),
    path("redoc/", SpectacularRedocView.as_view(url_name="aicache_api:schema", **STAFF), name="redoc"),
]
