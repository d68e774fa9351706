from django.contrib import admin
from django.urls import include, path

from aicache_project import api, views

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    path("admin/", admin.site.urls),
    path("api/aicache/process/", api.process, name="process"),
    path("", include("aicache.urls")),  # /metrics, /api/aicache/ (the monitoring API)
]
