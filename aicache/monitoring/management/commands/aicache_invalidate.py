"""manage.py aicache_invalidate: count, confirm, invalidate (recorded with the OS user and a reason)."""

from __future__ import annotations

import getpass
from typing import Any

from django.core.cache import caches
from django.core.management.base import BaseCommand, CommandError

from aicache.checks import aicache_aliases
from aicache.exceptions import CacheUnavailable
from aicache.monitoring import actions
from aicache.monitoring.management.commands._common import glob, token


class Command(BaseCommand):
    help = (
        "Invalidate one operation, a pattern (a glob over operation names), every entry, or the memory "
        "tier. Counts first and asks before deleting unless --yes; --dry-run only counts."
    )

    def add_arguments(self, parser):
        what = parser.add_mutually_exclusive_group(required=True)
        what.add_argument("--operation", metavar="OP", type=token, help="every entry of this operation")
        what.add_argument(
            "--pattern", metavar="P", type=glob, help="entries of operations matching this glob"
        )
        what.add_argument(
            "--tag",
            action="append",
            metavar="TAG",
            help="every entry carrying this tag (repeatable: any of them)",
        )
        what.add_argument("--all", action="store_true", help="every aicache entry")
        what.add_argument("--memory", action="store_true", help="this process's memory tier")
        parser.add_argument("--everywhere", action="store_true", help="with --memory: every process's tier")
        parser.add_argument("--reason", default="", help="why (recorded with the invalidation event)")
        parser.add_argument("--dry-run", action="store_true", help="only count")
        parser.add_argument("--yes", action="store_true", help="do not ask")
        parser.add_argument("--cache", help="cache alias (default: the first aicache cache)")

    def handle(self, *args: Any, **options: Any) -> None:
        if options["everywhere"] and not options["memory"]:
            raise CommandError("--everywhere goes with --memory only")
        kind = next(k for k in ("operation", "pattern", "tag", "all", "memory") if options[k])
        value = options[kind] if kind in ("operation", "pattern") else ""
        try:
            inv = actions.Invalidation(
                "tags" if kind == "tag" else kind,
                value,
                everywhere=options["everywhere"],
                reason=options["reason"],
                tags=tuple(options["tag"] or ()),
            )
        except ValueError as exc:
            raise CommandError(str(exc)) from exc
        aliases = [alias for alias, _ in aicache_aliases()]
        alias = options["cache"] or (aliases[0] if aliases else None)
        if alias not in aliases:
            raise CommandError(
                f"--cache must name an aicache cache: {', '.join(aliases) or 'none configured'}"
            )
        cache = caches[alias]
        try:
            n = actions.count(cache, inv)
        except CacheUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(f"{inv.describe()}: {n} entries now")
        if options["dry_run"]:
            self.stdout.write("dry run: nothing removed")
            return
        if not options["yes"]:
            try:
                answer = input("Invalidate them? [y/N] ")
            except EOFError:
                answer = ""
            if answer.strip().lower() not in ("y", "yes"):
                raise CommandError("aborted: nothing removed (use --yes to skip the question)")
        try:
            removed = actions.perform(cache, inv, actor=getpass.getuser(), via="command")
        except CacheUnavailable as exc:
            raise CommandError(str(exc)) from exc
        self.stdout.write(self.style.SUCCESS(f"removed {removed}"))
