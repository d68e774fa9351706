"""What an entry cost to compute, so every later hit can say what it saved.

When ``get_or_compute`` computes, the entry keeps ``compute()``'s duration and, when the response
carries token usage, the prompt and completion tokens and the model name (frame metadata, see
``aicache.codec``). Each later hit reports that entry's cost as saved; the hit's own duration is
reported beside it, so net time saved is known. Usage is read from a ``usage`` mapping
(``prompt_tokens``/``completion_tokens``, or ``input_tokens``/``output_tokens``) and ``model``, or by
``USAGE_EXTRACTOR``, a dotted path to ``response -> Usage | None``. ``MODEL_PRICES`` turns tokens
into money; a model without a price shows tokens but never a made-up zero.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

logger = logging.getLogger("aicache")

MAX_MODEL_LENGTH = 128


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    model: str = ""


@dataclass(frozen=True, slots=True)
class Cost:
    """What computing one entry cost: the metadata each hit on it reports as saved."""

    compute_seconds: float
    prompt_tokens: int = 0
    completion_tokens: int = 0
    model: str = ""

    def to_meta(self) -> dict[str, Any]:
        meta: dict[str, Any] = {"c": round(self.compute_seconds, 9)}
        if self.prompt_tokens or self.completion_tokens:
            meta["u"] = [self.prompt_tokens, self.completion_tokens]
        if self.model:
            meta["m"] = self.model
        return meta

    @classmethod
    def from_meta(cls, meta: Mapping[str, Any] | None) -> Cost | None:
        """The cost recorded in an entry's metadata, or None (written before savings existed,
        stored by ``cache_response``, or damaged: a bad figure is no figure)."""
        if not meta or "c" not in meta:
            return None
        seconds = meta.get("c")
        usage = meta.get("u") or [0, 0]
        model = meta.get("m") or ""
        if (
            not _non_negative(seconds)
            or not isinstance(usage, list)
            or len(usage) != 2
            or not all(isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in usage)
            or not isinstance(model, str)
        ):
            return None
        return cls(float(seconds), usage[0], usage[1], model[:MAX_MODEL_LENGTH])


def _non_negative(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and 0 <= value < float("inf")


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _first_count(usage: Mapping[str, Any], *names: str) -> int | None:
    for name in names:
        value = _count(usage.get(name))
        if value is not None:
            return value
    return None


def default_usage(response: Mapping[str, Any]) -> Usage | None:
    """``usage`` as OpenAI (prompt/completion_tokens) or Anthropic (input/output_tokens) shape it."""
    usage = response.get("usage")
    if not isinstance(usage, Mapping):
        return None
    prompt = _first_count(usage, "prompt_tokens", "input_tokens")
    completion = _first_count(usage, "completion_tokens", "output_tokens")
    if prompt is None and completion is None:
        total = _count(usage.get("total_tokens"))
        if total is None:
            return None
        prompt = total  # no split given: counted as prompt tokens (documented in README)
    model = response.get("model")
    return Usage(prompt or 0, completion or 0, model if isinstance(model, str) else "")


def measure_cost(
    response: Mapping[str, Any], seconds: float, extractor: Callable[[Any], Usage | None] | None
) -> Cost:
    """The cost of a computed response. An extractor that fails or returns nonsense is logged
    and ignored: savings accounting must never break the caller's request."""
    usage = None
    try:
        usage = extractor(response) if extractor is not None else default_usage(response)
    except Exception as exc:  # the user's extractor: a boundary that must never raise into a request
        logger.warning("aicache USAGE_EXTRACTOR failed (%s); usage not recorded", exc)
    if usage is not None and not (
        isinstance(usage, Usage)
        and _count(usage.prompt_tokens) is not None
        and _count(usage.completion_tokens) is not None
    ):
        logger.warning("aicache USAGE_EXTRACTOR returned %r, not a Usage; usage not recorded", usage)
        usage = None
    if usage is None:
        return Cost(seconds)
    model = usage.model if isinstance(usage.model, str) else ""
    return Cost(seconds, usage.prompt_tokens, usage.completion_tokens, model[:MAX_MODEL_LENGTH])


def price(
    prices: Mapping[str, Any], model: str, prompt_tokens: int, completion_tokens: int
) -> tuple[float, str] | None:
    """(amount, currency) for tokens of ``model``; None when the model has no price."""
    entry = prices.get(model) if model else None
    if not entry:
        return None
    amount = (
        prompt_tokens * entry.get("prompt_per_1k", 0) + completion_tokens * entry.get("completion_per_1k", 0)
    ) / 1000
    return amount, entry.get("currency", "USD")
