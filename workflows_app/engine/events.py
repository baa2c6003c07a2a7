"""Workflow events: what a run reports, in order, to its caller.

Every event has a ``type`` string (``started``, ``status``, ``superstep_started``, ...).
Custom events emitted with ``ctx.add_event`` subclass ``WorkflowEvent`` and set ``type``.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Any


class WorkflowRunState(str, enum.Enum):
    """The state a run reports in ``status`` events; the last one is the final state."""

    IN_PROGRESS = "IN_PROGRESS"
    IN_PROGRESS_PENDING_REQUESTS = "IN_PROGRESS_PENDING_REQUESTS"
    IDLE = "IDLE"
    IDLE_WITH_PENDING_REQUESTS = "IDLE_WITH_PENDING_REQUESTS"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"
    # Stopped at a superstep boundary because the caller asked (``Workflow.request_stop``):
    # not a failure; the run continues from the checkpoint named by the ``stopped`` event.
    STOPPED = "STOPPED"

    def __str__(self) -> str:
        return self.value


@dataclass(frozen=True, slots=True)
class CheckpointInfo:
    """Identifies a checkpoint written during a run (carried by ``superstep_completed``)."""

    checkpoint_id: str
    superstep: int


class WorkflowEvent:
    """Base class of all events. ``data`` is the event's payload, if it has one."""

    __slots__ = ("data",)
    type: str = "event"

    def __init__(self, data: Any = None) -> None:
        self.data = data

    def _fields(self) -> dict[str, Any]:
        return {name: getattr(self, name) for cls in type(self).__mro__
                for name in getattr(cls, "__slots__", ()) if name != "data"}

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in self._fields().items())
        data = f"data={self.data!r}" if self.data is not None else ""
        return f"{type(self).__name__}({', '.join(p for p in (fields, data) if p)})"


class WorkflowStartedEvent(WorkflowEvent):
    """A ``run()`` call began. ``checkpoint`` is the entry or response-entry checkpoint it
    wrote before the first superstep (``None`` without storage or when it wrote none)."""

    __slots__ = ("checkpoint",)
    type = "started"

    def __init__(self, checkpoint: CheckpointInfo | None = None) -> None:
        super().__init__()
        self.checkpoint = checkpoint


class WorkflowStatusEvent(WorkflowEvent):
    __slots__ = ("state",)
    type = "status"

    def __init__(self, state: WorkflowRunState) -> None:
        super().__init__()
        self.state = state


class SuperstepStartedEvent(WorkflowEvent):
    __slots__ = ("superstep",)
    type = "superstep_started"

    def __init__(self, superstep: int) -> None:
        super().__init__()
        self.superstep = superstep


class SuperstepCompletedEvent(WorkflowEvent):
    """A superstep finished; ``checkpoint`` is the checkpoint written at its end, or None."""

    __slots__ = ("superstep", "checkpoint")
    type = "superstep_completed"

    def __init__(self, superstep: int, checkpoint: CheckpointInfo | None) -> None:
        super().__init__()
        self.superstep = superstep
        self.checkpoint = checkpoint


class ExecutorEvent(WorkflowEvent):
    __slots__ = ("executor_id",)

    def __init__(self, executor_id: str, data: Any = None) -> None:
        super().__init__(data)
        self.executor_id = executor_id


class ExecutorInvokedEvent(ExecutorEvent):
    __slots__ = ()
    type = "executor_invoked"


class ExecutorCompletedEvent(ExecutorEvent):
    __slots__ = ()
    type = "executor_completed"


class ExecutorFailedEvent(ExecutorEvent):
    """``data`` holds the exception the handler raised."""

    __slots__ = ()
    type = "executor_failed"


class WorkflowOutputEvent(ExecutorEvent):
    """An executor yielded an output (``ctx.yield_output``); ``data`` is the output."""

    __slots__ = ()
    type = "output"


class RequestInfoEvent(WorkflowEvent):
    """An executor asked for outside input; answer it with ``run(responses={request_id: v})``.

    ``source_executor_id`` is the executor of this workflow whose response handler takes
    the answer. ``origin_executor_id`` is the executor that made the request: the source
    itself, or, for a request made inside a sub-workflow, the inner executor's path under
    the sub-workflow's executor (``"review/reviewer"``, ``"outer/review/reviewer"``), as the
    sub-workflow's executor events name it (a UI marks that executor as waiting)."""

    __slots__ = ("request_id", "source_executor_id", "response_type", "origin_executor_id")
    type = "request_info"

    def __init__(self, request_id: str, source_executor_id: str, data: Any,
                 response_type: Any, origin_executor_id: str | None = None) -> None:
        super().__init__(data)
        self.request_id = request_id
        self.source_executor_id = source_executor_id
        self.response_type = response_type
        self.origin_executor_id = origin_executor_id or source_executor_id


class WorkflowFailedEvent(WorkflowEvent):
    """The run failed; ``data`` is the exception, ``executor_id`` the failing executor or None."""

    __slots__ = ("executor_id",)
    type = "failed"

    def __init__(self, error: BaseException, executor_id: str | None = None) -> None:
        super().__init__(error)
        self.executor_id = executor_id

    @property
    def error(self) -> BaseException:
        return self.data


class WorkflowWarningEvent(WorkflowEvent):
    """Something the run went on past but the caller should know: ``data`` is the text.

    The engine emits one when it drops a message no edge delivers (``executor_id`` is the
    sender, ``message_type`` the message's type name), and when ``run(message)`` starts while
    requests are still pending (they stay answerable). MAF's ``WorkflowEvent.warning`` also
    has the type ``warning`` and the text as ``data``."""

    __slots__ = ("executor_id", "message_type")
    type = "warning"

    def __init__(self, message: str, executor_id: str | None = None,
                 message_type: str | None = None) -> None:
        super().__init__(message)
        self.executor_id = executor_id
        self.message_type = message_type

    @property
    def message(self) -> str:
        return self.data


class WorkflowStoppedEvent(WorkflowEvent):
    """The run stopped at a superstep boundary because the caller asked it to
    (``Workflow.request_stop``). ``checkpoint`` is the last checkpoint of the run (None
    without storage): ``run(checkpoint_id=...)`` continues from it. ``reason`` is the text
    given with the request."""

    __slots__ = ("checkpoint", "reason")
    type = "stopped"

    def __init__(self, checkpoint: CheckpointInfo | None, reason: str) -> None:
        super().__init__()
        self.checkpoint = checkpoint
        self.reason = reason


class WorkflowRunResult(list):
    """The events of a non-streaming ``run()``, in order, with helpers to read them."""

    def get_outputs(self) -> list[Any]:
        """Everything executors yielded with ``ctx.yield_output``, in order."""
        return [event.data for event in self if event.type == "output"]

    def get_request_info_events(self) -> list[RequestInfoEvent]:
        """The requests emitted (or re-emitted) by this call that await a response."""
        return [event for event in self if event.type == "request_info"]

    def get_final_state(self) -> WorkflowRunState | None:
        """The state of the last ``status`` event."""
        for event in reversed(self):
            if event.type == "status":
                return event.state
        return None
