"""Turn benchmark results into the markdown report (ratios first) and check the targets."""

from __future__ import annotations

from typing import Any


def _by_name(results: list[dict]) -> dict[str, dict]:
    return {r["name"]: r for r in results}


def _table(headers: list[str], rows: list[list[Any]]) -> str:
    def cell(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:,.3f}" if abs(v) < 10 else f"{v:,.1f}"
        return str(v)

    lines = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def targets(data: dict[str, Any]) -> list[dict[str, Any]]:
    """Each target with the measured figure and whether it was met (never a test failure)."""
    out = []
    reads = _by_name(data.get("reads", []))
    mem = next((r for n, r in reads.items() if n.startswith("read 500 chars") and "memory-tier" in n), None)
    loc = next((r for n, r in reads.items() if n.startswith("read 500 chars") and "LocMemCache" in n), None)
    if mem and loc:
        out.append(
            {
                "target": "memory-tier hit (500 chars) p50 <= 5 us and faster than LocMemCache.get",
                "measured": f"{mem['p50_us']:.2f} us vs LocMem {loc['p50_us']:.2f} us",
                "met": mem["p50_us"] <= 5 and mem["p50_us"] < loc["p50_us"],
            }
        )
    for size in ("500", "5000", "50000"):
        ai = next(
            (r for n, r in reads.items() if n.startswith(f"read {size} chars") and "aicache Redis" in n), None
        )
        raw = next(
            (r for n, r in reads.items() if n.startswith(f"read {size} chars") and "raw redis-py" in n), None
        )
        dr = next(
            (r for n, r in reads.items() if n.startswith(f"read {size} chars") and "(pickle)" in n), None
        )
        if ai and raw and dr:
            ratio = ai["p50_us"] / raw["p50_us"]
            out.append(
                {
                    "target": f"Redis hit ({size} chars) <= 1.15x raw GET + orjson, <= django-redis get",
                    "measured": f"{ratio:.2f}x raw; {ai['p50_us'] / dr['p50_us']:.2f}x django-redis",
                    "met": ratio <= 1.15 and ai["p50_us"] <= dr["p50_us"],
                }
            )
    comp = data.get("compression", {}).get("codecs", [])
    z6 = {r["payload_bytes"]: r for r in comp if r["algorithm"] == "zlib" and r["level"] == 6}
    for size, base in sorted(z6.items()):
        if size < 4000:
            continue
        out.append(
            {
                "target": f"zlib-6 stores <= 0.45 of the JSON at {size} B",
                "measured": f"{base['ratio']:.3f}",
                "met": base["ratio"] <= 0.45,
            }
        )
        zstd = [r for r in comp if r["algorithm"] == "zstd" and r["payload_bytes"] == size]
        meeting = [
            r for r in zstd if r["compress_mb_s"] >= 2 * base["compress_mb_s"] and r["ratio"] <= base["ratio"]
        ]
        fastest_2x = max(
            (r for r in zstd if r["compress_mb_s"] >= 2 * base["compress_mb_s"]),
            key=lambda r: r["level"],
            default=None,
        )
        if meeting:
            best = meeting[0]
            measured = (
                f"zstd-{best['level']}: {best['compress_mb_s'] / base['compress_mb_s']:.1f}x the speed, "
                f"ratio {best['ratio']:.3f} vs {base['ratio']:.3f}"
            )
        elif fastest_2x:
            measured = (
                f"none; closest zstd-{fastest_2x['level']}: "
                f"{fastest_2x['compress_mb_s'] / base['compress_mb_s']:.1f}x the speed, ratio "
                f"{fastest_2x['ratio']:.3f} vs {base['ratio']:.3f}"
            )
        else:
            measured = "no zstd level reaches 2x the speed"
        out.append(
            {
                "target": f"some zstd level >= 2x zlib-6 speed at an equal or better ratio ({size} B)",
                "measured": measured,
                "met": bool(meeting),
            }
        )
    mon = _by_name(data.get("monitoring", []))
    for what in ("memory-tier hit", "Redis hit"):
        on = [r["p50_us"] for n, r in mon.items() if n.startswith("monitoring on") and n.endswith(what)]
        off = [r["p50_us"] for n, r in mon.items() if n.startswith("monitoring off") and n.endswith(what)]
        if on and off:
            a, b = min(on), min(off)
            ok = (a - b) < 1.5 if what == "memory-tier hit" else a / b < 1.05
            out.append(
                {
                    "target": f"monitoring overhead on a {what}: "
                    + ("< 1.5 us" if what == "memory-tier hit" else "< 5 %"),
                    "measured": f"+{a - b:.2f} us ({a / b:.3f}x)",
                    "met": ok,
                }
            )
    out += shape_targets(data.get("shapes") or [])
    seed = data.get("seed")
    if seed:
        out.append(
            {
                "target": "seed scenario: p95 per request < 1 ms after warm-up",
                "measured": f"{seed['aicache_warm']['p95_ms']:.3f} ms",
                "met": seed["aicache_warm"]["p95_ms"] < 1,
            }
        )
    return out


#: issue 14's targets: (row label, aicache case, peer case, response bytes, most aicache/peer)
SHAPE_TARGETS = (
    ("memory-tier hit", "aicache memory-tier hit", "LocMemCache.get", 800, 0.6),
    ("Redis hit", "aicache Redis hit", "raw GET + orjson.loads", 800, 1.15),
    ("Redis hit", "aicache Redis hit", "raw GET + orjson.loads", 5000, 1.15),
    ("Redis hit", "aicache Redis hit", "raw GET + orjson.loads", 50000, 1.3),
    ("write", "aicache write", "raw SET of orjson.dumps", 5000, 1.3),
)
STORED_TARGETS = ((800, 0.35), (5000, 0.30))


def _nominal(row: dict[str, Any]) -> int:
    """The nominal size (800, 5000, 50000) a measured response belongs to."""
    return min((800, 5000, 50000), key=lambda n: abs(n - row["response_bytes"]))


def shape_targets(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = []
    for label, mine, peer, size, limit in SHAPE_TARGETS:
        for row in (r for r in rows if _nominal(r) == size):
            ratio = row["p50_us"][mine] / row["p50_us"][peer]
            out.append(
                {
                    "target": f"{label}, {size} B {row['shape']}: <= {limit}x {peer}",
                    "measured": f"{ratio:.2f}x ({row['p50_us'][mine]:.1f} vs {row['p50_us'][peer]:.1f} us)",
                    "met": ratio <= limit,
                }
            )
    for size, limit in STORED_TARGETS:
        for row in (r for r in rows if _nominal(r) == size):
            out.append(
                {
                    "target": f"stored value, {size} B {row['shape']}: <= {limit} of the JSON",
                    "measured": f"{row['stored_ratio']:.3f} with dictionary"
                    if row["dictionary"]
                    else f"{row['stored_ratio']:.3f} (no dictionary: {row['trained']})",
                    "met": row["stored_ratio"] <= limit,
                }
            )
    return out


def shapes_markdown(data: dict[str, Any]) -> list[str]:
    parts: list[str] = []
    rows = data.get("shapes")
    if rows:
        cases = list(rows[0]["p50_us"])
        parts += [
            "",
            "## Targets by payload shape (fastest round's p50, us; default settings, trained dictionary)",
            _table(
                ["shape", "JSON B", *cases],
                [[r["shape"], r["response_bytes"], *r["p50_us"].values()] for r in rows],
            ),
            "",
            "### Stored size and Redis MEMORY USAGE per entry (key, value and index member)",
            _table(
                [
                    "shape",
                    "JSON B",
                    "stored B",
                    "stored/JSON",
                    "without dictionary",
                    "aicache B",
                    "raw SET B",
                    "ratio",
                ],
                [
                    [
                        r["shape"],
                        r["response_bytes"],
                        r["stored_bytes"],
                        r["stored_ratio"],
                        r["stored_ratio_without_dictionary"],
                        r["memory_usage"]["aicache_bytes"],
                        r["memory_usage"]["raw_set_bytes"],
                        r["memory_usage"]["ratio"],
                    ]
                    for r in rows
                ],
            ),
        ]
    codecs = data.get("dictionaries")
    if codecs:
        parts += [
            "",
            "## Dictionaries on and off (zstd-3; ratio includes the frame's 4-byte id)",
            _table(
                ["shape", "JSON B", "codec", "ratio", "compress us", "decompress us"],
                [
                    [
                        r["shape"],
                        r["payload_bytes"],
                        r["codec"],
                        r["ratio"],
                        r["compress_us"],
                        r["decompress_us"],
                    ]
                    for r in codecs
                ],
            ),
        ]
    return parts


def markdown(data: dict[str, Any]) -> str:
    parts = [
        "## Machine",
        _table(["what", "value"], [[k, v] for k, v in data["machine"].items() if k != "libraries"]),
        "",
        _table(["library", "version"], list(data["machine"]["libraries"].items())),
    ]
    if data.get("targets"):
        parts += [
            "",
            "## Targets",
            _table(
                ["target", "measured", "met"],
                [[t["target"], t["measured"], "yes" if t["met"] else "NO"] for t in data["targets"]],
            ),
        ]
    for group, title in (
        ("reads", "Reads"),
        ("writes", "Writes"),
        ("keys", "Key generation"),
        ("monitoring", "Monitoring overhead"),
    ):
        rows = data.get(group)
        if rows:
            parts += [
                "",
                f"## {title}",
                _table(
                    ["case", "p50 us", "p95 us", "p99 us", "ops/s"],
                    [[r["name"], r["p50_us"], r["p95_us"], r["p99_us"], r["ops_per_s"]] for r in rows],
                ),
            ]
            if group == "reads":
                parts += ["", _ratios(rows)]
    comp = data.get("compression")
    if comp:
        parts += [
            "",
            "## Compression",
            _table(
                ["payload B", "algorithm", "level", "ratio", "compress MB/s", "decompress MB/s"],
                [
                    [
                        r["payload_bytes"],
                        r["algorithm"],
                        r["level"],
                        r["ratio"],
                        r["compress_mb_s"],
                        r["decompress_mb_s"],
                    ]
                    for r in comp["codecs"]
                ],
            ),
            "",
            _table(
                ["algorithm", "entries", "response B", "Redis MEMORY USAGE bytes"],
                [
                    [r["algorithm"], r["entries"], r["response_bytes"], r["redis_memory_usage_bytes"]]
                    for r in comp["stored"]
                ],
            ),
        ]
    seed = data.get("seed")
    if seed:
        parts += [
            "",
            "## Seed scenario",
            f"{seed['requests']} requests over {seed['patterns']} patterns, "
            f"{seed['clients']} concurrent clients (warm pass: one client), "
            f"model latency {seed['model_latency_s']} s.",
            "",
            _table(
                ["run", "total s", "p50 ms", "p95 ms", "hit ratio", "model calls"],
                [
                    [
                        "no cache",
                        seed["no_cache"]["total_s"],
                        seed["no_cache"]["p50_ms"],
                        seed["no_cache"]["p95_ms"],
                        "-",
                        seed["no_cache"]["model_calls"],
                    ],
                    [
                        "aicache, cold",
                        seed["aicache_cold"]["total_s"],
                        seed["aicache_cold"]["p50_ms"],
                        seed["aicache_cold"]["p95_ms"],
                        seed["aicache_cold"]["hit_ratio"],
                        seed["aicache_cold"]["model_calls"],
                    ],
                    [
                        "aicache, warm",
                        seed["aicache_warm"]["total_s"],
                        seed["aicache_warm"]["p50_ms"],
                        seed["aicache_warm"]["p95_ms"],
                        seed["aicache_warm"]["hit_ratio"],
                        0,
                    ],
                ],
            ),
        ]
    if data.get("concurrency"):
        parts += [
            "",
            "## Concurrency (get_or_compute, mostly hits over 200 keys)",
            _table(
                ["tier", "workers", "ops/s"],
                [[r["tier"], r["workers"], r["ops_per_s"]] for r in data["concurrency"]],
            ),
        ]
    if data.get("invalidation"):
        parts += [
            "",
            "## Invalidation",
            _table(
                [
                    "method",
                    "entries",
                    "other entries",
                    "removed",
                    "seconds",
                    "reader p50 ms",
                    "reader p99 ms",
                    "reader worst ms",
                ],
                [
                    [
                        r["method"],
                        r["entries"],
                        r["other_entries"],
                        r["removed"],
                        r["seconds"],
                        r["reader_p50_ms"],
                        r["reader_p99_ms"],
                        r["reader_worst_ms"],
                    ]
                    for r in data["invalidation"]
                ],
            ),
        ]
    parts += shapes_markdown(data)
    return "\n".join(parts) + "\n"


def _ratios(rows: list[dict]) -> str:
    """aicache / alternative, per size, on p50."""
    out_rows = []
    for size in ("500", "5000", "50000"):
        group = {r["name"].split(": ", 1)[1]: r for r in rows if r["name"].startswith(f"read {size} chars")}
        for mine in ("aicache memory-tier hit", "aicache Redis hit", "aicache Redis hit (zlib)"):
            if mine not in group:
                continue
            for other, r in group.items():
                if not other.startswith("aicache"):
                    out_rows.append([f"{size} chars", mine, other, group[mine]["p50_us"] / r["p50_us"]])
    return _table(["text", "aicache", "vs", "p50 ratio (lower is better)"], out_rows)
