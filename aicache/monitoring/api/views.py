"""The monitoring API's views: policy as class attributes, work done by ``stats``, ``actions``,
``health`` and ``export`` (the same functions the commands and the dashboard call).

Every view answers JSON only; query parameters it does not know are a 400 that names them; inputs
are validated by the serializers before anything runs.
"""

from __future__ import annotations

from typing import Any

from django.apps import apps
from django.core.cache import caches
from django.db import DatabaseError
from django.http import StreamingHttpResponse
from drf_spectacular.openapi import AutoSchema
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiResponse, extend_schema
from rest_framework import serializers as drf_serializers
from rest_framework.authentication import SessionAuthentication, TokenAuthentication
from rest_framework.exceptions import ValidationError
from rest_framework.negotiation import DefaultContentNegotiation
from rest_framework.parsers import JSONParser
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.utils.urls import remove_query_param, replace_query_param
from rest_framework.views import APIView

from aicache.checks import aicache_aliases
from aicache.exceptions import CacheUnavailable
from aicache.monitoring import actions, export, health, stats
from aicache.monitoring.api import responses as r
from aicache.monitoring.api import serializers as s
from aicache.monitoring.api.permissions import CanInvalidateCache, IsStaff
from aicache.monitoring.api.throttles import InvalidateThrottle
from aicache.monitoring.flusher import process_name


class JSONOnlyNegotiation(DefaultContentNegotiation):
    """Always JSON, and ``?format=`` is never DRF's renderer override (``export/`` uses it)."""

    def select_renderer(self, request: Any, renderers: list, format_suffix: str | None = None) -> tuple:
        return renderers[0], renderers[0].media_type


def _authentication() -> list[type]:
    """Token authentication when the project installs ``rest_framework.authtoken``; session always
    (DRF enforces CSRF for it on unsafe methods)."""
    classes: list[type] = [SessionAuthentication]
    if apps.is_installed("rest_framework.authtoken"):
        classes.insert(0, TokenAuthentication)
    return classes


class DetailOut(drf_serializers.Serializer):
    detail = drf_serializers.CharField()


ERRORS = {
    400: OpenApiResponse(OpenApiTypes.OBJECT, description='Invalid input: {"field": ["message"]}.'),
    401: OpenApiResponse(DetailOut, description="Not authenticated."),
    403: OpenApiResponse(DetailOut, description="Not allowed (or CSRF failed)."),
    503: OpenApiResponse(DetailOut, description="The database is unavailable."),
}
THROTTLED = {429: OpenApiResponse(DetailOut, description="Throttled.")}


def responses(ok: Any, *extra: dict) -> dict:
    out = {200: ok, **ERRORS}
    for more in extra:
        out.update(more)
    return out


class MonitoringAPIView(APIView):
    """Staff-only JSON; ``query_serializer_class`` validates the query string."""

    schema = AutoSchema()
    authentication_classes = _authentication()
    permission_classes = [IsStaff]
    renderer_classes = [JSONRenderer]
    parser_classes = [JSONParser]
    content_negotiation_class = JSONOnlyNegotiation
    query_serializer_class: type[drf_serializers.Serializer] = s.EmptyQuery

    def initial(self, request: Request, *args: Any, **kwargs: Any) -> None:
        super().initial(request, *args, **kwargs)  # authentication, permissions, throttles first
        self.params = self.validate_query(request)

    def validate_query(self, request: Request) -> dict[str, Any]:
        serializer = self.query_serializer_class(data=request.query_params)
        unknown = sorted(set(request.query_params) - set(serializer.fields))
        if unknown:
            raise ValidationError({name[:64]: ["Unknown query parameter."] for name in unknown[:20]})
        # DRF reads "?until=" from a query string as "not given"; here it is an error, as the schema says.
        blank = sorted(name for name, values in request.query_params.lists() if "" in values)
        if blank:
            raise ValidationError({name: ["This field may not be blank."] for name in blank})
        serializer.is_valid(raise_exception=True)
        return dict(serializer.validated_data)

    def handle_exception(self, exc: Exception) -> Response:
        if isinstance(exc, DatabaseError):
            return Response({"detail": "The monitoring database is unavailable."}, status=503)
        return super().handle_exception(exc)


def _window(w: stats.Window) -> dict[str, Any]:
    return {"since": w.since, "until": w.until}


class StatsView(MonitoringAPIView):
    query_serializer_class = s.WindowQuery

    @extend_schema(parameters=[s.WindowQuery], responses=responses(r.StatsOut), summary="Cache stats")
    def get(self, request: Request) -> Response:
        """Hit rate, latency (with p50/p95/p99 of reads by tier), compression, memory and
        invalidations over the window, for every process (from the monitoring database)."""
        return Response(r.StatsOut(stats.overview(self.params["window"])).data)


class TimeSeriesView(MonitoringAPIView):
    query_serializer_class = s.TimeSeriesQuery

    @extend_schema(parameters=[s.TimeSeriesQuery], responses=responses(r.TimeSeriesOut))
    def get(self, request: Request) -> Response:
        """Per minute, hour or day: operations, hits, misses, hit rate, read latency by tier,
        compression bytes saved and invalidations (at most 2000 points)."""
        w, interval = self.params["window"], self.params["interval"]
        data = {
            "source": "database",
            "window": _window(w),
            "interval": interval,
            "points": stats.time_series(w, interval),
        }
        return Response(r.TimeSeriesOut(data).data)


class SlowOperationsView(MonitoringAPIView):
    query_serializer_class = s.SlowOperationsQuery

    @extend_schema(parameters=[s.SlowOperationsQuery], responses=responses(r.SlowOperationsOut))
    def get(self, request: Request) -> Response:
        """Stored slow cache operations slower than ``threshold_multiplier`` x the window's average."""
        w, multiplier = self.params["window"], self.params["threshold_multiplier"]
        found = stats.slow_operations(w, multiplier, limit=self.params["limit"])
        data = {
            "source": "database",
            "window": _window(w),
            "threshold_multiplier": multiplier,
            "cache_operations": found["cache_operations"],
        }
        return Response(r.SlowOperationsOut(data).data)


class InvalidationsView(MonitoringAPIView):
    query_serializer_class = s.InvalidationsQuery

    @extend_schema(parameters=[s.InvalidationsQuery], responses=responses(r.InvalidationPageOut))
    def get(self, request: Request) -> Response:
        """Invalidation events, newest first, paginated (``page``, ``page_size`` up to 500);
        ``operation`` matches the recorded pattern, ``context`` a substring of the context."""
        p = self.params
        rows = stats.invalidation_events(p["window"], p.get("type"), p.get("status"), p.get("context"))
        count = rows.count()
        start = (p["page"] - 1) * p["page_size"]
        page = list(rows[start : start + p["page_size"]]) if start < count else []
        url = request.build_absolute_uri()
        data = {
            "count": count,
            "next": replace_query_param(url, "page", p["page"] + 1)
            if start + p["page_size"] < count
            else None,
            "previous": None,
            "results": page,
        }
        if p["page"] > 1:
            prev = min(p["page"] - 1, max(1, -(-count // p["page_size"])))
            data["previous"] = (
                remove_query_param(url, "page") if prev == 1 else replace_query_param(url, "page", prev)
            )
        return Response(r.InvalidationPageOut(data).data)


class InvalidationStatsView(MonitoringAPIView):
    query_serializer_class = s.WindowQuery

    @extend_schema(parameters=[s.WindowQuery], responses=responses(r.InvalidationStatsOut))
    def get(self, request: Request) -> Response:
        """Invalidation counts, rates against the alert thresholds, patterns and efficiency."""
        w = self.params["window"]
        data = {**stats.invalidation_frequency(w), "window": _window(w), "source": "database"}
        return Response(r.InvalidationStatsOut(data).data)


class InvalidationRecommendationsView(MonitoringAPIView):
    query_serializer_class = s.WindowQuery

    @extend_schema(parameters=[s.WindowQuery], responses=responses(r.RecommendationsOut))
    def get(self, request: Request) -> Response:
        """Advice from the window's invalidations (frequency, dominant pattern, efficiency)."""
        w = self.params["window"]
        data = {
            "source": "database",
            "window": _window(w),
            "recommendations": stats.invalidation_recommendations(w),
        }
        return Response(r.RecommendationsOut(data).data)


class MemoryView(MonitoringAPIView):
    query_serializer_class = s.WindowQuery

    @extend_schema(parameters=[s.WindowQuery], responses=responses(r.MemoryOut))
    def get(self, request: Request) -> Response:
        """The newest memory snapshot of each process and of Redis in the window, usage over the
        window, and warnings."""
        w = self.params["window"]
        latest = stats.latest_memory_snapshots(w)
        data = {
            "source": "database",
            "window": _window(w),
            **latest,
            "usage": stats.memory_usage(w),
            "warnings": stats.memory_warnings(w),
        }
        return Response(r.MemoryOut(data).data)


class ExportView(MonitoringAPIView):
    query_serializer_class = s.ExportQuery

    @extend_schema(
        parameters=[s.ExportQuery],
        responses={
            (200, "application/json"): OpenApiResponse(OpenApiTypes.OBJECT, description="Streamed JSON."),
            (200, "text/csv"): OpenApiResponse(OpenApiTypes.STR, description="Streamed CSV."),
            **ERRORS,
        },
    )
    def get(self, request: Request) -> StreamingHttpResponse:
        """Rollups covering the window and its raw events, streamed as JSON or CSV."""
        w, fmt = self.params["window"], self.params["format"]
        content_type = "application/json" if fmt == "json" else "text/csv; charset=utf-8"
        response = StreamingHttpResponse(export.export(w, fmt), content_type=content_type)
        stamp = w.until.strftime("%Y%m%dT%H%M%SZ")
        response["Content-Disposition"] = f'attachment; filename="aicache-export-{stamp}.{fmt}"'
        return response


class HealthView(MonitoringAPIView):
    @extend_schema(responses={200: r.HealthOut, 503: r.HealthOut, 401: ERRORS[401], 403: ERRORS[403]})
    def get(self, request: Request) -> Response:
        """Live checks: each cache's Redis (ping, version) and coherence listener, the broker, the
        database, this process's outbox and drops, the last ingested batch's age. 503 with the
        reasons when something is wrong."""
        result = health.health()
        return Response(r.HealthOut(result).data, status=200 if result["healthy"] else 503)


def default_alias() -> str:
    aliases = aicache_aliases()
    if not aliases:
        raise ValidationError({"non_field_errors": ["No aicache cache is configured in CACHES."]})
    return aliases[0][0]


class InvalidateView(MonitoringAPIView):
    permission_classes = [CanInvalidateCache]
    throttle_classes = [InvalidateThrottle]

    @extend_schema(request=s.InvalidateRequest, responses=responses(r.InvalidateOut, THROTTLED))
    def post(self, request: Request) -> Response:
        """Invalidate one operation, a pattern, everything, or the memory tier (of this process, or
        of every process with ``everywhere``). Returns the count; the invalidation event records
        the user, ``via=api`` and the reason. ``dry_run`` only counts."""
        data = request.data if isinstance(request.data, dict) else {}
        serializer = s.InvalidateRequest(data=request.data)
        unknown = sorted(set(data) - set(serializer.fields))
        if unknown:
            raise ValidationError({str(name)[:64]: ["Unknown field."] for name in unknown[:20]})
        serializer.is_valid(raise_exception=True)
        inv: actions.Invalidation = serializer.validated_data["invalidation"]
        cache = caches[default_alias()]
        dry_run = serializer.validated_data["dry_run"]
        try:
            if dry_run:
                n, context = actions.count(cache, inv), ""
            else:
                actor = request.user.get_username()
                context = actions.context(inv, actor=actor, via="api")
                n = actions.perform(cache, inv, actor=actor, via="api")
        except CacheUnavailable as exc:
            return Response({"detail": str(exc)}, status=503)
        out = {
            "kind": inv.kind,
            "value": inv.value,
            "everywhere": inv.everywhere,
            "dry_run": dry_run,
            "count": n,
            "context": context,
        }
        return Response(r.InvalidateOut(out).data)


class ResetView(MonitoringAPIView):
    permission_classes = [CanInvalidateCache]
    throttle_classes = [InvalidateThrottle]

    @extend_schema(request=None, responses=responses(r.ResetOut, THROTTLED))
    def post(self, request: Request) -> Response:
        """Reset this process's in-memory recorder of every aicache cache (the database history is
        untouched; other processes keep theirs)."""
        reset = []
        for alias, _ in aicache_aliases():
            monitor = caches[alias].monitor
            if monitor is not None:
                monitor.reset_stats()
                reset.append(alias)
        return Response(r.ResetOut({"live": True, "process": process_name(), "caches": reset}).data)
