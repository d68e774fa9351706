"""The monitoring history. Rows grow with time and variety, not with request rate.

- ``Rollup``: per (period start, resolution, kind, operation, tier, outcome): count, duration sum,
  min, max, a mergeable latency sketch, text-length and byte sums. Ingestion writes each batch at
  three resolutions (minute, hour, day), so a 30-day question reads 30 day rows per series, not
  43,200 minute rows; ``compact`` then drops minute rows older than a day.
- ``SlowOperation``, ``InvalidationEvent``, ``MemorySnapshot``: rare events, kept one by one.
- ``IngestionBatch``: one row per ingested batch (idempotency key), with the drops its sender
  counted since its previous batch.
"""

from __future__ import annotations

from django.db import models, transaction

SQLITE_SAFE_BATCH = 900  # below SQLite's 999 parameters per statement


class TimestampedQuerySet(models.QuerySet):
    def delete_before(self, cutoff, batch_size: int = 5000, field: str = "timestamp") -> int:
        """Delete rows older than ``cutoff`` in batches, each in its own short transaction, so a
        large cleanup never holds a long lock."""
        batch_size = max(1, min(batch_size, SQLITE_SAFE_BATCH))
        removed = 0
        while True:
            ids = list(
                self.filter(**{f"{field}__lt": cutoff}).order_by().values_list("pk", flat=True)[:batch_size]
            )
            if not ids:
                return removed
            with transaction.atomic():
                removed += self.model._default_manager.filter(pk__in=ids).delete()[0]


class Resolution(models.IntegerChoices):
    MINUTE = 60, "minute"
    HOUR = 3600, "hour"
    DAY = 86400, "day"


class RollupQuerySet(TimestampedQuerySet):
    def window(self, since, until, resolution: int) -> RollupQuerySet:
        return self.filter(resolution=resolution, period_start__gte=since, period_start__lt=until)

    def matching(self, operation: str | None = None, tier: str | None = None) -> RollupQuerySet:
        qs = self
        if operation:
            qs = qs.filter(operation=operation)
        if tier:
            qs = qs.filter(tier=tier)
        return qs


class Rollup(models.Model):
    period_start = models.DateTimeField(help_text="Start of the period (UTC), aligned to the resolution.")
    resolution = models.PositiveIntegerField(
        choices=Resolution.choices, help_text="Period length in seconds."
    )
    kind = models.CharField(
        max_length=16, help_text="get, set, keygen, compress, invalidate, counter, saved or hit_cost."
    )
    operation = models.CharField(max_length=64, blank=True, help_text="AI operation, or the counter's name.")
    tier = models.CharField(
        max_length=128, blank=True, help_text="Text-size tier; on saved and hit_cost rows, the model."
    )
    outcome = models.CharField(
        max_length=32, blank=True, help_text="hit_memory, hit_redis, miss, ok, error, ..."
    )
    count = models.BigIntegerField(default=0)
    total_duration = models.FloatField(default=0.0, help_text="Sum of durations, seconds.")
    min_duration = models.FloatField(null=True, blank=True)
    max_duration = models.FloatField(null=True, blank=True)
    sketch = models.JSONField(
        default=dict, help_text="Latency buckets {index: count} (aicache.monitoring.sketch)."
    )
    text_length = models.BigIntegerField(default=0, help_text="Sum of text lengths, characters.")
    text_length_max = models.IntegerField(default=0, help_text="Longest text, characters.")
    bytes_in = models.BigIntegerField(default=0, help_text="Bytes before compression / keys invalidated.")
    bytes_out = models.BigIntegerField(default=0, help_text="Bytes after compression.")
    ratio_sketch = models.JSONField(
        default=dict, blank=True, help_text="Compression ratio buckets (compress rows)."
    )

    objects = RollupQuerySet.as_manager()

    class Meta:
        verbose_name = "rollup"
        ordering = ["-period_start", "kind", "operation", "tier", "outcome"]
        constraints = [
            models.UniqueConstraint(
                fields=["period_start", "resolution", "kind", "operation", "tier", "outcome"],
                name="aicache_rollup_series_period",
            )
        ]
        indexes = [
            models.Index(fields=["resolution", "period_start"], name="aicache_rollup_res_period"),
            models.Index(fields=["resolution", "kind", "period_start"], name="aicache_rollup_res_kind"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.operation}/{self.tier}/{self.outcome} @ {self.period_start:%Y-%m-%d %H:%M}"


class SlowOperation(models.Model):
    timestamp = models.DateTimeField(db_index=True)
    action = models.CharField(max_length=16, help_text="get, set, ...")
    operation = models.CharField(max_length=64, blank=True)
    tier = models.CharField(max_length=32, blank=True)
    source = models.CharField(max_length=16, blank=True)
    duration = models.FloatField(help_text="Seconds.")
    text_length = models.IntegerField(default=0)
    cache_hit = models.BooleanField(default=False)
    process = models.CharField(max_length=128, blank=True, help_text="host:pid that recorded it.")

    objects = TimestampedQuerySet.as_manager()

    class Meta:
        verbose_name = "slow operation"
        ordering = ["-timestamp"]


class InvalidationEvent(models.Model):
    timestamp = models.DateTimeField(db_index=True)
    pattern = models.CharField(max_length=300)
    keys_invalidated = models.IntegerField(default=0)
    duration = models.FloatField(help_text="Seconds.")
    invalidation_type = models.CharField(max_length=16, default="manual")
    operation_context = models.CharField(max_length=300, blank=True)
    status = models.CharField(max_length=16, default="success")
    reason = models.CharField(max_length=200, blank=True)
    process = models.CharField(max_length=128, blank=True)

    objects = TimestampedQuerySet.as_manager()

    class Meta:
        verbose_name = "invalidation event"
        ordering = ["-timestamp"]
        # Checked by the API, the commands' callers and the dashboard before any invalidation.
        permissions = [("invalidate_cache", "Can invalidate the AI cache and reset its monitor")]
        indexes = [models.Index(fields=["invalidation_type", "timestamp"], name="aicache_inval_type_ts")]


class MemorySnapshot(models.Model):
    class Source(models.TextChoices):
        PROCESS = "process", "process"
        REDIS = "redis", "Redis"

    timestamp = models.DateTimeField(db_index=True)
    source = models.CharField(max_length=16, choices=Source.choices, default=Source.PROCESS)
    process = models.CharField(max_length=128, blank=True)
    memory_entries = models.IntegerField(null=True, blank=True)
    memory_bytes = models.BigIntegerField(null=True, blank=True)
    memory_max_entries = models.IntegerField(null=True, blank=True)
    memory_max_bytes = models.BigIntegerField(null=True, blank=True)
    process_rss_bytes = models.BigIntegerField(null=True, blank=True)
    redis_used_bytes = models.BigIntegerField(null=True, blank=True)
    redis_key_count = models.BigIntegerField(null=True, blank=True, help_text="Live aicache entries.")
    redis_keyspace_hits = models.BigIntegerField(null=True, blank=True)
    redis_keyspace_misses = models.BigIntegerField(null=True, blank=True)

    objects = TimestampedQuerySet.as_manager()

    class Meta:
        verbose_name = "memory snapshot"
        ordering = ["-timestamp"]
        indexes = [models.Index(fields=["source", "timestamp"], name="aicache_mem_source_ts")]


class IngestionBatch(models.Model):
    batch_id = models.CharField(max_length=64, unique=True, help_text="Sender's id: a redelivery is ignored.")
    received_at = models.DateTimeField(auto_now_add=True, db_index=True)
    sent_at = models.DateTimeField(null=True, blank=True)
    process = models.CharField(max_length=128, blank=True)
    rollups = models.IntegerField(default=0, help_text="Rollup rows in the batch.")
    events = models.IntegerField(default=0, help_text="Raw events in the batch.")
    dropped_batches = models.IntegerField(default=0, help_text="Batches its sender dropped before this one.")
    dropped_records = models.IntegerField(default=0, help_text="Records its sender dropped before this one.")

    objects = TimestampedQuerySet.as_manager()

    class Meta:
        verbose_name = "ingestion batch"
        verbose_name_plural = "ingestion batches"
        ordering = ["-received_at"]
