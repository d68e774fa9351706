"""Input and output serializers: every field typed and bounded, so the OpenAPI schema is exact.

Query serializers validate ``request.query_params``; output serializers shape what
``aicache.monitoring.stats`` returns (the recorder's dict shapes), nothing more.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from aicache.conf import OPERATION_RE
from aicache.monitoring import actions, stats

TOKEN_RE = OPERATION_RE  # operations and tier names share the [a-z0-9_-]{1,64} alphabet
# Anchored (DRF's RegexValidator searches); ^...$ rather than \A...\Z so the schema's pattern is
# valid ECMA regex too. A trailing newline never reaches it: CharField trims whitespace first.
GLOB_RE = re.compile(rf"^{actions.PATTERN_RE.pattern}$")
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
MAX_WINDOW = dt.timedelta(days=400)
MAX_CONTEXT_FILTER = 100
MAX_PAGE_SIZE = 500
MAX_PAGE = 1_000_000
INVALIDATION_TYPES = ("operation", "pattern", "all", "memory", "manual")
INVALIDATION_STATUSES = ("success", "failed")

# ---------------------------------------------------------------- inputs (query parameters)


def _token(help_text: str) -> serializers.RegexField:
    return serializers.RegexField(
        TOKEN_RE,
        required=False,
        max_length=64,
        help_text=help_text,
        error_messages={"invalid": "Must be 1-64 characters of [a-z0-9_-]."},
    )


class WindowQuery(serializers.Serializer):
    """A window: ``last`` or ``since`` (and ``until``); default the last 24 hours."""

    last = serializers.ChoiceField(choices=list(stats.LAST), required=False, help_text="Window ending now.")
    since = serializers.DateTimeField(required=False, help_text="Window start (ISO 8601).")
    until = serializers.DateTimeField(required=False, help_text="Window end (ISO 8601); default now.")
    operation = _token("Only this AI operation.")
    tier = _token("Only this text-size tier.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        now = timezone.now()
        for name in ("since", "until"):
            value = attrs.get(name)
            if value is not None and not EARLIEST <= value <= now + dt.timedelta(days=1):
                raise serializers.ValidationError({name: ["Must be between 2000-01-01 and tomorrow."]})
        if attrs.get("last") is None and attrs.get("since") is None:
            attrs["last"] = "24h"
        since, until = attrs.get("since"), attrs.get("until")
        if since is not None and (until or now) - since > MAX_WINDOW:
            raise serializers.ValidationError({"since": [f"Windows are at most {MAX_WINDOW.days} days."]})
        try:
            attrs["window"] = stats.window(
                last=attrs.get("last"),
                since=since,
                until=until,
                operation=attrs.get("operation"),
                tier=attrs.get("tier"),
            )
        except ValueError as exc:
            raise serializers.ValidationError({"non_field_errors": [str(exc)]}) from exc
        return attrs


class TimeSeriesQuery(WindowQuery):
    interval = serializers.ChoiceField(choices=list(stats.INTERVALS), default="hour")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        try:
            stats.check_points(attrs["window"], attrs["interval"])
        except ValueError as exc:
            raise serializers.ValidationError({"interval": [str(exc)]}) from exc
        return attrs


class SlowOperationsQuery(WindowQuery):
    threshold_multiplier = serializers.FloatField(default=2.0, min_value=1.0, max_value=1000.0)
    limit = serializers.IntegerField(default=50, min_value=1, max_value=500)


class InvalidationsQuery(WindowQuery):
    type = serializers.ChoiceField(choices=INVALIDATION_TYPES, required=False)
    status = serializers.ChoiceField(choices=INVALIDATION_STATUSES, required=False)
    context = serializers.CharField(
        required=False, max_length=MAX_CONTEXT_FILTER, help_text="Substring of the recorded context."
    )
    page = serializers.IntegerField(default=1, min_value=1, max_value=MAX_PAGE)
    page_size = serializers.IntegerField(default=50, min_value=1, max_value=MAX_PAGE_SIZE)


class ExportQuery(WindowQuery):
    format = serializers.ChoiceField(choices=("json", "csv"), default="json")


class EmptyQuery(serializers.Serializer):
    """No query parameters."""


# ---------------------------------------------------------------- inputs (bodies)


class InvalidateRequest(serializers.Serializer):
    """Exactly one of ``operation``, ``pattern``, ``all: true``, ``memory: true``."""

    operation = _token("Remove every entry of this operation.")
    pattern = serializers.RegexField(
        GLOB_RE,
        required=False,
        max_length=actions.MAX_PATTERN_LENGTH + 1,
        help_text="A glob over operation names: [a-z0-9_-] and * ? [ ] ^ (e.g. summ*).",
        error_messages={"invalid": "Must be a glob over operation names: [a-z0-9_-] and * ? [ ] ^."},
    )
    all = serializers.BooleanField(required=False, help_text="true: remove every aicache entry.")
    memory = serializers.BooleanField(required=False, help_text="true: clear the memory tier.")
    everywhere = serializers.BooleanField(
        default=False, help_text="With memory: every process clears its tier."
    )
    reason = serializers.CharField(allow_blank=True, default="", max_length=actions.MAX_REASON_LENGTH)
    dry_run = serializers.BooleanField(default=False, help_text="Only count.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        chosen = [
            name
            for name in ("operation", "pattern", "all", "memory")
            if (attrs.get(name) is True) or (name in ("operation", "pattern") and attrs.get(name))
        ]
        if len(chosen) != 1:
            raise serializers.ValidationError(
                {"non_field_errors": ['Give exactly one of operation, pattern, "all": true, "memory": true.']}
            )
        kind = chosen[0]
        try:
            attrs["invalidation"] = actions.Invalidation(
                kind,
                attrs.get(kind, "") if kind in ("operation", "pattern") else "",
                everywhere=attrs["everywhere"],
                reason=attrs["reason"],
            )
        except ValueError as exc:
            raise serializers.ValidationError({"non_field_errors": [str(exc)]}) from exc
        return attrs


class ResetRequest(serializers.Serializer):
    """No fields: resets this process's recorder for every aicache cache."""


# ---------------------------------------------------------------- outputs


class WindowOut(serializers.Serializer):
    since = serializers.DateTimeField()
    until = serializers.DateTimeField()


class DurationSummaryOut(serializers.Serializer):
    total_operations = serializers.IntegerField()
    avg_duration = serializers.FloatField(required=False, help_text="Seconds.")
    median_duration = serializers.FloatField(required=False, allow_null=True)
    min_duration = serializers.FloatField(required=False, allow_null=True)
    max_duration = serializers.FloatField(required=False, allow_null=True)
    p95_duration = serializers.FloatField(required=False, allow_null=True)
    slow_operations = serializers.IntegerField(required=False)


class KeyGenerationOut(DurationSummaryOut):
    avg_text_length = serializers.FloatField(required=False)
    max_text_length = serializers.IntegerField(required=False)


class GroupOut(serializers.Serializer):
    count = serializers.IntegerField()
    avg_duration = serializers.FloatField()
    max_duration = serializers.FloatField(allow_null=True)
    p95_duration = serializers.FloatField(allow_null=True)


class CacheOperationsOut(DurationSummaryOut):
    by_operation_type = serializers.DictField(child=GroupOut())
    by_tier = serializers.DictField(child=GroupOut())


class CompressionOut(serializers.Serializer):
    total_operations = serializers.IntegerField()
    avg_compression_ratio = serializers.FloatField(allow_null=True)
    median_compression_ratio = serializers.FloatField(allow_null=True)
    best_compression_ratio = serializers.FloatField(allow_null=True)
    worst_compression_ratio = serializers.FloatField(allow_null=True)
    avg_compression_time = serializers.FloatField()
    max_compression_time = serializers.FloatField()
    total_bytes_processed = serializers.IntegerField()
    total_bytes_saved = serializers.IntegerField()
    overall_savings_percent = serializers.FloatField()


class MemoryCurrentOut(serializers.Serializer):
    timestamp = serializers.FloatField()
    memory_entries = serializers.IntegerField()
    memory_bytes = serializers.IntegerField()
    memory_max_entries = serializers.IntegerField()
    memory_max_bytes = serializers.IntegerField()
    redis_used_bytes = serializers.IntegerField(allow_null=True, required=False)
    process_rss_bytes = serializers.IntegerField(allow_null=True, required=False)
    memory_utilization_percent = serializers.FloatField()


class RedisMemoryOut(serializers.Serializer):
    used_bytes = serializers.IntegerField(allow_null=True)
    live_entries = serializers.IntegerField(allow_null=True)
    keyspace_hits = serializers.IntegerField(allow_null=True)
    keyspace_misses = serializers.IntegerField(allow_null=True)
    timestamp = serializers.FloatField()


class MemoryUsageOut(serializers.Serializer):
    total_samples = serializers.IntegerField()
    current = MemoryCurrentOut(required=False)
    average_memory_bytes = serializers.FloatField(required=False)
    peak_memory_bytes = serializers.IntegerField(required=False)
    min_memory_bytes = serializers.IntegerField(required=False)
    trend = serializers.ChoiceField(choices=("increasing", "decreasing", "stable"), required=False)
    redis = RedisMemoryOut(required=False)


class RatesOut(serializers.Serializer):
    last_hour = serializers.IntegerField()
    last_24_hours = serializers.IntegerField()
    average_per_hour = serializers.FloatField()


class ThresholdsOut(serializers.Serializer):
    warning_per_hour = serializers.FloatField()
    critical_per_hour = serializers.FloatField()
    current_alert_level = serializers.ChoiceField(choices=("normal", "warning", "critical"))


class PatternCountOut(serializers.Serializer):
    pattern = serializers.CharField()
    count = serializers.IntegerField()


class PatternsOut(serializers.Serializer):
    most_common_patterns = PatternCountOut(many=True)
    invalidation_types = serializers.DictField(child=serializers.IntegerField())


class EfficiencyOut(serializers.Serializer):
    avg_keys_per_invalidation = serializers.FloatField()
    avg_duration = serializers.FloatField()
    max_duration = serializers.FloatField()


class InvalidationFrequencyOut(serializers.Serializer):
    total_invalidations = serializers.IntegerField()
    total_keys_invalidated = serializers.IntegerField()
    rates = RatesOut()
    thresholds = ThresholdsOut()
    patterns = PatternsOut()
    efficiency = EfficiencyOut()


class InvalidationStatsOut(InvalidationFrequencyOut):
    window = WindowOut()
    source = serializers.CharField()


class IngestionOut(serializers.Serializer):
    batches = serializers.IntegerField()
    dropped_batches = serializers.IntegerField()
    dropped_records = serializers.IntegerField()


class PercentilesOut(serializers.Serializer):
    count = serializers.IntegerField(required=False)
    p50 = serializers.FloatField(allow_null=True, help_text="Seconds.")
    p95 = serializers.FloatField(allow_null=True)
    p99 = serializers.FloatField(allow_null=True)


class RecommendationOut(serializers.Serializer):
    severity = serializers.ChoiceField(choices=("info", "warning", "critical"))
    issue = serializers.CharField()
    message = serializers.CharField()
    suggestions = serializers.ListField(child=serializers.CharField())


class StatsOut(serializers.Serializer):
    source = serializers.CharField(help_text='"database": every process, from the history.')
    timestamp = serializers.FloatField()
    window = WindowOut()
    cache_hit_rate = serializers.FloatField(help_text="Percent of reads that hit.")
    total_cache_operations = serializers.IntegerField()
    cache_hits = serializers.IntegerField()
    cache_misses = serializers.IntegerField()
    key_generation = KeyGenerationOut(required=False)
    cache_operations = CacheOperationsOut(required=False)
    compression = CompressionOut(required=False)
    memory_usage = MemoryUsageOut(required=False)
    invalidation = InvalidationFrequencyOut(required=False)
    ingestion = IngestionOut()
    latency_by_tier = serializers.DictField(child=PercentilesOut(), help_text="Reads, by tier.")
    recommendations = RecommendationOut(many=True)


class PointOut(serializers.Serializer):
    period_start = serializers.DateTimeField()
    operations = serializers.IntegerField()
    hits = serializers.IntegerField()
    misses = serializers.IntegerField()
    hit_rate = serializers.FloatField()
    compression_bytes_saved = serializers.IntegerField()
    invalidations = serializers.IntegerField()
    latency_by_tier = serializers.DictField(child=PercentilesOut())


class TimeSeriesOut(serializers.Serializer):
    source = serializers.CharField()
    window = WindowOut()
    interval = serializers.ChoiceField(choices=list(stats.INTERVALS))
    points = PointOut(many=True)


class SlowOperationOut(serializers.Serializer):
    timestamp = serializers.FloatField()
    operation = serializers.CharField(help_text="The cache action (get, set, ...).")
    operation_type = serializers.CharField(help_text="The AI operation.")
    tier = serializers.CharField()
    source = serializers.CharField()
    duration = serializers.FloatField()
    cache_hit = serializers.BooleanField()
    text_length = serializers.IntegerField()
    process = serializers.CharField()
    times_slower = serializers.FloatField()


class SlowOperationsOut(serializers.Serializer):
    source = serializers.CharField()
    window = WindowOut()
    threshold_multiplier = serializers.FloatField()
    cache_operations = SlowOperationOut(many=True)


class InvalidationEventOut(serializers.Serializer):
    id = serializers.IntegerField()
    timestamp = serializers.DateTimeField()
    pattern = serializers.CharField()
    keys_invalidated = serializers.IntegerField()
    duration = serializers.FloatField()
    invalidation_type = serializers.CharField()
    operation_context = serializers.CharField(allow_blank=True)
    status = serializers.CharField()
    reason = serializers.CharField(allow_blank=True)
    process = serializers.CharField(allow_blank=True)


class InvalidationPageOut(serializers.Serializer):
    count = serializers.IntegerField()
    next = serializers.URLField(allow_null=True)
    previous = serializers.URLField(allow_null=True)
    results = InvalidationEventOut(many=True)


class RecommendationsOut(serializers.Serializer):
    source = serializers.CharField()
    window = WindowOut()
    recommendations = RecommendationOut(many=True)


class ProcessSnapshotOut(serializers.Serializer):
    process = serializers.CharField()
    timestamp = serializers.DateTimeField()
    memory_entries = serializers.IntegerField(allow_null=True)
    memory_bytes = serializers.IntegerField(allow_null=True)
    memory_max_entries = serializers.IntegerField(allow_null=True)
    memory_max_bytes = serializers.IntegerField(allow_null=True)
    process_rss_bytes = serializers.IntegerField(allow_null=True)


class RedisSnapshotOut(serializers.Serializer):
    cache = serializers.CharField()
    timestamp = serializers.DateTimeField()
    used_bytes = serializers.IntegerField(allow_null=True)
    live_entries = serializers.IntegerField(allow_null=True)
    keyspace_hits = serializers.IntegerField(allow_null=True)
    keyspace_misses = serializers.IntegerField(allow_null=True)


class MemoryWarningOut(serializers.Serializer):
    severity = serializers.ChoiceField(choices=("info", "warning", "critical"))
    type = serializers.CharField()
    message = serializers.CharField()
    value = serializers.IntegerField()
    threshold = serializers.IntegerField()


class MemoryOut(serializers.Serializer):
    source = serializers.CharField()
    window = WindowOut()
    processes = ProcessSnapshotOut(many=True)
    redis = RedisSnapshotOut(many=True)
    usage = MemoryUsageOut()
    warnings = MemoryWarningOut(many=True)


class CacheHealthOut(serializers.Serializer):
    cache = serializers.CharField()
    ok = serializers.BooleanField()
    reason = serializers.CharField(required=False)
    version = serializers.CharField(required=False)
    used_memory = serializers.IntegerField(required=False)
    live_entries = serializers.IntegerField(required=False)
    coherence = serializers.CharField(help_text="live, local, starting, disconnected, unsupported, stopped.")


class CheckOut(serializers.Serializer):
    ok = serializers.BooleanField()
    reason = serializers.CharField(required=False)
    transport = serializers.CharField(required=False)
    vendor = serializers.CharField(required=False)


class PipelineOut(serializers.Serializer):
    history_enabled = serializers.BooleanField()
    outbox_batches = serializers.IntegerField(help_text="This process's batches waiting for the broker.")
    dropped_batches = serializers.IntegerField()
    dropped_records = serializers.IntegerField()
    last_batch_age_seconds = serializers.FloatField(allow_null=True)


class HealthOut(serializers.Serializer):
    healthy = serializers.BooleanField()
    reasons = serializers.ListField(child=serializers.CharField())
    live = serializers.BooleanField(help_text="Always true: asked now, from this process.")
    caches = CacheHealthOut(many=True)
    broker = CheckOut()
    database = CheckOut()
    pipeline = PipelineOut()


class InvalidateOut(serializers.Serializer):
    kind = serializers.ChoiceField(choices=actions.KINDS)
    value = serializers.CharField(allow_blank=True)
    everywhere = serializers.BooleanField()
    dry_run = serializers.BooleanField()
    count = serializers.IntegerField(help_text="Entries removed (or, with dry_run, that would be).")
    context = serializers.CharField(allow_blank=True, help_text="The recorded context (empty on dry_run).")


class ResetOut(serializers.Serializer):
    live = serializers.BooleanField(help_text="Always true: only this process's recorder was reset.")
    process = serializers.CharField()
    caches = serializers.ListField(child=serializers.CharField())
