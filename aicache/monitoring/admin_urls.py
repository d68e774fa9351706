"""The admin's cockpit pages; the project includes these at ``admin/aicache/`` (before ``admin/``)."""

from django.contrib import admin
from django.urls import path

from aicache.monitoring import admin_views

app_name = "aicache_admin"

urlpatterns = [
    path("dashboard/", admin.site.admin_view(admin_views.dashboard_view), name="dashboard"),
    path("invalidate/", admin.site.admin_view(admin_views.invalidate_view), name="invalidate"),
    path("entries/", admin.site.admin_view(admin_views.entries_view), name="entries"),
    path("entries/delete/", admin.site.admin_view(admin_views.delete_entries_view), name="delete_entries"),
]
