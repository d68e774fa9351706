"""Deterministic, realistic inputs: English prose and LLM-shaped responses of three shapes.

The prose is real English: the Python documentation topics that ship with CPython
(``pydoc_data.topics``), with markup and code blocks stripped, so it compresses like the text an
LLM reads and writes, not like repeated characters or a toy vocabulary. The non-Latin prose is
real Russian: the translated messages Django ships (``django/**/locale/ru/LC_MESSAGES/*.po``).

Shapes (``SHAPES``): ``prose`` (one long summary, a few key points, a usage block), ``fields``
(a structured extraction: dozens of short keys, numbers, nested lists), ``cyrillic`` (the prose
shape in Russian: two bytes per letter in UTF-8).
"""

from __future__ import annotations

import contextlib
import functools
import glob
import os
import random
import re
from collections.abc import Callable, Iterator

# Which half of each corpus prose is drawn from: None (all of it), 0 or 1. Dictionaries are
# trained on responses from one half and measured on the other (corpus_half), so a dictionary
# never holds the very sentences it is judged on.
_half: list[int | None] = [None]


@contextlib.contextmanager
def corpus_half(which: int) -> Iterator[None]:
    previous, _half[0] = _half[0], which
    try:
        yield
    finally:
        _half[0] = previous


def _part(text: str) -> str:
    half = _half[0]
    if half is None:
        return text
    middle = text.find(". ", len(text) // 2) + 2
    return text[:middle] if half == 0 else text[middle:]


@functools.cache
def corpus() -> str:
    from pydoc_data.topics import topics

    paragraphs = []
    for name in sorted(topics):
        for block in topics[name].split("\n\n"):
            block = block.strip()
            # keep prose paragraphs: mostly letters, ending like a sentence, no code indentation
            if len(block) > 200 and block[-1] in ".:" and not block.startswith((" ", ">>>", "*")):
                text = re.sub(r"\s+", " ", block)
                if sum(c.isalpha() or c == " " for c in text) / len(text) > 0.85:
                    paragraphs.append(text)
    return " ".join(paragraphs)


def prose(chars: int, seed: int = 0) -> str:
    """Exactly ``chars`` characters of English prose, starting at a sentence chosen by ``seed``."""
    text = _part(corpus())
    rng = random.Random(seed)
    out = ""
    while len(out) < chars:
        start = text.find(". ", rng.randrange(len(text) - 1)) + 2
        if start < 2:
            start = 0
        out += text[start : start + chars - len(out) + 1]
    return out[:chars]


def llm_response(size: int, seed: int = 0) -> dict:
    """A response dict whose JSON is about ``size`` bytes: summary, points and a usage block."""
    rng = random.Random(seed)
    points = [prose(rng.randint(60, 140), seed + 2 + i) for i in range(size // 1500)]
    overhead = 130 + sum(len(p) + 3 for p in points)
    body = prose(max(20, size - overhead), seed + 1)
    return {
        "summary": body,
        "key_points": points,
        "model": "local-llm-1",
        "usage": {"prompt_tokens": size // 4, "completion_tokens": len(body) // 4, "total_tokens": size // 2},
    }


@functools.cache
def russian_corpus() -> str:
    import django

    root = os.path.dirname(django.__file__)
    out, seen = [], set()
    for path in sorted(glob.glob(f"{root}/**/locale/ru/LC_MESSAGES/django*.po", recursive=True)):
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("msgstr") and '"' in line:
                    text = line.split('"', 1)[1].rsplit('"', 1)[0].replace("\\n", " ").strip()
                    russian_letters = sum("\u0430" <= c.lower() <= "\u044f" for c in text)  # Cyrillic a to ya
                    # plural forms repeat a message almost verbatim: keep one of them
                    if len(text) > 25 and russian_letters > len(text) // 2 and text[:24] not in seen:
                        seen.add(text[:24])
                        out.append(text.rstrip(".") + ".")
    return " ".join(out)


def russian(chars: int, seed: int = 0) -> str:
    """Exactly ``chars`` characters of Russian: sentences drawn at random by ``seed``. The corpus
    holds about 6,400 distinct characters, so past that sentences repeat (a 50 KB answer compresses
    better than real Russian would; the 0.5-5 KB sizes are the ones to judge)."""
    sentences = _part(russian_corpus()).split(". ")
    rng = random.Random(seed)
    parts: list[str] = []
    total = 0
    while total < chars:
        parts.append(rng.choice(sentences))
        total += len(parts[-1]) + 2
    return ". ".join(parts)[:chars]


def cyrillic_response(size: int, seed: int = 0) -> dict:
    """The prose shape in Russian; its JSON is about ``size`` bytes (Cyrillic is 2 bytes a letter)."""
    rng = random.Random(seed)
    points = [russian(rng.randint(40, 80), seed + 2 + i) for i in range(size // 1500)]
    overhead = 130 + sum(len(p.encode()) + 3 for p in points)
    body_bytes = max(40, size - overhead)
    body = russian(body_bytes, seed + 1).encode()[:body_bytes].decode("utf-8", "ignore")
    return {
        "summary": body,
        "key_points": points,
        "model": "local-llm-1",
        "usage": {"prompt_tokens": size // 4, "completion_tokens": len(body) // 2, "total_tokens": size // 2},
    }


_FIELD_NAMES = (
    "invoice_number",
    "issue_date",
    "due_date",
    "currency",
    "vendor_name",
    "vendor_vat_id",
    "buyer_name",
    "buyer_country",
    "subtotal",
    "tax_rate",
    "tax_amount",
    "total",
    "payment_terms",
    "po_number",
    "status",
    "language",
    "page_count",
    "confidence",
    "iban",
    "swift",
    "contact_email",
    "category",
)


def fields_response(size: int, seed: int = 0) -> dict:
    """A structured extraction whose JSON is about ``size`` bytes: dozens of short keys, numbers,
    booleans and nested lists of line items and entities."""
    rng = random.Random(seed)
    words = prose(4000, seed).split()
    out: dict = {name: _field_value(name, rng, words) for name in _FIELD_NAMES}
    out["line_items"], out["entities"] = [], []
    import orjson

    while len(orjson.dumps(out)) < size - 120:
        if rng.random() < 0.6:
            out["line_items"].append(
                {
                    "sku": f"SKU-{rng.randrange(10**5):05d}",
                    "description": " ".join(rng.choice(words) for _ in range(rng.randint(2, 5))),
                    "quantity": rng.randint(1, 40),
                    "unit_price": round(rng.uniform(0.5, 900), 2),
                    "discount": rng.choice([0, 0, 5, 10]),
                    "taxable": rng.random() < 0.8,
                }
            )
        else:
            start = rng.randrange(2000)
            out["entities"].append(
                {
                    "text": rng.choice(words),
                    "label": rng.choice(["ORG", "PERSON", "DATE", "MONEY", "GPE"]),
                    "span": [start, start + rng.randint(3, 20)],
                    "score": round(rng.random(), 3),
                }
            )
    out["usage"] = {"prompt_tokens": size // 3, "completion_tokens": size // 5, "total_tokens": size // 2}
    return out


def _field_value(name: str, rng: random.Random, words: list[str]) -> object:
    if name in ("subtotal", "tax_amount", "total"):
        return round(rng.uniform(10, 90000), 2)
    if name in ("tax_rate", "confidence"):
        return round(rng.random(), 3)
    if name == "page_count":
        return rng.randint(1, 12)
    if name.endswith("date"):
        return f"2026-{rng.randint(1, 12):02d}-{rng.randint(1, 28):02d}"
    if name == "currency":
        return rng.choice(["EUR", "USD", "GBP"])
    return " ".join(rng.choice(words) for _ in range(rng.randint(1, 3)))


#: shape name -> response of about ``size`` JSON bytes for ``seed``
SHAPES: dict[str, Callable[[int, int], dict]] = {
    "prose": llm_response,
    "fields": fields_response,
    "cyrillic": cyrillic_response,
}
