from django.urls import path

from aicache.monitoring.prometheus import metrics_view

app_name = "aicache_monitoring"

urlpatterns = [
    path("metrics", metrics_view, name="metrics"),
]
