"""The reference text processor: what aicache sits in front of.

``LocalTextProcessor`` is a deterministic, dependency-free stand-in for an LLM client. It really
reads the text (extractive summary, lexicon sentiment, keyword points, generated questions,
retrieval-style answers), waits a configurable simulated model latency, and returns an LLM-shaped
response with a token ``usage`` block. Point ``AICACHE_TEXT_PROCESSOR["CLASS"]`` at your own class
(same ``process`` signature) to put aicache in front of a real model.
"""

from __future__ import annotations

import functools
import re
import time
from collections import Counter
from collections.abc import Mapping
from typing import Any, Protocol

from django.conf import settings
from django.core.cache import caches
from django.core.signals import setting_changed
from django.dispatch import receiver
from django.utils.module_loading import import_string

OPERATIONS = ("summarize", "sentiment", "key_points", "questions", "qa")
DEFAULT_SETTINGS = {"CLASS": "aicache.processor.LocalTextProcessor", "OPTIONS": {"latency": 0.8}}

_WORD = re.compile(r"[A-Za-z][A-Za-z'-]*")
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
STOPWORDS = frozenset(
    "a an and are as at be but by for from has have he her his i if in into is it its of on or our she so "
    "that the their them then there these they this to was we were what when which who will with you your "
    "not no can could would should do does did been being than also more most such only very about "
    "over".split()
)
POSITIVE = frozenset(
    "good great excellent improve improves improved useful reliable fast faster quick quickly clear clearly "
    "success successful benefit benefits gain gains happy love like best better strong stable cheap "
    "efficient effective helpful positive win wins saves save easy trusted accurate".split()
)
NEGATIVE = frozenset(
    "bad poor slow slower fail fails failed failure error errors risk risky costly expensive broken bug "
    "bugs worse worst weak unstable difficult hard problem problems negative lose loses loss angry hate "
    "late wrong inaccurate outage".split()
)


class TextProcessor(Protocol):
    def process(
        self, text: str, operation: str, options: Mapping[str, Any] | None = None, question: str | None = None
    ) -> dict[str, Any]: ...


def _tokens(text: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(text)]


def _sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE.split(text.strip()) if s.strip()]


def _keywords(text: str, count: int) -> list[str]:
    freq = Counter(w for w in _tokens(text) if w not in STOPWORDS and len(w) > 2)
    return [w for w, _ in sorted(freq.items(), key=lambda kv: (-kv[1], kv[0]))[:count]]


class LocalTextProcessor:
    model = "aicache-local-extractive-1"

    def __init__(self, latency: float = 0.8) -> None:
        if not isinstance(latency, (int, float)) or latency < 0:
            raise ValueError(f"latency must be a non-negative number of seconds, got {latency!r}")
        self.latency = float(latency)

    def process(
        self, text: str, operation: str, options: Mapping[str, Any] | None = None, question: str | None = None
    ) -> dict[str, Any]:
        if operation not in OPERATIONS:
            raise ValueError(f"operation must be one of {list(OPERATIONS)}, got {operation!r}")
        if not isinstance(text, str) or not text.strip():
            raise ValueError("text must be a non-empty string")
        if operation == "qa" and not question:
            raise ValueError("qa needs a question")
        options = dict(options or {})
        if self.latency:
            time.sleep(self.latency)  # the model's thinking time
        result = getattr(self, f"_{operation}")(text, options, question)
        prompt_tokens = round(len(_tokens(text)) * 1.3) + round(len(_tokens(question or "")) * 1.3) + 12
        completion_tokens = max(1, round(len(_tokens(str(result))) * 1.3))
        return {
            **result,
            "operation": operation,
            "model": self.model,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }

    def _summarize(self, text: str, options: dict, question: str | None) -> dict[str, Any]:
        sentences = _sentences(text)
        limit = int(options.get("max_sentences", 3))
        freq = Counter(w for w in _tokens(text) if w not in STOPWORDS)

        def score(sentence: str) -> float:
            words = [w for w in _tokens(sentence) if w not in STOPWORDS]
            return sum(freq[w] for w in words) / (len(words) or 1)

        chosen = sorted(sorted(range(len(sentences)), key=lambda i: (-score(sentences[i]), i))[:limit])
        return {"summary": " ".join(sentences[i] for i in chosen), "sentences_used": len(chosen)}

    def _sentiment(self, text: str, options: dict, question: str | None) -> dict[str, Any]:
        words = _tokens(text)
        pos = sum(w in POSITIVE for w in words)
        neg = sum(w in NEGATIVE for w in words)
        score = (pos - neg) / (pos + neg + 1)
        label = "positive" if score > 0.1 else "negative" if score < -0.1 else "neutral"
        return {
            "sentiment": label,
            "score": round(score, 4),
            "positive_terms": pos,
            "negative_terms": neg,
            "confidence": round(min(1.0, (pos + neg) / (len(words) or 1) * 10), 4),
        }

    def _key_points(self, text: str, options: dict, question: str | None) -> dict[str, Any]:
        sentences = _sentences(text)
        points = []
        for keyword in _keywords(text, int(options.get("count", 5))):
            first = next((s for s in sentences if keyword in _tokens(s)), "")
            points.append({"keyword": keyword, "point": first})
        return {"key_points": points}

    def _questions(self, text: str, options: dict, question: str | None) -> dict[str, Any]:
        keywords = _keywords(text, int(options.get("count", 3)))
        generated = [f"What does the text say about {k}?" for k in keywords]
        if len(keywords) >= 2:
            generated.append(f"How is {keywords[0]} related to {keywords[1]}?")
        return {"questions": generated}

    def _qa(self, text: str, options: dict, question: str | None) -> dict[str, Any]:
        wanted = {w for w in _tokens(question or "") if w not in STOPWORDS}
        best, best_overlap = "", 0
        for sentence in _sentences(text):
            overlap = len(wanted & set(_tokens(sentence)))
            if overlap > best_overlap:
                best, best_overlap = sentence, overlap
        return {
            "question": question,
            "answer": best or "The text does not say.",
            "confidence": round(best_overlap / (len(wanted) or 1), 4),
        }


@functools.cache
def get_processor() -> TextProcessor:
    """The configured processor (``settings.AICACHE_TEXT_PROCESSOR``), built once."""
    config = {**DEFAULT_SETTINGS, **getattr(settings, "AICACHE_TEXT_PROCESSOR", {})}
    return import_string(config["CLASS"])(**config.get("OPTIONS", {}))


@receiver(setting_changed)
def _reset(*, setting: str, **kwargs: Any) -> None:
    if setting == "AICACHE_TEXT_PROCESSOR":
        get_processor.cache_clear()


def process_cached(
    text: str,
    operation: str,
    options: Mapping[str, Any] | None = None,
    question: str | None = None,
    *,
    cache_alias: str = "ai",
    processor: TextProcessor | None = None,
) -> dict[str, Any]:
    """The processor's answer through aicache: one model call per distinct request."""
    processor = processor or get_processor()
    return caches[cache_alias].get_or_compute(
        text, operation, lambda: processor.process(text, operation, options, question), options, question
    )
