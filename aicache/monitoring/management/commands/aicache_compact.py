"""manage.py aicache_compact: the beat job that folds old minute rollups, on demand."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand

from aicache.monitoring import maintenance


class Command(BaseCommand):
    help = (
        "Fold minute rollups older than MINUTE_ROLLUP_HOURS into hours (hourly and daily figures stay "
        "exactly the same; what the hourly beat job does)."
    )

    def handle(self, *args: Any, **options: Any) -> None:
        result = maintenance.compact()
        self.stdout.write(f"folded {result['minute_rollups_folded']} minute rollups into their hours")
