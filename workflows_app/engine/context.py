"""``WorkflowContext``: what a handler can do during a superstep.

Every method is a coroutine. What a handler sends, requests and writes is staged in the
superstep and only becomes part of the run when the superstep commits.
"""

from __future__ import annotations

import types
import uuid
from typing import TYPE_CHECKING, Any, Callable

from .errors import WorkflowError
from .events import RequestInfoEvent, WorkflowEvent, WorkflowOutputEvent
from .messages import OpenRequest
from .typing_utils import is_instance_of, type_name

if TYPE_CHECKING:
    from .executors import HandlerSpec
    from .runner import RunState, SuperstepStage


class WorkflowContext:
    """The handle a handler gets for one superstep.

    Annotate it as ``WorkflowContext[SendT]`` or ``WorkflowContext[SendT, YieldT]`` to declare
    what the handler sends and yields; ``build()`` checks edges against it and the run refuses
    messages or outputs of other types.
    """

    __slots__ = ("executor_id", "request_id", "_state", "_stage", "_emit", "_outbox", "_spec")

    def __class_getitem__(cls, params: Any) -> Any:
        # Any one or two parameters, without TypeVar machinery: only the annotation matters.
        return types.GenericAlias(cls, params)

    def __init__(self, state: "RunState", stage: "SuperstepStage", executor_id: str,
                 emit: Callable[[WorkflowEvent], Any]) -> None:
        self.executor_id = executor_id
        # The id of the request being answered, while a @response_handler runs (as MAF's
        # ctx.request_id); None in other handlers.
        self.request_id: str | None = None
        self._state = state
        self._stage = stage
        self._emit = emit
        self._outbox = stage.outbox(executor_id)
        self._spec: "HandlerSpec | None" = None

    async def send_message(self, message: Any, target_id: str | None = None) -> None:
        """Queue ``message`` for the next superstep, to every connected executor that accepts
        it (or only to ``target_id``)."""
        spec = self._spec
        if spec is not None and spec.send_types is not None and not any(
                is_instance_of(message, t) for t in spec.send_types):
            raise WorkflowError(
                f"executor '{self.executor_id}' sent a {type(message).__qualname__} but its "
                f"handler '{spec.name}' declares it sends "
                f"{' | '.join(type_name(t) for t in spec.send_types) or 'nothing (Never)'}")
        self._outbox.append((message, target_id))

    async def yield_output(self, value: Any) -> None:
        """Publish ``value`` as an output of the workflow run."""
        spec = self._spec
        if spec is not None and spec.yield_types is not None and not any(
                is_instance_of(value, t) for t in spec.yield_types):
            raise WorkflowError(
                f"executor '{self.executor_id}' yielded a {type(value).__qualname__} but its "
                f"handler '{spec.name}' declares it yields "
                f"{' | '.join(type_name(t) for t in spec.yield_types) or 'nothing (Never)'}")
        self._emit(WorkflowOutputEvent(self.executor_id, value))

    async def add_event(self, event: WorkflowEvent) -> None:
        """Emit a custom event (a ``WorkflowEvent`` subclass) to the run's caller."""
        if not isinstance(event, WorkflowEvent):
            raise TypeError(f"add_event() takes a WorkflowEvent, got {type(event).__qualname__}")
        self._emit(event)

    async def get_shared_state(self, key: str, default: Any = None) -> Any:
        return self._state.shared_state.get(key, default)

    async def set_shared_state(self, key: str, value: Any) -> None:
        self._state.shared_state.set(key, value)

    async def delete_shared_state(self, key: str) -> None:
        self._state.shared_state.delete(key)

    async def request_info(self, request_data: Any, response_type: Any,
                           request_id: str | None = None) -> str:
        """Ask for outside input. The run goes idle with the request pending once no
        messages remain; the answer reaches this executor's ``@response_handler``.
        Returns the request id."""
        return await self._request(request_data, response_type, request_id, None)

    async def _request(self, request_data: Any, response_type: Any, request_id: str | None,
                       origin_executor_id: str | None) -> str:
        """``request_info``, naming the inner executor that made the request when it was
        made inside a sub-workflow (package-internal: ``WorkflowExecutor`` passes it)."""
        request_id = request_id or str(uuid.uuid4())
        if not isinstance(request_id, str):
            raise TypeError(f"request_id must be a string, got {request_id!r}")
        if request_id in self._state.pending_requests or request_id in self._stage.requests:
            raise WorkflowError(f"request id '{request_id}' is already pending")
        self._stage.requests[request_id] = OpenRequest(
            request_id, self.executor_id, request_data, response_type, origin_executor_id)
        self._emit(RequestInfoEvent(request_id, self.executor_id, request_data, response_type,
                                    origin_executor_id))
        if self._stage.runner is not None:
            await self._stage.runner.request_made()
        return request_id

    async def queue_state_update(self, key: str, value: Any) -> None:
        """Save ``key`` in this executor's checkpointed state (committed with the superstep)."""
        self._stage.state_updates.setdefault(self.executor_id, {})[key] = value

    async def read_state(self, key: str, default: Any = None) -> Any:
        """Read a key of this executor's checkpointed state (staged updates included)."""
        staged = self._stage.state_updates.get(self.executor_id)
        if staged is not None and key in staged:
            return staged[key]
        return self._state.executor_states.get(self.executor_id, {}).get(key, default)
