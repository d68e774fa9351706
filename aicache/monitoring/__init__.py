"""aicache.monitoring: events, the in-process recorder, persistence, API and dashboards.

``from aicache.monitoring import CachePerformanceMonitor`` works as in the original; the recorder
is imported on first use (lazily), so importing this package never touches the app registry.
"""

from __future__ import annotations

from typing import Any

__all__ = ["CachePerformanceMonitor"]


def __getattr__(name: str) -> Any:
    if name == "CachePerformanceMonitor":
        from aicache.monitoring.recorder import CachePerformanceMonitor

        return CachePerformanceMonitor
    raise AttributeError(f"module 'aicache.monitoring' has no attribute {name!r}")
