"""factory-boy factories for the monitoring models."""

import datetime as dt

import factory
from django.utils import timezone

from aicache.monitoring.models import (
    IngestionBatch,
    InvalidationEvent,
    MemorySnapshot,
    Resolution,
    Rollup,
    SlowOperation,
)


class RollupFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Rollup

    period_start = factory.LazyFunction(lambda: timezone.now().replace(second=0, microsecond=0))
    resolution = Resolution.MINUTE
    kind = "get"
    operation = "summarize"
    tier = "small"
    outcome = "hit_memory"
    count = 10
    total_duration = 0.0001
    min_duration = 0.000005
    max_duration = 0.00002
    sketch = factory.LazyAttribute(lambda o: {str(-1200): o.count})
    text_length = factory.LazyAttribute(lambda o: o.count * 300)
    text_length_max = 300


class SlowOperationFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = SlowOperation

    timestamp = factory.LazyFunction(timezone.now)
    action = "get"
    operation = "summarize"
    tier = "small"
    source = "redis"
    duration = 0.08
    text_length = 400
    process = "host:1"


class InvalidationEventFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = InvalidationEvent

    timestamp = factory.LazyFunction(timezone.now)
    pattern = "summarize"
    keys_invalidated = 12
    duration = 0.004
    invalidation_type = "operation"
    operation_context = "model upgrade"


class MemorySnapshotFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = MemorySnapshot

    timestamp = factory.LazyFunction(timezone.now)
    source = MemorySnapshot.Source.PROCESS
    process = "host:1"
    memory_entries = 50
    memory_bytes = 40_000
    memory_max_entries = 100
    memory_max_bytes = 10 * 1024 * 1024
    process_rss_bytes = 80 * 1024 * 1024


class IngestionBatchFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = IngestionBatch

    batch_id = factory.Sequence(lambda n: f"batch-{n}")
    process = "host:1"
    rollups = 3
    events = 1
    sent_at = factory.LazyFunction(lambda: timezone.now() - dt.timedelta(seconds=1))


def rollup_everywhere(period_start=None, **fields) -> list[Rollup]:
    """One minute of traffic written into its minute, hour and day rows, merged into rows that
    already exist (as ingestion does), so several minutes may share an hour or a day."""
    from aicache.monitoring import sketch
    from aicache.monitoring.ingest import aligned

    period_start = period_start or timezone.now()
    rows = []
    for res in (Resolution.MINUTE, Resolution.HOUR, Resolution.DAY):
        at = aligned(period_start.timestamp(), int(res))
        row = RollupFactory.build(period_start=at, resolution=res, **fields)
        existing = Rollup.objects.filter(
            period_start=at,
            resolution=res,
            kind=row.kind,
            operation=row.operation,
            tier=row.tier,
            outcome=row.outcome,
        ).first()
        if existing is None:
            row.save()
            rows.append(row)
            continue
        existing.count += row.count
        existing.total_duration += row.total_duration
        existing.min_duration = min(existing.min_duration, row.min_duration)
        existing.max_duration = max(existing.max_duration, row.max_duration)
        existing.bytes_in += row.bytes_in
        existing.bytes_out += row.bytes_out
        for field in ("sketch", "ratio_sketch"):
            merged = sketch.merge(sketch.merge({}, getattr(existing, field)), getattr(row, field))
            setattr(existing, field, {str(k): v for k, v in merged.items()})
        existing.save()
        rows.append(existing)
    return rows
