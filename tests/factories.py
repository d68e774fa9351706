"""factory-boy factories for the monitoring models, and a rollup in the two other shapes it takes:
as a monitor drains it and as a monitoring batch carries it to ``ingest``."""

import datetime as dt

import factory
from django.utils import timezone

from aicache.monitoring import rollups
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


def rollup_row(**fields) -> list:
    """A ``RollupFactory`` rollup as a batch carries it (a ``CeleryFlusher`` payload row, what
    ``ingest`` takes), with the same fields and defaults."""
    r = RollupFactory.build(**fields)
    return [
        r.period_start.timestamp(),
        r.kind,
        r.operation,
        r.tier,
        r.outcome,
        r.count,
        r.total_duration,
        r.min_duration,
        r.max_duration,
        r.sketch,
        r.text_length,
        r.text_length_max,
        r.bytes_in,
        r.bytes_out,
        r.ratio_sketch,
    ]


def _buckets(values) -> dict[int, int]:
    from aicache.monitoring.sketch import bucket_of

    out: dict[int, int] = {}
    for v in values:
        out[bucket_of(v)] = out.get(bucket_of(v), 0) + 1
    return out


class DrainedRollupFactory(factory.Factory):
    """The rollup a monitor drains for the given ``durations`` (and ``text_lengths``, ``ratios``),
    computed here without the code under test (``bucket_of`` aside)."""

    class Meta:
        model = rollups.Rollup

    class Params:
        durations = (0.001,)
        text_lengths = ()
        ratios = ()

    count = factory.LazyAttribute(lambda o: len(o.durations))
    total = factory.LazyAttribute(lambda o: sum(o.durations))
    min = factory.LazyAttribute(lambda o: min(o.durations))
    max = factory.LazyAttribute(lambda o: max(o.durations))
    sketch = factory.LazyAttribute(lambda o: _buckets(o.durations))
    text_length = factory.LazyAttribute(lambda o: sum(n for n in o.text_lengths if n))
    text_length_max = factory.LazyAttribute(lambda o: max((n for n in o.text_lengths if n), default=0))
    bytes_in = 0
    bytes_out = 0
    ratio_sketch = factory.LazyAttribute(lambda o: _buckets(o.ratios))


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
