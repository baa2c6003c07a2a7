"""An open request as the run page and the Requests inbox show it: what was asked, by
whom, and the form that answers it.

A refused answer is kept in the session (``keep_refused_answer``) and the browser sent back
to the page it came from (post/redirect/get), which shows the form as it was submitted, with
its errors, once (``refused_answers``): reloading that page never posts the answer again."""

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


REFUSED_ANSWER_KEY = "stepstone.refused-answer.{pk}"  # session key of a refused answer


def keep_refused_answer(session: Any, pending: PendingRequest, form: ResponseForm) -> None:
    """Keep what was submitted for ``pending`` and the errors no field check finds again
    (the service's refusals), for the next page that shows the request."""
    session[REFUSED_ANSWER_KEY.format(pk=pending.pk)] = {
        "data": {key: value for key, value in form.data.items()
                 if key != "csrfmiddlewaretoken"},
        "errors": [str(error) for error in form.non_field_errors()]}


def refused_answers(session: Any, pending: list[PendingRequest]) -> dict[Any, ResponseForm]:
    """The forms of refused answers kept for ``pending``, bound to what was submitted and
    checked again (so each field shows its error); each is taken from the session once."""
    forms = {}
    for request in pending:
        attempt = session.pop(REFUSED_ANSWER_KEY.format(pk=request.pk), None)
        if attempt is None:
            continue
        form = response_form(request, attempt["data"])
        form.is_valid()
        for error in attempt["errors"]:
            if error not in form.non_field_errors():
                form.add_error(None, error)
        forms[request.pk] = form
    return forms
