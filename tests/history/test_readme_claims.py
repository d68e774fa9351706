"""README's History claims, each checked on the database it names: cleanup deletes in short batches
of CLEANUP_BATCH_SIZE rows, at most 900 per statement; two workers racing on a new rollup row end in
one merged row (one of them retries)."""

import datetime as dt
import threading

import pytest
from django.db import IntegrityError, connection, connections
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from aicache.monitoring import maintenance, tasks
from aicache.monitoring.ingest import ingest
from aicache.monitoring.models import IngestionBatch, Rollup, SlowOperation
from aicache.monitoring.tasks import ingest_batch
from tests.factories import SlowOperationFactory, rollup_row

pytestmark = pytest.mark.django_db


def _deletes_of(queries, table):
    return [q["sql"] for q in queries if q["sql"].startswith("DELETE") and table in q["sql"]]


def _old_slow_operations(n):
    at = timezone.now() - dt.timedelta(days=30)
    SlowOperation.objects.bulk_create(SlowOperationFactory.build(timestamp=at) for _ in range(n))


@pytest.mark.parametrize(("batch_size", "rows", "statements"), [(3, 7, [3, 3, 1]), (5000, 1000, [900, 100])])
def test_cleanup_deletes_in_batches_capped_at_900(settings, batch_size, rows, statements):
    settings.AICACHE = {**settings.AICACHE, "CLEANUP_BATCH_SIZE": batch_size, "RETENTION_RAW_DAYS": 7}
    _old_slow_operations(rows)
    SlowOperationFactory()  # recent: kept
    with CaptureQueriesContext(connection) as ctx:
        assert maintenance.cleanup()["slow_operations"] == rows
    deletes = _deletes_of(ctx.captured_queries, SlowOperation._meta.db_table)
    # One DELETE per batch, each naming exactly the batch's ids.
    assert [sql.count(",") + 1 for sql in deletes] == statements
    assert SlowOperation.objects.count() == 1


# One fixed minute for both workers' batches: built at different instants, they must still name the
# same new rollup rows (a batch built across a minute boundary would not).
START = dt.datetime(2026, 11, 18, 7, 7, tzinfo=dt.UTC)


def _batch(batch_id):
    return {
        "batch_id": batch_id,
        "process": f"{batch_id}:1",
        "sent_at": START.timestamp(),
        "rollups": [rollup_row(period_start=START, count=2)],
    }


@pytest.mark.django_db(transaction=True)
def test_two_workers_racing_on_a_new_rollup_row_end_in_one_merged_row(monkeypatch):
    """Staged: worker A has read the (missing) rows under select_for_update; worker B, on its own
    connection, creates and commits the same new rows; A's insert then fails on the unique
    constraint, its transaction rolls back whole, and the task's retry merges into B's rows."""
    if connection.vendor == "sqlite":
        pytest.skip("SQLite serialises writers: B cannot commit while A's transaction holds the write lock")
    real_bulk_create = Rollup.objects.bulk_create
    raced = []

    def bulk_create(objs, *args, **kwargs):
        if not raced:
            raced.append(True)
            failure = []

            def worker_b():
                try:
                    ingest(_batch("b"))
                except Exception as exc:  # re-raised below, in the test
                    failure.append(exc)
                finally:
                    connections.close_all()

            thread = threading.Thread(target=worker_b)
            thread.start()
            thread.join(30)
            assert not thread.is_alive() and not failure, failure
        return real_bulk_create(objs, *args, **kwargs)

    monkeypatch.setattr(Rollup.objects, "bulk_create", bulk_create)
    attempts = []

    def counted_ingest(payload):
        try:
            return ingest(payload)
        except Exception as exc:
            attempts.append(type(exc))
            raise
        finally:
            attempts.append("tried")

    monkeypatch.setattr(tasks, "ingest", counted_ingest)
    result = ingest_batch.apply(args=[_batch("a")])  # eager: Celery re-applies on autoretry
    assert result.successful(), result.result
    assert attempts == [IntegrityError, "tried", "tried"]  # the unique constraint, then the merge
    rows = Rollup.objects.all()
    assert rows.count() == 3  # one row per resolution, not two
    assert {r.count for r in rows} == {4}
    assert set(IngestionBatch.objects.values_list("batch_id", flat=True)) == {"a", "b"}


def test_a_batch_given_up_is_counted_and_logged(monkeypatch, caplog):
    """A database error that outlasts the retries (fewer here) loses the batch, never silently:
    aicache_monitoring_dropped_total{what="ingest_batches"} and an error line say so."""
    import logging

    from django.db import OperationalError

    from aicache.monitoring import prometheus

    calls = []

    def down(payload):
        calls.append(payload["batch_id"])
        raise OperationalError("database is down")

    monkeypatch.setattr(tasks, "ingest", down)
    monkeypatch.setattr(ingest_batch, "max_retries", 2)
    lost = prometheus.MONITORING_DROPS.labels(what="ingest_batches")
    before = lost._value.get()
    with caplog.at_level(logging.ERROR, logger="aicache.monitoring"):
        result = ingest_batch.apply(args=[_batch("gone")])
    assert result.failed() and isinstance(result.result, OperationalError)
    assert calls == ["gone"] * 3  # the first try and two retries
    assert lost._value.get() == before + 1
    (line,) = [r.getMessage() for r in caplog.records if "lost after" in r.getMessage()]
    assert line == "aicache: monitoring batch gone lost after 2 retries: OperationalError: database is down"


def test_the_retry_budget_outlasts_an_hour_of_database_outage():
    from aicache.monitoring.tasks import INGEST_MAX_RETRIES, INGEST_RETRY_BACKOFF_MAX

    assert ingest_batch.max_retries == INGEST_MAX_RETRIES
    assert ingest_batch.retry_backoff_max == INGEST_RETRY_BACKOFF_MAX
    # Celery's exponential countdowns (1, 2, 4, ... s, capped), each jittered to a uniform draw
    # below it: the expected total wait is half the sum.
    countdowns = [min(2**i, INGEST_RETRY_BACKOFF_MAX) for i in range(INGEST_MAX_RETRIES)]
    assert sum(countdowns) / 2 > 3600
