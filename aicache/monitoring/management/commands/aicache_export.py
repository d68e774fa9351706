"""manage.py aicache_export: a window of the monitoring history, streamed as JSON or CSV."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from django.core.management.base import BaseCommand, CommandError
from tqdm import tqdm

from aicache.monitoring import export
from aicache.monitoring.management.commands._common import add_window_arguments, window_from


class Command(BaseCommand):
    help = (
        "Export the rollups covering a window and its raw events (slow operations, invalidations, "
        "memory snapshots), streamed to --output or to stdout."
    )

    def add_arguments(self, parser):
        parser.add_argument("--format", choices=export.FORMATS, required=True)
        add_window_arguments(parser)
        parser.add_argument("--output", metavar="FILE", help="write here (default: stdout, nothing else)")

    def handle(self, *args: Any, **options: Any) -> None:
        w = window_from(options)
        chunks = export.export(w, options["format"])
        if not options["output"]:
            for chunk in chunks:
                self.stdout.write(chunk.decode(), ending="")
            return
        path = Path(options["output"])
        if path.is_dir():
            raise CommandError(f"--output {path} is a directory")
        written = 0
        try:
            with (
                path.open("wb") as f,
                tqdm(unit="B", unit_scale=True, desc="export", file=sys.stderr, disable=None) as progress,
            ):
                for chunk in chunks:
                    f.write(chunk)
                    written += len(chunk)
                    progress.update(len(chunk))
        except OSError as exc:
            raise CommandError(f"cannot write {path}: {exc}") from exc
        self.stdout.write(f"wrote {written} bytes of {options['format']} to {path}")
