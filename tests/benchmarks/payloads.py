"""Deterministic, realistic inputs: English-like prose texts and LLM-shaped responses."""

from __future__ import annotations

import random

_WORDS = (
    "the model cache answer request latency cost token prompt response summary user service "
    "system data quality result question context provider budget minute second memory redis "
    "django process worker review report customer product team policy risk change release "
    "improves reduces explains measures returns stores serves repeats compares expects needs "
    "quickly reliably often rarely carefully clearly every many several important recent "
    "expensive similar different useful large small new old first last same other"
).split()


def prose(chars: int, seed: int = 0) -> str:
    """About ``chars`` characters of sentences made of common words (exactly ``chars`` long)."""
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        n = rng.randint(8, 20)
        sentence = " ".join(rng.choice(_WORDS) for _ in range(n)).capitalize() + ". "
        out.append(sentence)
        size += len(sentence)
    return "".join(out)[:chars]


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
