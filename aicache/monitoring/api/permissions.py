"""Who may do what: reads need staff; invalidate and reset need a named permission."""

from __future__ import annotations

from typing import Any

from rest_framework.permissions import BasePermission

INVALIDATE_PERMISSION = "aicache_monitoring.invalidate_cache"


class IsStaff(BasePermission):
    """An active, authenticated staff user (session or token)."""

    message = "Staff only."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.is_active and user.is_staff)


class CanInvalidateCache(BasePermission):
    """``aicache_monitoring.invalidate_cache`` (superusers hold every permission)."""

    message = f"Needs the {INVALIDATE_PERMISSION} permission."

    def has_permission(self, request: Any, view: Any) -> bool:
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm(INVALIDATE_PERMISSION))
