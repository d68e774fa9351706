"""The admin's cockpit: the dashboard, the entry browser and the confirmation pages of actions.

Mounted by ``aicache.monitoring.admin_urls`` (the project includes it at ``/admin/aicache/``).
Every view runs inside ``admin.site.admin_view`` (staff only, never cached, CSRF-protected). Every
action needs ``aicache_monitoring.invalidate_cache``, is confirmed on a page that shows the count
first, and runs through ``aicache.monitoring.actions`` (the code the API and commands use), which
records the user in the invalidation event's context.
"""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import admin, messages
from django.core.cache import caches
from django.core.exceptions import PermissionDenied
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.shortcuts import render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from redis.exceptions import RedisError

from aicache.checks import aicache_aliases
from aicache.conf import OPERATION_RE, merged
from aicache.exceptions import CacheUnavailable
from aicache.monitoring import actions, dashboard, entries, stats

PERMISSION = "aicache_monitoring.invalidate_cache"
WINDOWS = [(last, last) for last in stats.LAST]


def operation_token(value: str) -> None:
    if not OPERATION_RE.fullmatch(value):
        raise forms.ValidationError("An operation is 1-64 characters of [a-z0-9_-].")


def operation_field() -> forms.CharField:
    return forms.CharField(required=False, max_length=64, validators=[operation_token])


class CacheChoice(forms.Form):
    cache = forms.ChoiceField(required=False)

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["cache"].choices = [(alias, alias) for alias, _ in aicache_aliases()]

    def clean_cache(self) -> str:
        aliases = [alias for alias, _ in aicache_aliases()]
        if not aliases:
            raise forms.ValidationError("No cache in CACHES uses aicache.backend.AIResponseCache.")
        return self.cleaned_data["cache"] or aliases[0]


class DashboardForm(CacheChoice):
    last = forms.ChoiceField(choices=WINDOWS, required=False, label="window")
    operation = operation_field()

    def clean_last(self) -> str:
        return self.cleaned_data["last"] or "24h"


class EntriesForm(CacheChoice):
    operation = operation_field()
    tag = forms.RegexField(regex=r"^[A-Za-z0-9_.:-]{1,64}\Z", required=False, max_length=64)
    tier = forms.ChoiceField(required=False, choices=[("", "any")] + [(t, t) for t in entries.STORAGE_TIERS])
    page = forms.RegexField(regex=r"^\d{0,20}\Z", required=False)
    size = forms.IntegerField(required=False, min_value=1, max_value=entries.MAX_PAGE_SIZE)


class InvalidationForm(CacheChoice):
    kind = forms.ChoiceField(choices=[(k, k) for k in actions.KINDS])
    value = forms.CharField(required=False, max_length=actions.MAX_PATTERN_LENGTH)
    everywhere = forms.BooleanField(required=False)
    reason = forms.CharField(required=False, max_length=actions.MAX_REASON_LENGTH)
    next = forms.CharField(required=False, max_length=500)

    def clean(self) -> dict[str, Any]:
        data = super().clean()
        if self.errors:
            return data
        try:
            tags = tuple(data["value"].split(",")) if data["kind"] == "tags" else ()
            data["invalidation"] = actions.Invalidation(
                data["kind"],
                "" if tags else data["value"],
                data["everywhere"],
                data["reason"],
                tags=tags,
            )
        except ValueError as exc:
            raise forms.ValidationError(str(exc)) from exc
        return data


class KeyListField(forms.Field):
    """The selected entry keys (checkboxes or hidden inputs named ``keys``)."""

    widget = forms.MultipleHiddenInput
    default_error_messages = {"required": "Select at least one entry."}

    def to_python(self, value: Any) -> list[str]:
        if not value:
            return []
        if not isinstance(value, (list, tuple)):
            raise forms.ValidationError("Expected a list of keys.")
        return [str(v) for v in value]

    def validate(self, value: list[str]) -> None:
        super().validate(value)
        if len(value) > entries.MAX_PAGE_SIZE:
            raise forms.ValidationError(f"At most {entries.MAX_PAGE_SIZE} entries at once.")


class DeleteForm(CacheChoice):
    keys = KeyListField()
    reason = forms.CharField(required=False, max_length=actions.MAX_REASON_LENGTH)
    next = forms.CharField(required=False, max_length=500)


def _context(request: HttpRequest, title: str, **extra: Any) -> dict[str, Any]:
    return {**admin.site.each_context(request), "title": title, **extra}


def _bad_request(request: HttpRequest, title: str, form: forms.Form) -> HttpResponse:
    return render(
        request, "aicache_monitoring/bad_request.html", _context(request, title, form=form), status=400
    )


def _redis_down(request: HttpRequest, title: str, exc: Exception) -> HttpResponse:
    context = _context(
        request,
        title,
        error=str(exc)
        if isinstance(exc, CacheUnavailable)
        else f"Redis did not answer ({type(exc).__name__}): nothing was changed.",
    )
    return render(request, "aicache_monitoring/unavailable.html", context, status=503)


def _safe_next(request: HttpRequest, url: str, default: str) -> str:
    if url and url_has_allowed_host_and_scheme(url, {request.get_host()}, request.is_secure()):
        return url
    return default


def dashboard_view(request: HttpRequest) -> HttpResponse:
    form = DashboardForm(request.GET)
    if not form.is_valid():
        return _bad_request(request, "AI cache dashboard", form)
    last, operation, alias = (
        form.cleaned_data["last"],
        form.cleaned_data["operation"],
        form.cleaned_data["cache"],
    )
    cache = caches[alias]
    w = stats.window(last=last, operation=operation or None)
    live = None
    if cache.ping():  # the counts fail open to 0; a dead Redis must not read as an empty cache
        live = cache.count_by_operation(operation) if operation else cache.count_all()
    figures = dashboard.figures(w, last, live)
    # the filter offers every operation of the window (figures' list is filtered when one is chosen)
    seen = figures["operations"] if not operation else stats.operations(stats.window(last=last))
    known = sorted(
        {*(r["operation"] for r in seen), *merged()["OPERATION_TTLS"], *([operation] if operation else [])}
    )
    context = _context(
        request,
        "AI cache dashboard",
        form=form,
        last=last,
        windows=list(stats.LAST),
        operation=operation,
        operations_known=known,
        alias=alias,
        aliases=[a for a, _ in aicache_aliases()],
        can_invalidate=request.user.has_perm(PERMISSION),
        window=w,
        **figures,
    )
    return render(request, "aicache_monitoring/dashboard.html", context)


def entries_view(request: HttpRequest) -> HttpResponse:
    form = EntriesForm(request.GET)
    if not form.is_valid():
        return _bad_request(request, "Cache entries", form)
    data = form.cleaned_data
    cache = caches[data["cache"]]
    preview = merged()["ADMIN_ENTRY_PREVIEW_CHARS"] if request.user.is_superuser else 0
    try:
        result = entries.page(
            cache,
            operation=data["operation"],
            tier=data["tier"],
            tag=data["tag"],
            token=data["page"] or "",
            size=data["size"] or 50,
            preview_chars=preview,
        )
    except ValueError as exc:
        form.add_error("page", str(exc))
        return _bad_request(request, "Cache entries", form)
    except RedisError as exc:
        return _redis_down(request, "Cache entries", exc)
    base = request.GET.copy()
    base.pop("page", None)
    first_query = base.urlencode() or "page="
    next_query = ""
    if result.next_token:
        base["page"] = result.next_token
        next_query = base.urlencode()
    context = _context(
        request,
        "Cache entries",
        form=form,
        page=result,
        alias=data["cache"],
        operation=data["operation"],
        tag=data["tag"],
        next_query=next_query,
        first_query=first_query if data["page"] else "",
        show_preview=preview > 0,
        can_invalidate=request.user.has_perm(PERMISSION),
        here=request.get_full_path(),
        operations_known=sorted(merged()["OPERATION_TTLS"]),
    )
    return render(request, "aicache_monitoring/entries.html", context)


def invalidate_view(request: HttpRequest) -> HttpResponse:
    """GET: the confirmation page (what, how many now). POST: do it, then back to ``next``."""
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied("You need the aicache_monitoring.invalidate_cache permission.")
    form = InvalidationForm(request.POST if request.method == "POST" else request.GET)
    if not form.is_valid():
        return _bad_request(request, "Invalidate", form)
    inv, alias = form.cleaned_data["invalidation"], form.cleaned_data["cache"]
    cache = caches[alias]
    back = _safe_next(request, form.cleaned_data["next"], reverse("aicache_admin:dashboard"))
    try:
        if request.method == "POST":
            removed = actions.perform(cache, inv, actor=request.user.get_username(), via="admin")
            messages.success(request, f"Invalidated {inv.describe()}: {removed} entries removed.")
            return HttpResponseRedirect(back)
        n = actions.count(cache, inv)
    except CacheUnavailable as exc:
        return _redis_down(request, "Invalidate", exc)
    context = _context(
        request,
        "Confirm invalidation",
        form=form,
        invalidation=inv,
        count=n,
        alias=alias,
        back=back,
    )
    return render(request, "aicache_monitoring/confirm_invalidate.html", context)


def delete_entries_view(request: HttpRequest) -> HttpResponse:
    """POST without ``confirm``: the confirmation page; with it: delete the selected entries."""
    if not request.user.has_perm(PERMISSION):
        raise PermissionDenied("You need the aicache_monitoring.invalidate_cache permission.")
    if request.method != "POST":
        return HttpResponseRedirect(reverse("aicache_admin:entries"))
    form = DeleteForm(request.POST)
    if not form.is_valid():
        return _bad_request(request, "Delete entries", form)
    data = form.cleaned_data
    cache = caches[data["cache"]]
    back = _safe_next(request, data["next"], reverse("aicache_admin:entries"))
    try:
        if request.POST.get("confirm") == "yes":
            removed = entries.delete(
                cache, data["keys"], actor=request.user.get_username(), reason=data["reason"]
            )
            messages.success(request, f"Deleted {removed} of {len(data['keys'])} selected entries.")
            return HttpResponseRedirect(back)
        found = entries.describe(cache, [k for k in data["keys"] if entries.parse_key(cache.ns, k)])
    except ValueError as exc:
        form.add_error(None, str(exc))
        return _bad_request(request, "Delete entries", form)
    except RedisError as exc:
        return _redis_down(request, "Delete entries", exc)
    context = _context(
        request,
        "Confirm deletion",
        keys=data["keys"],
        found=found,
        alias=data["cache"],
        reason=data["reason"],
        back=back,
    )
    return render(request, "aicache_monitoring/confirm_delete.html", context)
