"""The monitoring app's DRF JSON API (mounted by the project at ``/api/aicache/``)."""
