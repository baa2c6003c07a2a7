"""Requests a run raises, stored as ``PendingRequest`` rows with the commit that records the
checkpoint holding them, and the answers a task delivers, marked delivered with the commit
of the response checkpoint that holds them (so an answer is taken exactly once).
"""

from __future__ import annotations

from typing import Any

from ..engine import RequestInfoEvent
from ..engine.encoding import decode_value
from ..models import PendingRequest
from ..schemas import json_schema
from ..states import RequestStatus


def answers_to_deliver(run_id: Any) -> dict[str, Any]:
    """The run's answered requests not delivered yet, by request id, decoded. They are the
    requests its head checkpoint still waits on: an answer is recorded only for an open
    request, a resume cancels the requests of the state it abandons, and delivery is
    committed with the checkpoint that consumed the answer."""
    return {request.request_id: decode_value(request.response) for request in
            PendingRequest.objects.filter(run_id=run_id).answers_to_deliver()}


class RequestLog:
    def __init__(self, run_id: Any) -> None:
        self.run_id = run_id
        self.raised: dict[str, tuple[RequestInfoEvent, dict[str, Any]]] = {}
        self.delivering: list[str] = []

    def note_raised(self, event: RequestInfoEvent, row: dict[str, Any]) -> None:
        """A ``request_info`` event and its recorded row (whose data holds the encoding)."""
        self.raised[event.request_id] = (event, row)

    def note_delivering(self, request_ids: list[str]) -> None:
        self.delivering.extend(request_ids)

    def take(self) -> tuple[dict[str, tuple[RequestInfoEvent, dict[str, Any]]], list[str]]:
        """What was noted since the last call: raised requests and answers delivered."""
        taken = self.raised, self.delivering
        self.raised, self.delivering = {}, []
        return taken

    def save(self, raised: dict[str, tuple[RequestInfoEvent, dict[str, Any]]],
             delivering: list[str]) -> None:
        """Write what was taken (inside the caller's transaction).

        A restored checkpoint raises its requests again: a request the run still waits on
        keeps its row as it is (it may have been answered meanwhile); one that a resume
        cancelled, or that was answered in an abandoned branch, opens again."""
        for request_id, (event, row) in raised.items():
            fields = {"source_executor_id": event.source_executor_id,
                      "request_data": row["data"]["data"],
                      "response_type": row["data"]["response_type"],
                      "response_schema": json_schema(event.response_type),
                      "status": RequestStatus.OPEN, "response": None, "delivered": False,
                      "answered_by": None, "answered_at": None}
            stored = PendingRequest.objects.filter(run_id=self.run_id, request_id=request_id)
            if not stored.exists():
                PendingRequest.objects.create(run_id=self.run_id, request_id=request_id,
                                              **fields)
            else:
                stored.exclude(status__in=[RequestStatus.OPEN, RequestStatus.ANSWERED],
                               delivered=False).update(**fields)
        if delivering:
            PendingRequest.objects.filter(run_id=self.run_id, request_id__in=delivering
                                          ).update(delivered=True)
