"""The package's exceptions: one root, a few specific subclasses."""


class AICacheError(Exception):
    """Root of every error aicache raises on purpose."""


class CodecError(AICacheError):
    """Bytes read from Redis are not a valid aicache entry (unknown, truncated or corrupt)."""


class CacheUnavailable(AICacheError):
    """Redis could not be reached, or the circuit breaker is open."""
