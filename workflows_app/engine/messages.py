"""What travels between supersteps: messages queued for delivery and requests awaiting a
response. Both convert to plain dicts for checkpoints (values stay Python objects there;
``checkpoints.py`` encodes them)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any


@dataclass(slots=True)
class OpenRequest:
    """A ``ctx.request_info`` call that has not been answered yet (a run's pending request;
    the Django app's ``PendingRequest`` model is its stored counterpart).

    ``origin_executor_id`` is set for a request made inside a sub-workflow only: the path
    of the inner executor that made it (``"review/reviewer"``); the answer still goes to
    ``source_executor_id``, the sub-workflow's executor. It is recorded in checkpoints only
    when set, so ordinary requests keep their shape."""

    request_id: str
    source_executor_id: str
    data: Any
    response_type: Any
    origin_executor_id: str | None = None

    def to_dict(self) -> dict[str, Any]:
        record = {"request_id": self.request_id, "source_executor_id": self.source_executor_id,
                  "data": self.data, "response_type": self.response_type}
        if self.origin_executor_id is not None:
            record["origin_executor_id"] = self.origin_executor_id
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> "OpenRequest":
        return cls(record["request_id"], record["source_executor_id"], record["data"],
                   record["response_type"], record.get("origin_executor_id"))


@dataclass(slots=True)
class Message:
    """A message queued for ``target_id`` in the next superstep.

    ``source_id`` is the sending executor (None for the run's input). A message with a
    ``request`` is the response to that request, delivered to its ``@response_handler``.
    """

    target_id: str
    source_id: str | None
    data: Any
    request: OpenRequest | None = None

    def to_dict(self) -> dict[str, Any]:
        record = {"source_id": self.source_id, "target_id": self.target_id, "data": self.data}
        if self.request is not None:
            record["request"] = self.request.to_dict()
        return record

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> "Message":
        request = record.get("request")
        return cls(record["target_id"], record.get("source_id"), record.get("data"),
                   OpenRequest.from_dict(request) if request is not None else None)
