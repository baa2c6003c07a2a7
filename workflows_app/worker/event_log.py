"""Engine events as ``RunEvent`` rows: numbered in order from where the run's history ends,
with the superstep they happened in and a JSON payload.

The row for an event is what pages, sockets and the API show of it (``RunEvent.record_of``
reads it back); payloads are encoded as checkpoints encode values, and a payload that
checkpoints cannot hold is shown by its repr instead of failing the run.
"""

from __future__ import annotations

from typing import Any

from django.utils import timezone

from ..engine import WorkflowEvent
from ..engine.encoding import encode_type, encode_value
from ..engine.errors import WorkflowError


def error_text(error: BaseException) -> str:
    """How a run's error is shown: its type and message."""
    return f"{type(error).__name__}: {error}"


def _displayable(value: Any) -> Any:
    try:
        return encode_value(value)
    except WorkflowError:
        return {"__repr__": repr(value)[:2000]}


def _payload(event: WorkflowEvent) -> dict[str, Any] | Any:
    kind = event.type
    if kind in ("started", "superstep_completed", "stopped"):
        checkpoint = event.checkpoint
        data = {"checkpoint_id": checkpoint.checkpoint_id} if checkpoint else {}
        if kind == "stopped":
            data["reason"] = event.reason
        return data
    if kind == "status":
        return {"state": str(event.state)}
    if kind in ("executor_failed", "failed"):
        return {"error": error_text(event.data)}
    if kind == "request_info":
        try:
            response_type = encode_type(event.response_type)
        except WorkflowError:
            response_type = repr(event.response_type)
        return {"request_id": event.request_id, "source_executor_id": event.source_executor_id,
                "data": _displayable(event.data), "response_type": response_type}
    if kind == "superstep_started":
        return {}
    if kind == "warning":  # WorkflowWarningEvent: the sender (if any) is the row's executor
        return {"message": str(event.data), "message_type": getattr(event, "message_type", None)}
    return _displayable(event.data)


class EventLog:
    """Numbers one run's events and keeps the rows recorded since they were last taken."""

    def __init__(self, run_id: Any, last_seq: int, branch: int = 0) -> None:
        self.run_id = run_id
        self.seq = last_seq
        self.branch = branch  # the run's branch (``RunBranch``) this task writes on
        self.superstep: int | None = None  # the superstep under way, for events without one
        self.rows: list[dict[str, Any]] = []

    def record(self, event: WorkflowEvent) -> dict[str, Any]:
        """The row (a dict of ``RunEvent`` columns) for ``event``, the next in order."""
        superstep = getattr(event, "superstep", None)
        if event.type == "superstep_started":
            self.superstep = superstep
        if event.type == "request_info":
            # The executor that asked: inside a sub-workflow, the inner one's path (its
            # executor events name it so), while the payload's source takes the answer.
            executor_id = event.origin_executor_id
        else:
            executor_id = getattr(event, "executor_id", None) or ""
        self.seq += 1
        row = {"run_id": self.run_id, "seq": self.seq, "type": event.type[:40],
               "superstep": superstep if superstep is not None else self.superstep,
               "branch": self.branch,
               "executor_id": executor_id[:100], "data": _payload(event),
               "created_at": timezone.now()}
        self.rows.append(row)
        return row

    def take(self) -> list[dict[str, Any]]:
        """The rows recorded since the last call."""
        rows, self.rows = self.rows, []
        return rows
