"""manage.py aicache_status: is everything wired? Redis, listener, broker, worker, pipeline, tables."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError
from django.db import DatabaseError

from aicache.monitoring import health, stats
from aicache.monitoring.management.commands._common import to_json


def _mark(ok: bool) -> str:
    return "ok  " if ok else "FAIL"


class Command(BaseCommand):
    help = (
        "Redis (version, memory, live entries), the coherence listener, the broker, Celery workers seen, "
        "the last batch's age, this process's outbox and the monitoring tables' rows. Exits 1 when "
        "something is not healthy."
    )

    def add_arguments(self, parser):
        parser.add_argument("--json", action="store_true", help="print the status as JSON, nothing else")
        parser.add_argument(
            "--worker-timeout", type=float, default=1.0, help="seconds to wait for workers to answer a ping"
        )

    def handle(self, *args: Any, **options: Any) -> None:
        if not 0 < options["worker_timeout"] <= 30:
            raise CommandError("--worker-timeout must be between 0 and 30 seconds")
        data = health.health()
        data["workers"] = health.workers_seen(options["worker_timeout"]) if data["broker"]["ok"] else []
        try:
            data["tables"] = stats.table_rows()
        except DatabaseError:
            data["tables"] = {}
        if options["json"]:
            self.stdout.write(to_json(data))
        else:
            self._print(data)
        if not data["healthy"]:
            raise CommandError("not healthy: " + "; ".join(data["reasons"]))

    def _print(self, data: dict[str, Any]) -> None:
        out = self.stdout.write
        out("aicache status (live, from this process)")
        for c in data["caches"]:
            if c["ok"] or "version" in c:
                out(
                    f"  [{_mark(c['ok'])}] cache {c['cache']}: Redis {c.get('version', '?')}, "
                    f"{c.get('used_memory', 0)} bytes used, {c.get('live_entries', 0)} live entries, "
                    f"listener {c['coherence']}"
                )
            else:
                out(f"  [{_mark(False)}] cache {c['cache']}: {c['reason']} (listener {c['coherence']})")
        broker = data["broker"]
        detail = "" if broker["ok"] else f": {broker['reason']}"
        out(f"  [{_mark(broker['ok'])}] broker ({broker['transport']}){detail}")
        workers = data["workers"]
        out(f"  [{'ok  ' if workers else 'warn'}] Celery workers seen: {', '.join(workers) or 'none'}")
        db = data["database"]
        detail = "" if db["ok"] else f": {db['reason']}"
        out(f"  [{_mark(db['ok'])}] database ({db['vendor']}){detail}")
        p = data["pipeline"]
        age = p["last_batch_age_seconds"]
        out(
            f"  history {'on' if p['history_enabled'] else 'off'}; last batch "
            f"{'never' if age is None else f'{age:.0f} s ago'}; outbox {p['outbox_batches']} batches; "
            f"dropped {p['dropped_batches']} batches / {p['dropped_records']} records"
        )
        if data["tables"]:
            out("  rows: " + ", ".join(f"{t} {n}" for t, n in data["tables"].items()))
        out("healthy" if data["healthy"] else "NOT healthy: " + "; ".join(data["reasons"]))
