"""Measure how much monitoring history a day of traffic writes (docs/deploy.md's sizing table).

One minute of real traffic (a real AIResponseCache on a redis-server started here, the real
recorder and exporter, the flusher's payloads captured instead of sent) is replayed through the
real ingestion (`aicache.monitoring.ingest.ingest`) once per minute for a whole day, as one
process sending a batch every FLUSH_INTERVAL (10 s) would; beat's snapshot_redis adds one row a
minute. Then rows and bytes are read from the database (SQLite: dbstat; PostgreSQL:
pg_total_relation_size, after VACUUM).

    .venv/bin/python scripts/history_sizing.py                      # SQLite in a temp dir
    scripts/with-postgres.sh .venv/bin/python scripts/history_sizing.py   # PostgreSQL
    ... --hours 6                                                   # a quarter of a day
"""

from __future__ import annotations

import copy
import datetime as dt
import os
import random
import sys
import tempfile
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
OPERATIONS = ["summarize", "sentiment", "key_points", "questions", "qa"]
BATCHES_PER_MINUTE = 6  # FLUSH_INTERVAL 10 s
MEMORY_ROWS_PER_MINUTE = 6  # MEMORY_SAMPLE_SECONDS 10 s
TABLES = ["rollup", "ingestionbatch", "memorysnapshot", "slowoperation", "invalidationevent"]


def setup(tmp: Path) -> None:
    from aicache.bench.redis_server import RedisServer

    server = RedisServer(tmp / "redis")
    server.start()
    os.environ.update(
        {
            "SECRET_KEY": "history-sizing",
            "DJANGO_SETTINGS_MODULE": "aicache_project.settings",
            "REDIS_URL": f"{server.url}/0",
            "DATABASE_URL": os.environ.get("AICACHE_TEST_DATABASE_URL", f"sqlite:///{tmp / 'db.sqlite3'}"),
        }
    )
    import django

    django.setup()
    from django.core.management import call_command

    from aicache.monitoring import flusher

    flusher.install = lambda config: None  # capture batches here instead of sending them to Celery
    call_command("migrate", verbosity=0)
    return server


def one_minute_of_traffic() -> dict:
    """Drive a realistic mix through the cache; return the captured batch, merged into one minute."""
    from django.core.cache import caches

    from aicache.bench.payloads import llm_response, prose
    from aicache.monitoring.exporter import get_exporter
    from aicache.monitoring.flusher import CeleryFlusher

    captured: list[dict] = []
    capture = CeleryFlusher(interval=3600, max_rollups=10**6, buffer_batches=10, send=captured.append)
    get_exporter().add_sink(capture)
    cache = caches["ai"]
    rng = random.Random(7)
    texts = {  # per operation: small, medium and large texts (tiers), a few popular ones
        op: [prose(n, seed=i * 31 + j) for j, n in enumerate([300] * 12 + [2500] * 6 + [20000] * 2)]
        for i, op in enumerate(OPERATIONS)
    }
    for _ in range(2000):  # about 80 % repeats
        op = rng.choice(OPERATIONS)
        text = rng.choice(texts[op])
        cache.get_or_compute(text, op, compute=lambda t=text: llm_response(800 if len(t) < 500 else 5000))
    cache.invalidate_by_operation("qa", operation_context="sizing run")
    get_exporter().flush_now(force_memory_sample=True)
    capture.flush()
    rollups: dict[tuple, list] = {}
    for batch in captured:
        for row in batch["rollups"]:
            key = tuple(row[1:5])
            if key not in rollups:
                rollups[key] = [0, *row[1:]]
    return {"rollups": list(rollups.values()), "memory": captured[-1]["memory"][:1]}


def replay_day(template: dict, day: dt.datetime, hours: int) -> float:
    from aicache.monitoring.ingest import ingest
    from aicache.monitoring.maintenance import snapshot_redis
    from aicache.monitoring.models import MemorySnapshot

    started = time.perf_counter()
    snapshot_redis()
    redis_row = MemorySnapshot.objects.get(source=MemorySnapshot.Source.REDIS)
    redis_rows = []
    for minute in range(hours * 60):
        ts = day.timestamp() + 60 * minute
        for n in range(BATCHES_PER_MINUTE):
            payload = {
                "batch_id": uuid.uuid4().hex,
                "process": "web-1.example.internal:12345",
                "sent_at": ts + 10 * n,
                "rollups": [[ts, *row[1:]] for row in template["rollups"]] if n == 0 else [],
                "memory": [[ts + 10 * n, *template["memory"][0][1:]]] if n < MEMORY_ROWS_PER_MINUTE else [],
                "slow": [],
                "invalidations": [],
            }
            ingest(payload)
        row = copy.copy(redis_row)
        row.pk, row.timestamp = None, dt.datetime.fromtimestamp(ts, dt.UTC)
        redis_rows.append(row)
    MemorySnapshot.objects.bulk_create(redis_rows[1:])
    return time.perf_counter() - started


def table_bytes() -> dict[str, int]:
    from django.db import connection

    names = {t: f"aicache_monitoring_{t}" for t in TABLES}
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("VACUUM ANALYZE")  # Django runs in autocommit mode: no transaction open
            out = {}
            for t, name in names.items():
                cursor.execute("SELECT pg_total_relation_size(%s)", [name])
                out[t] = cursor.fetchone()[0]
            return out
        # SQLite: the table and its indexes (dbstat names each b-tree; indexes carry the table name)
        cursor.execute("SELECT name, tbl_name FROM sqlite_master WHERE type IN ('table', 'index')")
        owner = dict(cursor.fetchall())
        cursor.execute("SELECT name, SUM(pgsize) FROM dbstat GROUP BY name")
        out = dict.fromkeys(TABLES, 0)
        for btree, size in cursor.fetchall():
            for t, name in names.items():
                if owner.get(btree) == name:
                    out[t] += size
        return out


def main() -> None:
    hours = int(sys.argv[sys.argv.index("--hours") + 1]) if "--hours" in sys.argv else 24
    with tempfile.TemporaryDirectory() as tmp:
        server = setup(Path(tmp))
        try:
            from django.db import connection

            from aicache.monitoring.models import IngestionBatch, MemorySnapshot, Rollup

            template = one_minute_of_traffic()
            series = template["rollups"]
            per_op = {op: sum(1 for r in series if r[2] == op) for op in OPERATIONS}
            counters = sum(1 for r in series if r[1] == "counter")
            day = dt.datetime.now(dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0) - dt.timedelta(
                days=2
            )
            seconds = replay_day(template, day, hours)
            sizes = table_bytes()
            counts = {
                "rollup": Rollup.objects.count(),
                "ingestionbatch": IngestionBatch.objects.count(),
                "memorysnapshot": MemorySnapshot.objects.count(),
            }
            by_res = {r: Rollup.objects.filter(resolution=r).count() for r in (60, 3600, 86400)}
            print(f"database: {connection.vendor}; {hours} h replayed in {seconds:.0f} s")
            print(f"series per minute: {len(series)} ({per_op} per operation, {counters} counters)")
            print(f"rollup rows by resolution: {by_res}")
            for t, n in counts.items():
                print(f"{t}: {n} rows, {sizes[t]} bytes, {sizes[t] / max(n, 1):.0f} bytes/row")
        finally:
            server.stop()


if __name__ == "__main__":
    main()
