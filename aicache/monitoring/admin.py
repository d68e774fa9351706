"""Read-only admin views of the monitoring history (rows are written by the ingestion task)."""

from django.contrib import admin

from aicache.monitoring.models import IngestionBatch, InvalidationEvent, MemorySnapshot, Rollup, SlowOperation


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


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
        "max_duration",
    )
    list_filter = ("resolution", "kind", "tier", "outcome")
    search_fields = ("operation",)
    date_hierarchy = "period_start"


@admin.register(SlowOperation)
class SlowOperationAdmin(ReadOnlyAdmin):
    list_display = ("timestamp", "action", "operation", "tier", "source", "duration", "process")
    list_filter = ("action", "tier", "source")
    date_hierarchy = "timestamp"


@admin.register(InvalidationEvent)
class InvalidationEventAdmin(ReadOnlyAdmin):
    list_display = (
        "timestamp",
        "invalidation_type",
        "pattern",
        "keys_invalidated",
        "duration",
        "status",
        "reason",
    )
    list_filter = ("invalidation_type", "status")
    search_fields = ("pattern", "operation_context")
    date_hierarchy = "timestamp"


@admin.register(MemorySnapshot)
class MemorySnapshotAdmin(ReadOnlyAdmin):
    list_display = (
        "timestamp",
        "source",
        "process",
        "memory_entries",
        "memory_bytes",
        "redis_used_bytes",
        "redis_key_count",
    )
    list_filter = ("source",)
    date_hierarchy = "timestamp"


@admin.register(IngestionBatch)
class IngestionBatchAdmin(ReadOnlyAdmin):
    list_display = ("received_at", "process", "rollups", "events", "dropped_batches", "dropped_records")
    list_filter = ("process",)
    date_hierarchy = "received_at"
