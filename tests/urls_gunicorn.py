import os
import time

from django.core.cache import caches
from django.http import JsonResponse
from django.urls import include, path


def cache_hit(request):
    time.sleep(float(request.GET.get("sleep", 0)))  # keeps a sync worker busy, so both serve
    cache = caches["ai"]
    text = "gunicorn workers share one Redis and one Prometheus view. " * 2
    result = cache.get_or_compute(text, "summarize", lambda: {"summary": "computed"})
    return JsonResponse({"pid": os.getpid(), "hit": result["cache_hit"]})


def coherence(request):
    """This worker's coherence status, without touching the cache (which would start it)."""
    return JsonResponse({"pid": os.getpid(), "status": caches["ai"]._state.coherence.status})


urlpatterns = [
    path("test/cache-hit", cache_hit),
    path("test/coherence", coherence),
    path("", include("aicache_project.urls")),
]
