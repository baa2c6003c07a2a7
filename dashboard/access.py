"""Who may see and do what on the dashboard: every view checks one of
``workflows_app.permissions``' predicates through ``require``."""

from __future__ import annotations

from typing import Any, Callable

from django.core.exceptions import PermissionDenied


def require(request: Any, check: Callable[[Any], bool]) -> None:
    """Refuse the request (403) unless ``check(request.user)`` holds."""
    if not check(request.user):
        raise PermissionDenied("your account may not do this")
