"""Template context every dashboard page shares (registered in ``TEMPLATES`` in
``stepstone.settings``)."""

from __future__ import annotations

from typing import Any

from django.utils.functional import SimpleLazyObject

from workflows_app.models import PendingRequest
from workflows_app.permissions import can_view


def open_requests(request: Any) -> dict[str, Any]:
    """``open_request_count``: how many requests wait for an answer, for the navigation's
    Requests link; absent for whoever may not view runs. Counted in one query, and only by
    a template that shows it: the partials the pages fetch to refresh themselves render with
    this processor too, and count nothing."""
    if not can_view(getattr(request, "user", None)):
        return {}
    return {"open_request_count": SimpleLazyObject(PendingRequest.objects.open().count)}
