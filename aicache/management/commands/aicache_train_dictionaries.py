"""manage.py aicache_train_dictionaries: train and publish zstd dictionaries now (what the
``aicache.monitoring.train_dictionaries`` beat task does every hour)."""

from __future__ import annotations

from typing import Any

from django.core.management.base import BaseCommand, CommandError

from aicache import dictionaries
from aicache.keys import validate_operation


class Command(BaseCommand):
    help = (
        "Train a zstd dictionary per operation from its newest entries and publish it in Redis; "
        "every process writes with it within DICTIONARY_REFRESH_SECONDS."
    )

    def add_arguments(self, parser):
        parser.add_argument("--cache", default=None, help="cache alias (default: every aicache cache)")
        parser.add_argument("--operation", nargs="+", help="only these operations (default: all)")
        parser.add_argument("--min-samples", type=int, help="override DICTIONARY_MIN_SAMPLES")
        parser.add_argument(
            "--samples", type=int, default=dictionaries.DEFAULT_SAMPLES, help="most entries sampled"
        )

    def handle(
        self,
        *args: Any,
        cache: str | None,
        operation: list[str] | None,
        min_samples: int | None,
        samples: int,
        **options: Any,
    ) -> None:
        if min_samples is not None and min_samples < 2:
            raise CommandError("--min-samples must be at least 2")
        if samples < 2:
            raise CommandError("--samples must be at least 2")
        if min_samples is not None and min_samples > samples:
            raise CommandError(f"--min-samples ({min_samples}) can never be met with --samples {samples}")
        try:
            for op in operation or ():
                validate_operation(op)
            targets = dictionaries.aicache_caches(cache)
        except (TypeError, ValueError) as exc:
            raise CommandError(str(exc)) from exc
        failed_caches: list[str] = []
        for alias, backend in targets:
            for line, failed in dictionaries.train_cache(
                alias, backend, operation, min_samples=min_samples, samples=samples
            ):
                self.stdout.write(line)
                if failed and alias not in failed_caches:
                    failed_caches.append(alias)
        if failed_caches:
            raise CommandError(f"dictionary training failed for {', '.join(failed_caches)} (see above)")
