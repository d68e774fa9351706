"""aicache: a Django cache for AI/LLM responses (memory tier + Redis), with monitoring."""

__version__ = "0.1.0"
