from django.contrib import admin
from django.urls import include, path

from aicache_project import views

urlpatterns = [
    path("", views.home, name="home"),
    path("health/", views.health, name="health"),
    path("admin/", admin.site.urls),
    path("", include("aicache.urls")),
]
