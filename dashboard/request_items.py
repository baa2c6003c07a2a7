"""An open request as the run page and the Requests inbox show it: what was asked, by
whom, and the form that answers it."""

from __future__ import annotations

from typing import Any

from workflows_app.models import PendingRequest

from .forms import ResponseForm
from .values import plain_json


def request_kind(pending: PendingRequest) -> str:
    """The request's type by its short name (``ReviewRequest``), or "" for a plain value."""
    data = pending.request_data
    return data.get("class", "").rsplit(".", 1)[-1] if isinstance(data, dict) else ""


def response_form(pending: PendingRequest, data: Any = None) -> ResponseForm:
    # Ids unique per request: the inbox shows many forms with the same field names.
    return ResponseForm(pending.response_schema, data, auto_id=f"id_%s-{pending.pk}")


def request_item(pending: PendingRequest, form: ResponseForm | None = None) -> dict[str, Any]:
    return {"request": pending, "form": form or response_form(pending),
            "kind": request_kind(pending), "data": plain_json(pending.request_data, indent=2)}
