"""Deterministic, realistic inputs: English prose and LLM-shaped responses.

The prose is real English: the Python documentation topics that ship with CPython
(``pydoc_data.topics``), with markup and code blocks stripped, so it compresses like the text an
LLM reads and writes, not like repeated characters or a toy vocabulary.
"""

from __future__ import annotations

import functools
import random
import re


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
    text = corpus()
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
