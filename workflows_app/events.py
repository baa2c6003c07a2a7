"""Engine events as JSON records: what ``RunEvent`` rows hold and websockets carry."""

from __future__ import annotations

from typing import Any

from .engine import WorkflowEvent
from .engine.encoding import encode_type, encode_value
from .engine.errors import WorkflowError


def safe_encode(value: Any) -> Any:
    """Encode a payload for display; a value checkpoints cannot hold is shown by its repr."""
    try:
        return encode_value(value)
    except WorkflowError:
        return {"__repr__": repr(value)[:2000]}


def error_text(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


def event_record(event: WorkflowEvent) -> dict[str, Any]:
    """``type``, ``executor_id`` and a JSON ``data`` for one engine event."""
    kind = event.type
    executor_id = getattr(event, "executor_id", None) or ""
    if kind in ("started", "superstep_completed"):
        checkpoint = event.checkpoint
        data = {"checkpoint_id": checkpoint.checkpoint_id} if checkpoint else {}
    elif kind == "status":
        data = {"state": str(event.state)}
    elif kind in ("executor_failed", "failed"):
        data = {"error": error_text(event.data)}
    elif kind == "request_info":
        try:
            response_type = encode_type(event.response_type)
        except WorkflowError:
            response_type = repr(event.response_type)
        data = {"request_id": event.request_id, "source_executor_id": event.source_executor_id,
                "data": safe_encode(event.data), "response_type": response_type}
        executor_id = event.source_executor_id
    elif kind == "superstep_started":
        data = {}
    else:
        data = safe_encode(event.data)
    return {"type": kind, "executor_id": executor_id, "data": data,
            "superstep": getattr(event, "superstep", None)}
