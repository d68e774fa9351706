"""Argument types and output helpers shared by the aicache_* monitoring commands."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from collections.abc import Callable
from typing import Any

from django.core.management.base import CommandError, CommandParser
from django.utils.dateparse import parse_datetime

from aicache.conf import OPERATION_RE
from aicache.monitoring import actions, stats


def bounded_int(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        try:
            n = int(value)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from None
        if not low <= n <= high:
            raise argparse.ArgumentTypeError(f"must be between {low} and {high}, got {n}")
        return n

    return parse


def token(value: str) -> str:
    if not OPERATION_RE.fullmatch(value):
        raise argparse.ArgumentTypeError(f"must be 1-64 characters of [a-z0-9_-], got {value!r}")
    return value


def glob(value: str) -> str:
    if not actions.PATTERN_RE.fullmatch(value):
        raise argparse.ArgumentTypeError(
            f"must be a glob over operation names ([a-z0-9_-] and * ? [ ] ^), got {value[:80]!r}"
        )
    return value


def aware_datetime(value: str) -> dt.datetime:
    parsed = parse_datetime(value)
    if parsed is None:
        raise argparse.ArgumentTypeError(f"{value!r} is not an ISO 8601 date and time")
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def add_window_arguments(parser: CommandParser, default_last: str = "24h", filters: bool = True) -> None:
    parser.add_argument(
        "--last", choices=list(stats.LAST), help=f"window ending now (default {default_last})"
    )
    parser.add_argument("--since", type=aware_datetime, help="window start, ISO 8601 (UTC if no offset)")
    parser.add_argument("--until", type=aware_datetime, help="window end, ISO 8601 (default now)")
    if filters:
        parser.add_argument("--operation", type=token, help="only this AI operation")
        parser.add_argument("--tier", type=token, help="only this text-size tier")


def window_from(options: dict[str, Any], default_last: str = "24h") -> stats.Window:
    last = options.get("last")
    if last is None and options.get("since") is None:
        last = default_last
    try:
        return stats.window(
            last=last,
            since=options.get("since"),
            until=options.get("until"),
            operation=options.get("operation"),
            tier=options.get("tier"),
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


def to_json(data: Any) -> str:
    return json.dumps(data, indent=2, sort_keys=True, default=str)


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header, *[[str(c) for c in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
