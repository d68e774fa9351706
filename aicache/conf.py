"""One settings object for aicache.

Values come from three layers, last wins: the defaults below, the global ``settings.AICACHE``
dict, and a cache's own ``OPTIONS`` in ``CACHES``. ``validate()`` turns a merged dict into a list of
problems (used by the system checks and by the backend); ``parse()`` turns a valid one into the
typed, frozen :class:`CacheConfig` the backend keeps.

The global object ``aicache_settings`` resolves ``settings.AICACHE`` lazily and forgets it when the
setting changes (tests use ``override_settings``), the way DRF's ``api_settings`` does.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from itertools import pairwise
from typing import Any

from django.conf import settings
from django.core.signals import setting_changed
from django.dispatch import receiver

# Always used with fullmatch: ``$`` alone would accept a trailing newline ("summarize\n").
OPERATION_RE = re.compile(r"[a-z0-9_-]{1,64}")
PREFIX_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}")
#: The longest TTL accepted anywhere (10 years): larger values are mistakes that Redis or the
#: index arithmetic would reject only after the LLM was paid.
MAX_TTL = 10 * 365 * 24 * 3600
#: The longest timeout or interval accepted (a day): beyond it a wait is a mistake, and huge
#: values overflow the platform's timers.
MAX_SECONDS = 24 * 3600
#: Most entries one dictionary training samples (aicache.dictionaries.DEFAULT_SAMPLES): a larger
#: DICTIONARY_MIN_SAMPLES could never be met.
DICTIONARY_SAMPLES = 2000

DEFAULTS: dict[str, Any] = {
    # text length (characters) -> tier; anything longer than the last bound is "xlarge"
    "TEXT_SIZE_TIERS": {"small": 500, "medium": 5000, "large": 50000},
    "MEMORY_TIERS": ["small"],
    "MEMORY_CACHE_SIZE": 100,
    "MEMORY_CACHE_MAX_BYTES": 10 * 1024 * 1024,
    # "tracking": Redis client tracking keeps every process's tier coherent; "local": no
    # cross-process coherence (one process only, or tests on fakeredis)
    "MEMORY_COHERENCE": "tracking",
    # zstd by default; None: the algorithm's own default level (zlib 6, zstd 3). A 256 B response
    # already shrinks by half with a trained dictionary (docs/performance.md, "Dictionaries").
    "COMPRESSION_THRESHOLD": 256,
    "COMPRESSION_LEVEL": None,
    "COMPRESSION_ALGORITHM": "zstd",
    # trained zstd dictionaries per operation (aicache.dictionaries): writers use the published
    # one; the train_dictionaries task or command trains an operation once it has MIN_SAMPLES
    # entries; every process re-reads an operation's current dictionary every REFRESH seconds
    "COMPRESSION_DICTIONARIES": True,
    "DICTIONARY_MIN_SAMPLES": 200,
    "DICTIONARY_SIZE": 16384,
    "DICTIONARY_REFRESH_SECONDS": 60.0,
    "HASH_ALGORITHM": "sha256",
    "DEFAULT_TTL": 3600,
    "OPERATION_TTLS": {
        "summarize": 7200,
        "sentiment": 86400,
        "key_points": 7200,
        "questions": 3600,
        "qa": 1800,
    },
    "KEY_PREFIX": "ai_cache",
    "MAX_TEXT_LENGTH": 1_000_000,
    "MAX_RESPONSE_BYTES": 8 * 1024 * 1024,
    "CIRCUIT_BREAKER_FAILURES": 3,
    "CIRCUIT_BREAKER_RESET_SECONDS": 5.0,
    "SOCKET_TIMEOUT": 0.5,
    "SOCKET_CONNECT_TIMEOUT": 0.5,
    # Sentinel/replication: aicache's reads from a replica (possibly stale, so they never fill the
    # memory tier); writes, locks and fences always go to the master
    "READ_FROM_REPLICAS": False,
    "SINGLE_FLIGHT_LOCK_TIMEOUT": 30.0,
    "SINGLE_FLIGHT_WAIT_TIMEOUT": 60.0,
    # coherence listener: a probe every PROBE seconds must come back within LIVENESS seconds, or
    # the memory tier is cleared and bypassed until one does
    "COHERENCE_PROBE_SECONDS": 1.0,
    "COHERENCE_LIVENESS_SECONDS": 3.0,
    # savings accounting: a dotted path to ``response -> aicache.savings.Usage | None`` (None reads a
    # ``usage`` mapping and ``model``), and prices per 1,000 tokens by model
    "USAGE_EXTRACTOR": None,
    "MODEL_PRICES": {},
    # signed entries (a Redis shared with other applications): None (off), "auto" (derived from
    # settings.SECRET_KEY), a secret string, or a list of them (the first signs, all verify)
    "SIGNING_KEY": None,
    # monitoring (aicache.monitoring); MONITOR_CLASS None turns recording off
    "MONITOR_CLASS": "aicache.monitoring.recorder.CachePerformanceMonitor",
    "MONITOR_RETENTION_HOURS": 1,
    "MONITOR_MAX_MEASUREMENTS": 1000,
    "KEY_GENERATION_THRESHOLD": 0.1,
    "CACHE_OPERATION_THRESHOLD": 0.05,
    "INVALIDATION_RATE_WARNING_PER_HOUR": 50,
    "INVALIDATION_RATE_CRITICAL_PER_HOUR": 100,
    "MEMORY_WARNING_THRESHOLD_BYTES": 50 * 1024 * 1024,
    "MEMORY_SAMPLE_SECONDS": 10.0,
    "METRICS_EXPORT_SECONDS": 1.0,
    "METRICS_TOKEN": "",
    "METRICS_PUBLIC": False,
    # monitoring history (aicache.monitoring + Celery)
    "HISTORY_ENABLED": True,
    "FLUSH_INTERVAL": 10.0,
    "FLUSH_MAX_ROLLUPS": 2000,
    "FLUSH_BUFFER_BATCHES": 100,
    "RETENTION_RAW_DAYS": 7,
    "RETENTION_ROLLUP_DAYS": 90,
    "MINUTE_ROLLUP_HOURS": 24,
    "CLEANUP_BATCH_SIZE": 5000,
    # admin entry browser: characters of a cached value shown to superusers; 0 shows none
    "ADMIN_ENTRY_PREVIEW_CHARS": 0,
}

XLARGE = "xlarge"
HASH_ALGORITHMS = ("sha256", "blake2b")
COMPRESSION_LEVELS = {"zlib": (0, 9), "zstd": (1, 22)}
COHERENCE_MODES = ("tracking", "local")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


@dataclass(frozen=True, slots=True)
class Problem:
    """One invalid setting: ``code`` is the system check id suffix (``E001`` ...)."""

    code: str
    setting: str
    message: str
    hint: str


# Stable ids: tests and users grep for these.
E_TIERS = "E001"
E_MEMORY = "E002"
E_COMPRESSION = "E003"
E_HASH = "E004"
E_TTL = "E005"
E_PREFIX = "E006"
E_LIMITS = "E007"
E_SERIALIZER = "E009"
E_RESILIENCE = "E010"
E_MONITORING = "E011"
E_PROCESS_WIDE = "E012"
E_SAVINGS = "E014"
E_SIGNING = "E015"
W_DICTIONARIES = "W002"
MIN_SIGNING_KEY_LENGTH = 16

# Monitoring settings that belong to the whole process (one /metrics endpoint, one history sender,
# one set of retention jobs): they go in settings.AICACHE, and a cache's OPTIONS naming one is
# refused by the system check aicache.E012 rather than silently ignored.
PROCESS_WIDE_SETTINGS = (
    "MODEL_PRICES",
    "METRICS_TOKEN",
    "METRICS_PUBLIC",
    "FLUSH_INTERVAL",
    "FLUSH_MAX_ROLLUPS",
    "FLUSH_BUFFER_BATCHES",
    "RETENTION_RAW_DAYS",
    "RETENTION_ROLLUP_DAYS",
    "MINUTE_ROLLUP_HOURS",
    "CLEANUP_BATCH_SIZE",
    "ADMIN_ENTRY_PREVIEW_CHARS",
)


def process_wide_in_options(options: Mapping[str, Any]) -> list[Problem]:
    """A cache's OPTIONS naming a process-wide monitoring setting (see PROCESS_WIDE_SETTINGS)."""
    return [
        Problem(
            E_PROCESS_WIDE,
            name,
            f"AICACHE {name} is process-wide and cannot be set in a cache's OPTIONS.",
            f"Move {name} to settings.AICACHE.",
        )
        for name in PROCESS_WIDE_SETTINGS
        if name in options
    ]


def validate(raw: Mapping[str, Any]) -> list[Problem]:
    """Every problem in a merged configuration; an empty list means ``parse()`` will succeed."""
    problems: list[Problem] = []

    def bad(code: str, name: str, message: str, hint: str) -> None:
        problems.append(Problem(code, name, f"AICACHE {name}: {message}", hint))

    tiers = raw["TEXT_SIZE_TIERS"]
    if not isinstance(tiers, Mapping) or not tiers:
        bad(
            E_TIERS,
            "TEXT_SIZE_TIERS",
            "must be a non-empty dict of tier name -> max characters.",
            'e.g. {"small": 500, "medium": 5000, "large": 50000}',
        )
    else:
        bounds = list(tiers.values())
        names = list(tiers)
        if not all(isinstance(n, str) and OPERATION_RE.fullmatch(n) for n in names) or XLARGE in names:
            bad(
                E_TIERS,
                "TEXT_SIZE_TIERS",
                f"tier names must be short [a-z0-9_-] tokens other than {XLARGE!r}.",
                f"{XLARGE!r} is the implicit tier above the last bound.",
            )
        elif not all(_is_int(b) and b > 0 for b in bounds):
            bad(
                E_TIERS,
                "TEXT_SIZE_TIERS",
                "every bound must be a positive integer (characters).",
                "Use whole character counts.",
            )
        elif any(a >= b for a, b in pairwise(bounds)):
            bad(
                E_TIERS,
                "TEXT_SIZE_TIERS",
                f"bounds must increase strictly in order, got {bounds}.",
                "List tiers from smallest to largest.",
            )

    memory_tiers = raw["MEMORY_TIERS"]
    tiers_ok = not problems
    known = set(tiers) | {XLARGE} if tiers_ok else set()
    if isinstance(memory_tiers, str) or not isinstance(memory_tiers, (list, tuple, set, frozenset)):
        bad(
            E_MEMORY,
            "MEMORY_TIERS",
            "must be a list of tier names.",
            'e.g. ["small"]; [] disables the memory tier.',
        )
    elif tiers_ok and (unknown := sorted(str(t) for t in memory_tiers if t not in known)):
        bad(E_MEMORY, "MEMORY_TIERS", f"unknown tier(s) {unknown}.", f"Known tiers: {sorted(known)}.")
    for name in ("MEMORY_CACHE_SIZE", "MEMORY_CACHE_MAX_BYTES"):
        if not _is_int(raw[name]) or raw[name] < 0:
            bad(
                E_MEMORY,
                name,
                f"must be a non-negative integer, got {raw[name]!r}.",
                "0 disables the memory tier.",
            )

    if raw["MEMORY_COHERENCE"] not in COHERENCE_MODES:
        bad(
            E_MEMORY,
            "MEMORY_COHERENCE",
            f"must be one of {list(COHERENCE_MODES)}, got {raw['MEMORY_COHERENCE']!r}.",
            '"local" is only safe when a single process uses the cache.',
        )

    algorithm = raw["COMPRESSION_ALGORITHM"]
    if not isinstance(algorithm, str) or not algorithm:
        bad(
            E_COMPRESSION,
            "COMPRESSION_ALGORITHM",
            f"must be a name or dotted path, got {algorithm!r}.",
            '"zlib", "zstd", "none" or a dotted path to a compressor class.',
        )
    else:
        from aicache.codec import CodecError, compressor_class

        try:
            compressor_class(algorithm)
        except CodecError as exc:
            hint = '"zlib", "zstd", "none" or a dotted path.'
            if algorithm == "zstd":
                hint = f'{install_hint("zstd")} (or use "zlib", which needs nothing).'
            bad(E_COMPRESSION, "COMPRESSION_ALGORITHM", str(exc), hint)
        level = raw["COMPRESSION_LEVEL"]
        low, high = COMPRESSION_LEVELS.get(algorithm, (-(2**31), 2**31))
        if level is not None and (not _is_int(level) or not low <= level <= high):
            bad(
                E_COMPRESSION,
                "COMPRESSION_LEVEL",
                f"must be an integer in [{low}, {high}] for {algorithm}, got {level!r}.",
                "zlib takes 0-9, zstd 1-22; None picks the algorithm's default (zlib 6, zstd 3).",
            )
    if not _is_int(raw["COMPRESSION_THRESHOLD"]) or raw["COMPRESSION_THRESHOLD"] < 0:
        bad(
            E_COMPRESSION,
            "COMPRESSION_THRESHOLD",
            f"must be a non-negative integer (bytes), got {raw['COMPRESSION_THRESHOLD']!r}.",
            "Entries at least this many bytes long are compressed.",
        )
    problems.extend(validate_dictionaries(raw))

    if raw["HASH_ALGORITHM"] not in HASH_ALGORITHMS:
        bad(
            E_HASH,
            "HASH_ALGORITHM",
            f"unknown algorithm {raw['HASH_ALGORITHM']!r}.",
            f"One of {list(HASH_ALGORITHMS)}.",
        )

    if not _is_int(raw["DEFAULT_TTL"]) or not 0 < raw["DEFAULT_TTL"] <= MAX_TTL:
        bad(
            E_TTL,
            "DEFAULT_TTL",
            f"must be a positive integer (seconds) up to {MAX_TTL}, got {raw['DEFAULT_TTL']!r}.",
            "e.g. 3600",
        )
    ttls = raw["OPERATION_TTLS"]
    if not isinstance(ttls, Mapping):
        bad(E_TTL, "OPERATION_TTLS", "must be a dict of operation -> seconds.", '{"summarize": 7200}')
    else:
        for op, ttl in ttls.items():
            if not isinstance(op, str) or not OPERATION_RE.fullmatch(op):
                bad(
                    E_TTL,
                    "OPERATION_TTLS",
                    f"{op!r} is not an operation token ([a-z0-9_-], 1-64 chars).",
                    "Rename it.",
                )
            elif not _is_int(ttl) or not 0 < ttl <= MAX_TTL:
                bad(
                    E_TTL,
                    "OPERATION_TTLS",
                    f"TTL of {op!r} must be a positive integer (seconds) up to {MAX_TTL}, got {ttl!r}.",
                    "e.g. 7200",
                )

    if not isinstance(raw["KEY_PREFIX"], str) or not PREFIX_RE.fullmatch(raw["KEY_PREFIX"]):
        bad(
            E_PREFIX,
            "KEY_PREFIX",
            f"must be 1-64 characters of [A-Za-z0-9_.-], got {raw['KEY_PREFIX']!r}.",
            "No glob characters or colons: the prefix is matched literally.",
        )

    for name in ("MAX_TEXT_LENGTH", "MAX_RESPONSE_BYTES", "CIRCUIT_BREAKER_FAILURES"):
        if not _is_int(raw[name]) or raw[name] <= 0:
            bad(
                E_LIMITS if name.startswith("MAX") else E_RESILIENCE,
                name,
                f"must be a positive integer, got {raw[name]!r}.",
                "See the configuration table in README.",
            )
    for name in (
        "CIRCUIT_BREAKER_RESET_SECONDS",
        "SOCKET_TIMEOUT",
        "SOCKET_CONNECT_TIMEOUT",
        "SINGLE_FLIGHT_LOCK_TIMEOUT",
        "SINGLE_FLIGHT_WAIT_TIMEOUT",
        "COHERENCE_PROBE_SECONDS",
        "COHERENCE_LIVENESS_SECONDS",
    ):
        if not _is_number(raw[name]) or not 0 < raw[name] <= MAX_SECONDS:
            bad(
                E_RESILIENCE,
                name,
                f"must be a positive number of seconds up to {MAX_SECONDS}, got {raw[name]!r}.",
                "Bounded timeouts keep a dead Redis from stalling requests.",
            )
    probe, liveness = raw["COHERENCE_PROBE_SECONDS"], raw["COHERENCE_LIVENESS_SECONDS"]
    both_valid = all(_is_number(v) and 0 < v < math.inf for v in (probe, liveness))
    if both_valid and not liveness > probe:
        bad(
            E_RESILIENCE,
            "COHERENCE_LIVENESS_SECONDS",
            f"({liveness}) must be longer than COHERENCE_PROBE_SECONDS ({probe}).",
            "A probe must have time to come back before the proof lapses: e.g. 3x the probe interval.",
        )
    if not isinstance(raw["READ_FROM_REPLICAS"], bool):
        bad(
            E_RESILIENCE,
            "READ_FROM_REPLICAS",
            f"must be True or False, got {raw['READ_FROM_REPLICAS']!r}.",
            "Replica reads can be stale; False is the default.",
        )
    problems.extend(validate_signing(raw))
    problems.extend(validate_savings(raw))
    problems.extend(validate_monitoring(raw))
    return problems


def validate_dictionaries(raw: Mapping[str, Any]) -> list[Problem]:
    problems = []
    checks = (
        ("COMPRESSION_DICTIONARIES", isinstance(raw["COMPRESSION_DICTIONARIES"], bool), "True or False"),
        (
            "DICTIONARY_MIN_SAMPLES",
            _is_int(raw["DICTIONARY_MIN_SAMPLES"])
            and 10 <= raw["DICTIONARY_MIN_SAMPLES"] <= DICTIONARY_SAMPLES,
            f"an integer from 10 to {DICTIONARY_SAMPLES} (training samples at most that many entries)",
        ),
        (
            "DICTIONARY_SIZE",
            _is_int(raw["DICTIONARY_SIZE"]) and 1024 <= raw["DICTIONARY_SIZE"] <= 1 << 20,
            "an integer from 1024 to 1048576 (bytes)",
        ),
        (
            "DICTIONARY_REFRESH_SECONDS",
            _is_number(raw["DICTIONARY_REFRESH_SECONDS"])
            and 0 < raw["DICTIONARY_REFRESH_SECONDS"] <= MAX_SECONDS,
            f"a number of seconds in (0, {MAX_SECONDS}]",
        ),
    )
    for name, ok, expected in checks:
        if not ok:
            problems.append(
                Problem(
                    E_COMPRESSION,
                    name,
                    f"AICACHE {name}: must be {expected}, got {raw[name]!r}.",
                    "See README, Performance (trained dictionaries).",
                )
            )
    return problems


def dictionary_warnings(options: Mapping[str, Any] | None = None) -> list[Problem]:
    """W002: COMPRESSION_DICTIONARIES set to True (in AICACHE or the cache's OPTIONS) while the
    algorithm is not "zstd": trained dictionaries are zstd's, so writers use none and the setting
    does nothing. A warning, not an error: frames written with a dictionary stay readable under any
    algorithm, and the default (True) stays quiet, so switching to zlib needs one setting only."""
    user = aicache_settings.user_settings
    explicit = "COMPRESSION_DICTIONARIES" in user or "COMPRESSION_DICTIONARIES" in (options or {})
    raw = merged(options)
    algorithm = raw["COMPRESSION_ALGORITHM"]
    if not explicit or raw["COMPRESSION_DICTIONARIES"] is not True or algorithm == "zstd":
        return []
    return [
        Problem(
            W_DICTIONARIES,
            "COMPRESSION_DICTIONARIES",
            f"AICACHE COMPRESSION_DICTIONARIES is True but COMPRESSION_ALGORITHM is {algorithm!r}: "
            "trained dictionaries are zstd's, so no response is written with one.",
            'Use COMPRESSION_ALGORITHM "zstd", or set COMPRESSION_DICTIONARIES to False.',
        )
    ]


def validate_signing(raw: Mapping[str, Any]) -> list[Problem]:
    value = raw["SIGNING_KEY"]
    keys = value if isinstance(value, (list, tuple)) else [value]
    if value is None or value == "auto":
        return []
    if not keys or not all(isinstance(k, str) and len(k) >= MIN_SIGNING_KEY_LENGTH for k in keys):
        return [
            Problem(
                E_SIGNING,
                "SIGNING_KEY",
                f"AICACHE SIGNING_KEY: must be None, 'auto', a secret of at least {MIN_SIGNING_KEY_LENGTH} "
                "characters, or a non-empty list of such secrets (the first signs).",
                'e.g. "auto" (derived from SECRET_KEY) or [os.environ["AICACHE_SIGNING_KEY"], old_key]',
            )
        ]
    return []


def signing_keys(value: Any) -> tuple[bytes, ...]:
    """The HMAC keys of a valid SIGNING_KEY value (the first signs)."""
    if value is None:
        return ()
    if value == "auto":
        import hashlib
        import hmac

        secret = str(getattr(settings, "SECRET_KEY", "")).encode()
        return (hmac.new(secret, b"aicache.signing-key", hashlib.sha256).digest(),)
    keys = value if isinstance(value, (list, tuple)) else [value]
    return tuple(k.encode() for k in keys)


def validate_savings(raw: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []

    def bad(name: str, message: str, hint: str) -> None:
        problems.append(Problem(E_SAVINGS, name, f"AICACHE {name}: {message}", hint))

    extractor = raw["USAGE_EXTRACTOR"]
    if extractor is not None:
        from django.utils.module_loading import import_string

        if not isinstance(extractor, str) or not extractor:
            bad(
                "USAGE_EXTRACTOR",
                f"must be a dotted path or None, got {extractor!r}.",
                "e.g. 'myapp.llm.usage'",
            )
        else:
            try:
                if not callable(import_string(extractor)):
                    bad(
                        "USAGE_EXTRACTOR",
                        f"{extractor!r} is not callable.",
                        "A function response -> Usage | None.",
                    )
            except ImportError as exc:
                bad("USAGE_EXTRACTOR", f"cannot import {extractor!r}: {exc}", "Check the dotted path.")
    prices = raw["MODEL_PRICES"]
    hint = 'e.g. {"gpt-4o": {"prompt_per_1k": 0.0025, "completion_per_1k": 0.01, "currency": "USD"}}'
    if not isinstance(prices, Mapping):
        bad("MODEL_PRICES", "must be a dict of model -> prices.", hint)
        return problems
    for model, price in prices.items():
        if not isinstance(model, str) or not model or len(model) > 128:
            bad("MODEL_PRICES", f"model names must be 1-128 character strings, got {model!r}.", hint)
            continue
        if not isinstance(price, Mapping) or set(price) - {"prompt_per_1k", "completion_per_1k", "currency"}:
            bad("MODEL_PRICES", f"{model!r}: keys are prompt_per_1k, completion_per_1k, currency.", hint)
            continue
        for key in ("prompt_per_1k", "completion_per_1k"):
            value = price.get(key)
            if not _is_number(value) or not 0 <= value < math.inf:
                bad("MODEL_PRICES", f"{model!r} {key} must be a non-negative number, got {value!r}.", hint)
        currency = price.get("currency", "USD")
        if not isinstance(currency, str) or not re.fullmatch(r"[A-Z]{3}", currency):
            bad("MODEL_PRICES", f"{model!r} currency must be a 3-letter code, got {currency!r}.", hint)
    return problems


def validate_monitoring(raw: Mapping[str, Any]) -> list[Problem]:
    problems: list[Problem] = []

    def bad(name: str, message: str, hint: str) -> None:
        problems.append(Problem(E_MONITORING, name, f"AICACHE {name}: {message}", hint))

    cls = raw["MONITOR_CLASS"]
    if cls not in (None, "") and not isinstance(cls, str):
        bad("MONITOR_CLASS", f"must be a dotted path or None, got {cls!r}.", "None turns monitoring off.")
    elif cls:
        from django.utils.module_loading import import_string

        try:
            import_string(cls)
        except ImportError as exc:
            bad("MONITOR_CLASS", f"cannot import {cls!r}: {exc}", "Check the dotted path.")
    for name in (
        "MONITOR_MAX_MEASUREMENTS",
        "MEMORY_WARNING_THRESHOLD_BYTES",
        "FLUSH_MAX_ROLLUPS",
        "FLUSH_BUFFER_BATCHES",
        "RETENTION_RAW_DAYS",
        "RETENTION_ROLLUP_DAYS",
        "MINUTE_ROLLUP_HOURS",
        "CLEANUP_BATCH_SIZE",
    ):
        if not _is_int(raw[name]) or raw[name] <= 0:
            bad(name, f"must be a positive integer, got {raw[name]!r}.", "See README's configuration table.")
    for name in (
        "MONITOR_RETENTION_HOURS",
        "KEY_GENERATION_THRESHOLD",
        "CACHE_OPERATION_THRESHOLD",
        "INVALIDATION_RATE_WARNING_PER_HOUR",
        "INVALIDATION_RATE_CRITICAL_PER_HOUR",
        "MEMORY_SAMPLE_SECONDS",
        "METRICS_EXPORT_SECONDS",
        "FLUSH_INTERVAL",
    ):
        if not _is_number(raw[name]) or not 0 < raw[name] < math.inf:  # NaN fails both comparisons
            bad(name, f"must be a positive, finite number, got {raw[name]!r}.", "Durations are in seconds.")
    warn, crit = raw["INVALIDATION_RATE_WARNING_PER_HOUR"], raw["INVALIDATION_RATE_CRITICAL_PER_HOUR"]
    if _is_number(warn) and _is_number(crit) and warn > crit:
        bad(
            "INVALIDATION_RATE_CRITICAL_PER_HOUR",
            f"({crit}) is below the warning rate ({warn}).",
            "The critical rate must be at least the warning rate.",
        )
    if not isinstance(raw["METRICS_TOKEN"], str):
        bad("METRICS_TOKEN", "must be a string.", "An empty string means no token.")
    if not isinstance(raw["HISTORY_ENABLED"], bool):
        bad("HISTORY_ENABLED", "must be True or False.", "False keeps monitoring in-process only.")
    preview = raw["ADMIN_ENTRY_PREVIEW_CHARS"]
    if not _is_int(preview) or not 0 <= preview <= 10_000:
        bad(
            "ADMIN_ENTRY_PREVIEW_CHARS",
            f"must be an integer from 0 to 10000, got {preview!r}.",
            "0 (the default) never shows cached values in the admin.",
        )
    if not isinstance(raw["METRICS_PUBLIC"], bool):
        bad("METRICS_PUBLIC", "must be True or False.", "False: /metrics needs the token or a staff user.")
    return problems


def install_hint(extra: str) -> str:
    """The command that installs an optional part of aicache (pyproject's extras)."""
    return f'pip install "aicache[{extra}]"'


# Imported by aicache.monitoring whatever the configuration: /metrics, the Celery history and the
# API that aicache.urls includes.
MONITORING_REQUIRES = ("prometheus_client", "celery", "kombu", "rest_framework", "drf_spectacular")


def require_modules(modules: tuple[str, ...], extra: str, what: str) -> None:
    """Raise ``ImproperlyConfigured`` naming the extra to install when a module is missing, rather
    than the bare ``ModuleNotFoundError`` its first import would raise."""
    from importlib import import_module

    missing = []
    for name in modules:
        try:
            import_module(name)
        except ImportError:
            missing.append(name)
    if missing:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured(
            f"{what} needs {', '.join(missing)} (not installed): {install_hint(extra)}"
        )


def unknown_keys(user: Mapping[str, Any]) -> list[str]:
    return sorted(k for k in user if k not in DEFAULTS)


@dataclass(frozen=True, slots=True)
class CacheConfig:
    """The validated, typed configuration one backend instance works with."""

    text_size_tiers: tuple[tuple[str, int], ...]
    memory_tiers: frozenset[str]
    memory_cache_size: int
    memory_cache_max_bytes: int
    memory_coherence: str
    compression_threshold: int
    compression_level: int
    compression_algorithm: str
    hash_algorithm: str
    default_ttl: int
    operation_ttls: Mapping[str, int]
    key_prefix: str
    max_text_length: int
    max_response_bytes: int
    circuit_breaker_failures: int
    circuit_breaker_reset_seconds: float
    socket_timeout: float
    socket_connect_timeout: float
    single_flight_lock_timeout: float
    single_flight_wait_timeout: float
    coherence_probe_seconds: float
    coherence_liveness_seconds: float
    usage_extractor: str | None
    signing_keys: tuple[bytes, ...]
    monitor_class: str | None
    monitor_options: Mapping[str, Any]
    memory_sample_seconds: float
    metrics_export_seconds: float
    history_enabled: bool = True
    read_from_replicas: bool = False
    compression_dictionaries: bool = True
    dictionary_min_samples: int = 200
    dictionary_size: int = 16384
    dictionary_refresh_seconds: float = 60.0


def merged(options: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """Defaults, then ``settings.AICACHE``, then the cache's ``OPTIONS`` (aicache keys only)."""
    raw = dict(DEFAULTS)
    raw.update(aicache_settings.user_settings)
    if options:
        raw.update({k: v for k, v in options.items() if k in DEFAULTS})
    return raw


def parse(raw: Mapping[str, Any]) -> CacheConfig:
    """Typed config from a merged dict. Raises ``ImproperlyConfigured`` listing every problem."""
    problems = validate(raw)
    if problems:
        from django.core.exceptions import ImproperlyConfigured

        raise ImproperlyConfigured("; ".join(p.message for p in problems))
    return CacheConfig(
        text_size_tiers=tuple((str(k), int(v)) for k, v in raw["TEXT_SIZE_TIERS"].items()),
        memory_tiers=frozenset(raw["MEMORY_TIERS"]),
        memory_cache_size=raw["MEMORY_CACHE_SIZE"],
        memory_cache_max_bytes=raw["MEMORY_CACHE_MAX_BYTES"],
        memory_coherence=raw["MEMORY_COHERENCE"],
        compression_threshold=raw["COMPRESSION_THRESHOLD"],
        compression_level=raw["COMPRESSION_LEVEL"],
        compression_algorithm=raw["COMPRESSION_ALGORITHM"],
        hash_algorithm=raw["HASH_ALGORITHM"],
        default_ttl=raw["DEFAULT_TTL"],
        operation_ttls=dict(raw["OPERATION_TTLS"]),
        key_prefix=raw["KEY_PREFIX"],
        max_text_length=raw["MAX_TEXT_LENGTH"],
        max_response_bytes=raw["MAX_RESPONSE_BYTES"],
        circuit_breaker_failures=raw["CIRCUIT_BREAKER_FAILURES"],
        circuit_breaker_reset_seconds=float(raw["CIRCUIT_BREAKER_RESET_SECONDS"]),
        socket_timeout=float(raw["SOCKET_TIMEOUT"]),
        socket_connect_timeout=float(raw["SOCKET_CONNECT_TIMEOUT"]),
        read_from_replicas=raw["READ_FROM_REPLICAS"],
        single_flight_lock_timeout=float(raw["SINGLE_FLIGHT_LOCK_TIMEOUT"]),
        single_flight_wait_timeout=float(raw["SINGLE_FLIGHT_WAIT_TIMEOUT"]),
        coherence_probe_seconds=float(raw["COHERENCE_PROBE_SECONDS"]),
        coherence_liveness_seconds=float(raw["COHERENCE_LIVENESS_SECONDS"]),
        usage_extractor=raw["USAGE_EXTRACTOR"],
        signing_keys=signing_keys(raw["SIGNING_KEY"]),
        monitor_class=raw["MONITOR_CLASS"] or None,
        monitor_options={
            "retention_hours": raw["MONITOR_RETENTION_HOURS"],
            "max_measurements": raw["MONITOR_MAX_MEASUREMENTS"],
            "key_generation_threshold": raw["KEY_GENERATION_THRESHOLD"],
            "cache_operation_threshold": raw["CACHE_OPERATION_THRESHOLD"],
            "invalidation_rate_warning_per_hour": raw["INVALIDATION_RATE_WARNING_PER_HOUR"],
            "invalidation_rate_critical_per_hour": raw["INVALIDATION_RATE_CRITICAL_PER_HOUR"],
            "memory_warning_threshold_bytes": raw["MEMORY_WARNING_THRESHOLD_BYTES"],
        },
        memory_sample_seconds=float(raw["MEMORY_SAMPLE_SECONDS"]),
        metrics_export_seconds=float(raw["METRICS_EXPORT_SECONDS"]),
        history_enabled=raw["HISTORY_ENABLED"],
        compression_dictionaries=raw["COMPRESSION_DICTIONARIES"],
        dictionary_min_samples=raw["DICTIONARY_MIN_SAMPLES"],
        dictionary_size=raw["DICTIONARY_SIZE"],
        dictionary_refresh_seconds=float(raw["DICTIONARY_REFRESH_SECONDS"]),
    )


class AICacheSettings:
    """Lazy view of ``settings.AICACHE`` merged over the defaults (``aicache_settings.DEFAULT_TTL``)."""

    def __init__(self) -> None:
        self._user: dict[str, Any] | None = None

    @property
    def user_settings(self) -> dict[str, Any]:
        if self._user is None:
            value = getattr(settings, "AICACHE", {})
            self._user = dict(value) if isinstance(value, Mapping) else {}
        return self._user

    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"Unknown aicache setting {name!r}")
        return self.user_settings.get(name, DEFAULTS[name])

    def reload(self) -> None:
        self._user = None


aicache_settings = AICacheSettings()


@receiver(setting_changed)
def _reload(*, setting: str, **kwargs: Any) -> None:
    """``override_settings(AICACHE=...)`` takes effect at once, as Django does for CACHES."""
    if setting == "AICACHE":
        from asgiref.local import Local
        from django.core.cache import caches, close_caches

        from aicache.state import reset_process_state

        aicache_settings.reload()
        close_caches()
        caches._connections = Local()
        reset_process_state()
