"""Output serializers: the shapes ``aicache.monitoring.stats``, ``.health`` and ``.actions``
return (the recorder's dict shapes), declared field by field so the OpenAPI schema is exact and a
response never carries more than it says (no cached text, no key inputs).
"""

from __future__ import annotations

from rest_framework import serializers

from aicache.monitoring import actions, stats


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


class PatternsOut(serializers.Serializer):
    most_common_patterns = serializers.DictField(
        child=serializers.IntegerField(), help_text="{pattern: count}, most common first, 10 at most."
    )
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
    id = serializers.CharField(help_text="Stable machine name of the rule.")
    severity = serializers.ChoiceField(choices=("info", "warning", "critical"))
    issue = serializers.CharField(help_text="Its human-readable title.")
    message = serializers.CharField()
    suggestions = serializers.ListField(child=serializers.CharField())


class TokensOut(serializers.Serializer):
    prompt = serializers.IntegerField()
    completion = serializers.IntegerField()
    total = serializers.IntegerField()


class SavingOut(serializers.Serializer):
    hits = serializers.IntegerField(help_text="Hits on entries whose computing cost is known.")
    compute_seconds = serializers.FloatField(help_text="Compute time those hits did not spend (gross).")
    hit_seconds = serializers.FloatField(help_text="What the hits themselves took.")
    net_seconds = serializers.FloatField(help_text="compute_seconds - hit_seconds.")
    tokens = TokensOut()
    cost = serializers.DictField(
        child=serializers.FloatField(), help_text="Money saved by currency; only models with a price."
    )


class SavedOut(SavingOut):
    window = WindowOut()
    pricing_coverage_ratio = serializers.FloatField(
        allow_null=True, help_text="Share (0-1) of saved tokens that had a price; null: no tokens."
    )
    by_operation = serializers.DictField(child=SavingOut())
    by_model = serializers.DictField(child=SavingOut(), help_text='By model ("" when unknown).')


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
    saved = SavedOut(help_text="What caching saved (savings accounting).")


class PointOut(serializers.Serializer):
    period_start = serializers.DateTimeField()
    operations = serializers.IntegerField()
    hits = serializers.IntegerField()
    misses = serializers.IntegerField()
    hit_rate = serializers.FloatField()
    compression_bytes_saved = serializers.IntegerField()
    invalidations = serializers.IntegerField()
    saved_seconds = serializers.FloatField(help_text="Net compute time that hits saved, seconds.")
    saved_tokens = serializers.IntegerField(help_text="Tokens that hits saved.")
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
