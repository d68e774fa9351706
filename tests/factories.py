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


def rollup_everywhere(**fields) -> list[Rollup]:
    """One rollup written at all three resolutions, as ingestion writes it."""
    from aicache.monitoring.ingest import aligned

    at = fields.pop("period_start", timezone.now()).timestamp()
    return [
        RollupFactory(period_start=aligned(at, int(res)), resolution=res, **fields)
        for res in (Resolution.MINUTE, Resolution.HOUR, Resolution.DAY)
    ]
