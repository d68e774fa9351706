"""Input serializers: every query parameter and body field typed and bounded, so bad input is a
400 before anything runs and the OpenAPI schema is exact. Outputs are in ``responses.py``.
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from django.utils import timezone
from rest_framework import serializers

from aicache.conf import OPERATION_RE
from aicache.monitoring import actions, stats
from aicache.request import MAX_TAGS
from aicache.request import TAG_RE as REQUEST_TAG_RE

# Operations and tier names share the [a-z0-9_-]{1,64} alphabet (anchored here, see GLOB_RE).
TOKEN_RE = re.compile(rf"^(?:{OPERATION_RE.pattern.lstrip('^').rstrip('$')})$")
# Anchored (DRF's RegexValidator searches); ^...$ rather than \A...\Z so the schema's pattern is
# valid ECMA regex too. A trailing newline never reaches it: CharField trims whitespace first.
GLOB_RE = re.compile(rf"^{actions.PATTERN_RE.pattern}$")
TAG_RE = re.compile(rf"^{REQUEST_TAG_RE.pattern}$")
EARLIEST = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)
MAX_WINDOW = dt.timedelta(days=400)
MAX_CONTEXT_FILTER = 100
MAX_PAGE_SIZE = 500
MAX_PAGE = 1_000_000
INVALIDATION_TYPES = ("operation", "pattern", "all", "memory", "tags", "keys", "manual")
INVALIDATION_STATUSES = ("success", "failed")

# JSON bodies are typed: DRF would turn 5 into "5" and "true" into True; these refuse instead.


class StrictCharField(serializers.CharField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictRegexField(serializers.RegexField):
    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictBooleanField(serializers.BooleanField):
    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


# ---------------------------------------------------------------- inputs (query parameters)


def _token(help_text: str) -> serializers.RegexField:
    return serializers.RegexField(
        TOKEN_RE,
        required=False,
        max_length=64,
        help_text=help_text,
        error_messages={"invalid": "Must be 1-64 characters of [a-z0-9_-]."},
    )


class WindowQuery(serializers.Serializer):
    """A window: ``last`` or ``since`` (and ``until``); default the last 24 hours."""

    last = serializers.ChoiceField(choices=list(stats.LAST), required=False, help_text="Window ending now.")
    since = serializers.DateTimeField(required=False, help_text="Window start (ISO 8601).")
    until = serializers.DateTimeField(required=False, help_text="Window end (ISO 8601); default now.")
    operation = _token("Only this AI operation.")
    tier = _token("Only this text-size tier.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        now = timezone.now()
        for name in ("since", "until"):
            value = attrs.get(name)
            if value is not None and not EARLIEST <= value <= now + dt.timedelta(days=1):
                raise serializers.ValidationError({name: ["Must be between 2000-01-01 and tomorrow."]})
        if attrs.get("last") is None and attrs.get("since") is None:
            attrs["last"] = "24h"
        since, until = attrs.get("since"), attrs.get("until")
        if since is not None and (until or now) - since > MAX_WINDOW:
            raise serializers.ValidationError({"since": [f"Windows are at most {MAX_WINDOW.days} days."]})
        try:
            attrs["window"] = stats.window(
                last=attrs.get("last"),
                since=since,
                until=until,
                operation=attrs.get("operation"),
                tier=attrs.get("tier"),
            )
        except ValueError as exc:
            raise serializers.ValidationError({"non_field_errors": [str(exc)]}) from exc
        return attrs


class TimeSeriesQuery(WindowQuery):
    interval = serializers.ChoiceField(choices=list(stats.INTERVALS), default="hour")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        attrs = super().validate(attrs)
        try:
            stats.check_points(attrs["window"], attrs["interval"])
        except ValueError as exc:
            raise serializers.ValidationError({"interval": [str(exc)]}) from exc
        return attrs


class SlowOperationsQuery(WindowQuery):
    threshold_multiplier = serializers.FloatField(default=2.0, min_value=1.0, max_value=1000.0)
    limit = serializers.IntegerField(default=50, min_value=1, max_value=500)


class InvalidationsQuery(WindowQuery):
    type = serializers.ChoiceField(choices=INVALIDATION_TYPES, required=False)
    status = serializers.ChoiceField(choices=INVALIDATION_STATUSES, required=False)
    context = serializers.CharField(
        required=False, max_length=MAX_CONTEXT_FILTER, help_text="Substring of the recorded context."
    )
    page = serializers.IntegerField(default=1, min_value=1, max_value=MAX_PAGE)
    page_size = serializers.IntegerField(default=50, min_value=1, max_value=MAX_PAGE_SIZE)


class ExportQuery(WindowQuery):
    format = serializers.ChoiceField(choices=("json", "csv"), default="json")


class EmptyQuery(serializers.Serializer):
    """No query parameters."""


# ---------------------------------------------------------------- inputs (bodies)


class InvalidateRequest(serializers.Serializer):
    """Exactly one of ``operation``, ``pattern``, ``tags``, ``all: true``, ``memory: true``."""

    operation = StrictRegexField(
        TOKEN_RE,
        required=False,
        max_length=64,
        help_text="Remove every entry of this operation.",
        error_messages={"invalid": "Must be 1-64 characters of [a-z0-9_-]."},
    )
    pattern = StrictRegexField(
        GLOB_RE,
        required=False,
        max_length=actions.MAX_PATTERN_LENGTH + 1,
        help_text="A glob over operation names: [a-z0-9_-] and * ? [ ] ^ (e.g. summ*).",
        error_messages={"invalid": "Must be a glob over operation names: [a-z0-9_-] and * ? [ ] ^."},
    )
    tags = serializers.ListField(
        child=StrictRegexField(
            TAG_RE, max_length=64, error_messages={"invalid": "Must be 1-64 characters of [A-Za-z0-9_.:-]."}
        ),
        required=False,
        allow_empty=False,
        max_length=MAX_TAGS,
        help_text="Remove every entry carrying any of these tags (e.g. prompt:v3).",
    )
    all = StrictBooleanField(required=False, help_text="true: remove every aicache entry.")
    memory = StrictBooleanField(required=False, help_text="true: clear the memory tier.")
    everywhere = StrictBooleanField(default=False, help_text="With memory: every process clears its tier.")
    reason = StrictCharField(allow_blank=True, default="", max_length=actions.MAX_REASON_LENGTH)
    dry_run = StrictBooleanField(default=False, help_text="Only count.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        chosen = [
            name
            for name in ("operation", "pattern", "tags", "all", "memory")
            if (attrs.get(name) is True) or (name in ("operation", "pattern", "tags") and attrs.get(name))
        ]
        if len(chosen) != 1:
            raise serializers.ValidationError(
                {
                    "non_field_errors": [
                        'Give exactly one of operation, pattern, tags, "all": true, "memory": true.'
                    ]
                }
            )
        kind = chosen[0]
        try:
            attrs["invalidation"] = actions.Invalidation(
                kind,
                attrs.get(kind, "") if kind in ("operation", "pattern") else "",
                everywhere=attrs["everywhere"],
                reason=attrs["reason"],
                tags=tuple(attrs.get("tags") or ()),
            )
        except ValueError as exc:
            raise serializers.ValidationError({"non_field_errors": [str(exc)]}) from exc
        return attrs


class ResetRequest(serializers.Serializer):
    """No fields: resets this process's recorder for every aicache cache."""
