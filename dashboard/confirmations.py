"""What the dashboard asks before an action that discards work or leaves it behind: the
texts of the confirmation dialogs (``data-confirm``, see ``static/dashboard/confirm.js``) on
the run page and the checkpoint page, naming what will happen to the run's open requests."""

from __future__ import annotations

from workflows_app.models import PendingRequest, Run
from workflows_app.states import RunStatus

from .request_items import request_kind


def confirmations(run: Run, open_requests: list[PendingRequest]) -> dict[str, str]:
    """What the page asks before an action that discards work or leaves it behind."""
    named = ", ".join(f"{r.source_executor_id} {request_kind(r) or 'request'} "
                      f"({r.request_id[:8]})" for r in open_requests)
    plural = "s" if len(open_requests) != 1 else ""
    requests_cancelled = (f" The open request{plural} {named} will be cancelled."
                          if open_requests else "")
    stops = ("It stops at its next checkpoint." if run.status == RunStatus.RUNNING
             else "It stops now.")
    return {
        "confirm_resume": ("Work after that checkpoint is set aside as an abandoned branch."
                           + requests_cancelled),
        "confirm_cancel": f"Cancel this run? {stops}{requests_cancelled}",
        "confirm_rehydrate": (f"This run keeps waiting on its open request{plural} {named}; "
                              f"the new run asks again." if open_requests else ""),
    }
