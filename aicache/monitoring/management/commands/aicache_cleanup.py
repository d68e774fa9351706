"""manage.py aicache_cleanup: the beat job that applies the retention settings, on demand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from aicache.monitoring import maintenance, stats


class Command(BaseCommand):
    help = (
        "Delete monitoring rows past RETENTION_RAW_DAYS / RETENTION_ROLLUP_DAYS, in short batches "
        "(what the hourly beat job does); --dry-run only counts."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true", help="count what would be deleted")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["dry_run"]:
            counts, verb = stats.expired_rows(), "would delete"
        else:
            counts, verb = maintenance.cleanup(), "deleted"
        for table, n in counts.items():
            self.stdout.write(f"{verb} {n} {table.replace('_', ' ')}")
        self.stdout.write(f"{verb} {sum(counts.values())} rows in all")
