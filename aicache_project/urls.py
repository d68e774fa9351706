from django.contrib import admin
from django.urls import include, path

from aicache_project import api, views

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    # /admin/aicache/ (dashboard, entries), /api/aicache/, /metrics; before admin/ and its catch-all
    path("", include("aicache.urls")),
    path("admin/", admin.site.urls),
    path("api/aicache/process/", api.process, name="process"),
]
