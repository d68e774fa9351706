"""A mergeable latency histogram with bounded relative error (DDSketch-style log buckets).

A positive value ``v`` falls in bucket ``i = ceil(log(v) / log(gamma))`` with
``gamma = (1 + a) / (1 - a)``; reporting a bucket by ``2 * gamma**i / (gamma + 1)`` is within
``a`` (relative) of every value in it. Buckets are plain ``{index: count}`` dicts, so sketches from
different processes and minutes merge by adding counts, and serialise to JSON as they are.
Values at or below ``MIN_VALUE`` (including 0) share one bucket.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

RELATIVE_ACCURACY = 0.01
GAMMA = (1 + RELATIVE_ACCURACY) / (1 - RELATIVE_ACCURACY)
_LOG_GAMMA = math.log(GAMMA)
MIN_VALUE = 1e-9  # seconds: a nanosecond
ZERO_BUCKET = -(2**31)


def bucket_of(value: float) -> int:
    if value <= MIN_VALUE:
        return ZERO_BUCKET
    return math.ceil(math.log(value) / _LOG_GAMMA)


def bucket_value(index: int) -> float:
    """The representative value of a bucket (within RELATIVE_ACCURACY of all its members)."""
    if index == ZERO_BUCKET:
        return 0.0
    return 2 * GAMMA**index / (GAMMA + 1)


def merge(into: dict[int, int], other: Mapping[int | str, int]) -> dict[int, int]:
    """Add ``other``'s counts into ``into`` (keys may be str after a JSON round trip)."""
    for index, count in other.items():
        i = int(index)
        into[i] = into.get(i, 0) + count
    return into


def quantiles(buckets: Mapping[int, int], qs: Iterable[float]) -> list[float | None]:
    """Nearest-rank quantiles (q in 0..1: the ceil(q n)-th smallest value, as in
    ``summaries.percentile``), each within RELATIVE_ACCURACY; None when empty."""
    qs = list(qs)
    total = sum(buckets.values())
    if not total:
        return [None for _ in qs]
    ordered = sorted(buckets.items())
    out: list[float | None] = []
    for q in qs:
        rank = max(1, math.ceil(q * total))
        seen = 0
        for index, count in ordered:
            seen += count
            if seen >= rank:
                out.append(bucket_value(index))
                break
    return out


def mean(buckets: Mapping[int, int]) -> float | None:
    total = sum(buckets.values())
    if not total:
        return None
    return sum(bucket_value(i) * c for i, c in buckets.items()) / total


def extremes(buckets: Mapping[int, int]) -> tuple[float | None, float | None]:
    if not buckets:
        return None, None
    return bucket_value(min(buckets)), bucket_value(max(buckets))
