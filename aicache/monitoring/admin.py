"""Read-only admin views of the monitoring history (rows are written by the ingestion task).

Nothing here can add, change or delete a row: deleting an ingestion batch would let a redelivered
batch be counted twice, and the rollups are the history the stats read. Durations show in ms.
The dashboard and the entry browser (``aicache.monitoring.admin_views``) are linked from the
admin index.
"""

from __future__ import annotations

from django.contrib import admin
from django.http import HttpRequest

from aicache.monitoring.models import (
    IngestionBatch,
    InvalidationEvent,
    MemorySnapshot,
    Resolution,
    Rollup,
    SlowOperation,
)


def ms(seconds: float | None) -> str:
    """Seconds as a readable number of milliseconds ("0.026 ms", "12.4 ms", "1,204 ms")."""
    if seconds is None:
        return "-"
    value = seconds * 1000
    if value >= 100:
        return f"{value:,.0f} ms"
    if value >= 1:
        return f"{value:.1f} ms"
    if value >= 0.01:
        return f"{value:.3f} ms"
    if value >= 0.001:
        return f"{value:.4f} ms"
    return "0 ms" if value == 0 else "<0.001 ms"


def duration_text(seconds: float) -> str:
    """``"1 h 59 m"``, ``"29 m 59 s"``, ``"4 s"``: the two largest units."""
    s = int(seconds)
    days, s = divmod(s, 86400)
    hours, s = divmod(s, 3600)
    minutes, s = divmod(s, 60)
    parts = [f"{n} {unit}" for n, unit in ((days, "d"), (hours, "h"), (minutes, "m"), (s, "s")) if n]
    return " ".join(parts[:2]) or "0 s"


class ReadOnlyAdmin(admin.ModelAdmin):
    """View only: no add, change or delete (so no "Delete selected" action either)."""

    actions = None

    def has_add_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False


class ResolutionFilter(admin.SimpleListFilter):
    """One resolution at a time (hour by default): minute, hour and day rows of the same traffic
    mixed in one list would count every request three times."""

    title = "resolution"
    parameter_name = "resolution"
    default = str(int(Resolution.HOUR))
    ALL = "all"

    def lookups(self, request, model_admin):
        return [(str(int(value)), label) for value, label in Resolution.choices] + [(self.ALL, "all")]

    def value(self):
        return super().value() or self.default

    def choices(self, changelist):
        for lookup, title in self.lookup_choices:
            yield {
                "selected": self.value() == lookup,
                "query_string": changelist.get_query_string({self.parameter_name: lookup}),
                "display": title,
            }

    def queryset(self, request, queryset):
        value = self.value()
        if value == self.ALL:
            return queryset
        if value in {str(int(v)) for v in Resolution.values}:
            return queryset.filter(resolution=int(value))
        return queryset.none()


@admin.register(Rollup)
class RollupAdmin(ReadOnlyAdmin):
    list_display = (
        "period_start",
        "resolution",
        "kind",
        "operation",
        "tier",
        "outcome",
        "count",
        "avg_ms",
        "min_ms",
        "max_ms",
    )
    list_filter = (ResolutionFilter, "kind", "tier", "outcome")
    search_fields = ("operation",)
    date_hierarchy = "period_start"
    exclude = ("sketch", "ratio_sketch", "total_duration", "min_duration", "max_duration")
    readonly_fields = ("avg_ms", "min_ms", "max_ms")

    @admin.display(description="avg")
    def avg_ms(self, obj: Rollup) -> str:
        return ms(obj.total_duration / obj.count) if obj.count else "-"

    @admin.display(description="min", ordering="min_duration")
    def min_ms(self, obj: Rollup) -> str:
        return ms(obj.min_duration)

    @admin.display(description="max", ordering="max_duration")
    def max_ms(self, obj: Rollup) -> str:
        return ms(obj.max_duration)


@admin.register(SlowOperation)
class SlowOperationAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "action", "operation", "tier", "source", "duration_ms", "process")
    list_filter = ("action", "tier", "source")
    search_fields = ("operation", "process")
    date_hierarchy = "timestamp"
    exclude = ("duration",)
    readonly_fields = ("duration_ms",)

    @admin.display(description="duration", ordering="duration")
    def duration_ms(self, obj: SlowOperation) -> str:
        return ms(obj.duration)


@admin.register(InvalidationEvent)
class InvalidationEventAdmin(ReadOnlyAdmin):
    list_display = (
        "timestamp",
        "invalidation_type",
        "pattern",
        "keys_invalidated",
        "duration_ms",
        "status",
        "operation_context",
        "reason",
        "process",
    )
    list_filter = ("invalidation_type", "status")
    search_fields = ("pattern", "operation_context", "status", "reason")
    date_hierarchy = "timestamp"
    exclude = ("duration",)
    readonly_fields = ("duration_ms",)

    @admin.display(description="duration", ordering="duration")
    def duration_ms(self, obj: InvalidationEvent) -> str:
        return ms(obj.duration)


@admin.register(MemorySnapshot)
class MemorySnapshotAdmin(ReadOnlyAdmin):
    list_display = (
        "timestamp",
        "source",
        "process",
        "memory_entries",
        "memory_bytes",
        "process_rss_bytes",
        "redis_used_bytes",
        "redis_key_count",
    )
    list_filter = ("source",)
    search_fields = ("process",)
    date_hierarchy = "timestamp"


@admin.register(IngestionBatch)
class IngestionBatchAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "process", "rollups", "events", "dropped_batches", "dropped_records")
    list_filter = ("process",)
    search_fields = ("process", "batch_id")
    date_hierarchy = "received_at"
