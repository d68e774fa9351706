"""Benchmarks for aicache and the caches users would use instead (``manage.py aicache_benchmark``)."""
