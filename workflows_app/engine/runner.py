"""The superstep runner: the algorithm at the heart of the engine.

One superstep is: deliver every pending message (different executors concurrently, one
executor's messages in order), then route what the handlers sent, then commit (messages,
fan-in buffers, shared state, requests, executor state) and write a checkpoint. A superstep
that raises commits nothing and writes no checkpoint.
"""

from __future__ import annotations

import asyncio
import datetime
import uuid
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from .checkpoints import KIND_SUPERSTEP, WorkflowCheckpoint
from .context import WorkflowContext
from .errors import (WorkflowCheckpointError, WorkflowConvergenceError, WorkflowError,
                     WorkflowRunError)
from .events import (CheckpointInfo, ExecutorCompletedEvent, ExecutorFailedEvent,
                     ExecutorInvokedEvent, SuperstepCompletedEvent, SuperstepStartedEvent,
                     WorkflowEvent, WorkflowRunState, WorkflowStatusEvent, WorkflowStoppedEvent,
                     WorkflowWarningEvent)
from .executors import Executor
from .graph import WorkflowGraph
from .messages import Message, OpenRequest
from .shared_state import SharedState
from .typing_utils import is_instance_of, type_name

if TYPE_CHECKING:
    from .storage import CheckpointStorage


class SuperstepStage:
    """What handlers did during one superstep, held back until the superstep commits, and
    the runner of that superstep (None for the contexts of state hooks)."""

    __slots__ = ("outboxes", "requests", "state_updates", "runner")

    def __init__(self, runner: "Runner | None" = None) -> None:
        self.outboxes: dict[str, list[tuple[Any, str | None]]] = {}
        self.requests: dict[str, OpenRequest] = {}
        self.state_updates: dict[str, dict[str, Any]] = {}
        self.runner = runner  # told of each request: it changes the run's status

    def outbox(self, executor_id: str) -> list[tuple[Any, str | None]]:
        box = self.outboxes.get(executor_id)
        if box is None:
            box = self.outboxes[executor_id] = []
        return box


class SuperstepFailed(Exception):
    """Internal: carries the failing executor (or edge source) and the original error."""

    def __init__(self, executor_id: str | None, error: BaseException) -> None:
        super().__init__(executor_id, error)
        self.executor_id = executor_id
        self.error = error


def check_responses(graph: WorkflowGraph, responses: Any,
                    requests: dict[str, OpenRequest]) -> None:
    """Refuse responses to unknown requests, of the wrong type, or with no handler."""
    if not isinstance(responses, dict) or not responses:
        raise WorkflowRunError(
            f"responses must be a non-empty dict of request_id -> value, got {responses!r}")
    for request_id, value in responses.items():
        request = requests.get(request_id)
        if request is None:
            raise WorkflowRunError(
                f"no pending request with id {request_id!r} "
                f"(pending: {', '.join(sorted(requests)) or 'none'})")
        if not is_instance_of(value, request.response_type):
            raise WorkflowRunError(
                f"the response to request {request_id!r} must be "
                f"{type_name(request.response_type)}, got {type(value).__qualname__}")
        source = graph.executors.get(request.source_executor_id)
        if source is None or source.find_response_handler(request.data, value) is None:
            raise WorkflowRunError(
                f"executor '{request.source_executor_id}' has no @response_handler for "
                f"request {type(request.data).__qualname__} with response "
                f"{type(value).__qualname__}")


class RunState:
    """The state of one workflow instance's run: what a checkpoint records, and the status
    the run last reported. A ``Workflow`` keeps one across its ``run()`` calls (answering
    requests continues it); a restore replaces it."""

    __slots__ = ("superstep", "pending", "fan_in", "pending_requests", "shared_state",
                 "executor_states", "last_checkpoint_id", "status")

    def __init__(self) -> None:
        self.superstep = 0
        self.pending: list[Message] = []
        self.fan_in: dict[str, dict[str, list[Any]]] = {}
        self.pending_requests: dict[str, OpenRequest] = {}
        self.shared_state = SharedState()
        # Saved executor state, per executor: the keys of state-key hooks, kept between
        # checkpoints (see WorkflowGraph for the two kinds of hooks).
        self.executor_states: dict[str, dict[str, Any]] = {}
        self.last_checkpoint_id: str | None = None
        self.status: WorkflowRunState | None = None


class Runner:
    """Advances a run's state superstep by superstep, for one ``run()`` call.

    It reads the graph, writes the state, saves checkpoints to ``storage`` (if any) and
    reports every step through ``emit``. A caller may ask it to stop (``stop_reason``):
    the run then ends at the next superstep boundary, after that superstep's checkpoint.

    ``pace``, given when a reader pulls the events (a streamed run), is awaited before
    each superstep and each status change: it returns True once the reader has taken every
    event emitted so far and asks for the next, False if the reader closed the stream. So
    a streamed run is at most one superstep ahead of its reader, and ``Workflow.state``
    changes when the reader reaches the status event that announces it. A closed stream
    ends the run at the next boundary as cancelled; while handlers run (``in_handlers``)
    the reader's side may cancel the run at once instead.
    """

    def __init__(self, graph: WorkflowGraph, state: RunState, *, workflow_name: str,
                 max_iterations: int, storage: "CheckpointStorage | None",
                 emit: Callable[[WorkflowEvent], Any],
                 pace: Callable[[], Awaitable[bool]] | None = None) -> None:
        self.graph = graph
        self.state = state
        self.workflow_name = workflow_name
        self.max_iterations = max_iterations
        self.storage = storage
        self.emit = emit
        self.pace = pace
        self.stop_reason: str | None = None
        # True only while handlers run: cancelling then loses just the uncommitted
        # superstep; at any other point it could cut a checkpoint write in two.
        self.in_handlers = False

    # -- supersteps ---------------------------------------------------------------------
    async def run_until_idle(self) -> None:
        """Run supersteps until no messages remain, then report the final state; or stop at
        a superstep boundary once a stop was requested.

        Yields to the event loop between supersteps: handlers that never suspend would
        otherwise run the whole workflow in one step, so a streaming caller would see no
        event until the end and could not stop the run, and other tasks would starve.
        """
        state, pace = self.state, self.pace
        while state.pending:
            if pace is not None and not await pace():
                raise asyncio.CancelledError()  # the reader closed the stream: end here
            if self.stop_reason is not None:
                await self._stop()
                return
            await self.superstep_once()
            await asyncio.sleep(0)
        await self.report(WorkflowRunState.IDLE_WITH_PENDING_REQUESTS if state.pending_requests
                          else WorkflowRunState.IDLE)

    async def _stop(self) -> None:
        state = self.state
        checkpoint = (CheckpointInfo(state.last_checkpoint_id, state.superstep)
                      if self.storage is not None and state.last_checkpoint_id else None)
        self.emit(WorkflowStoppedEvent(checkpoint, self.stop_reason or ""))
        await self.report(WorkflowRunState.STOPPED)

    async def superstep_once(self) -> None:
        state = self.state
        number = state.superstep + 1
        if number > self.max_iterations:
            raise WorkflowConvergenceError(
                f"workflow '{self.workflow_name}' reached max_iterations="
                f"{self.max_iterations} with {len(state.pending)} message(s) still pending")
        self.emit(SuperstepStartedEvent(number))

        # 1. deliver
        by_target: dict[str, list[Message]] = {}
        for message in state.pending:
            batch = by_target.get(message.target_id)
            if batch is None:
                by_target[message.target_id] = [message]
            else:
                batch.append(message)
        stage = SuperstepStage(self)
        executors = self.graph.executors
        self.in_handlers = True
        try:
            if len(by_target) == 1:
                (target_id, batch), = by_target.items()
                failures = [(target_id,
                             await self._run_executor(executors[target_id], batch, stage))]
            else:
                failures = await self._run_concurrently(
                    [(tid, executors[tid], batch) for tid, batch in by_target.items()], stage)
        except asyncio.CancelledError:
            state.shared_state.discard()  # the superstep is lost: nothing of it commits
            raise  # (in_handlers stays set: the run is over)
        self.in_handlers = False
        for executor_id, error in failures:
            if error is not None:
                state.shared_state.discard()
                raise SuperstepFailed(executor_id, error)

        # 2. route
        try:
            pending, fan_in, dropped = self._route(stage, by_target)
        except SuperstepFailed:
            state.shared_state.discard()
            raise
        if dropped:
            for warning in dropped:
                self.emit(warning)

        # 3. commit
        state.pending = pending
        state.fan_in = fan_in
        state.shared_state.commit()
        for executor_id, updates in stage.state_updates.items():
            state.executor_states.setdefault(executor_id, {}).update(updates)
        state.pending_requests.update(stage.requests)
        state.superstep = number

        # 4. checkpoint
        info = await self.write_checkpoint(KIND_SUPERSTEP) if self.storage is not None else None
        self.emit(SuperstepCompletedEvent(number, info))

    async def _run_concurrently(self, work: list[tuple[str, Executor, list[Message]]],
                                stage: SuperstepStage) -> list[tuple[str, BaseException | None]]:
        """Run executors side by side; the first failure cancels the others (one may be
        waiting on the one that failed), since the superstep is lost anyway."""
        tasks = {asyncio.ensure_future(self._run_executor(executor, batch, stage)): tid
                 for tid, executor, batch in work}
        pending = set(tasks)
        try:
            while pending:
                done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
                failures = [(tasks[task], task.result()) for task in done if task.result()]
                if failures:
                    return failures[:1]
        finally:
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        return []

    async def _run_executor(self, executor: Executor, batch: list[Message],
                            stage: SuperstepStage) -> BaseException | None:
        """Deliver ``batch`` to ``executor`` in order; return the error a handler raised."""
        ctx = WorkflowContext(self.state, stage, executor.id, self.emit)
        emit = self.emit
        for message in batch:
            emit(ExecutorInvokedEvent(executor.id, message.data))
            try:
                if message.request is None:
                    spec = executor.find_handler(message.data)
                    if spec is None:
                        raise WorkflowError(
                            f"executor '{executor.id}' has no handler for a message of type "
                            f"{type(message.data).__qualname__}")
                    ctx._spec = spec
                    await executor.invoke(spec, message.data, ctx)
                else:
                    request = message.request
                    spec = executor.find_response_handler(request.data, message.data)
                    if spec is None:
                        raise WorkflowError(
                            f"executor '{executor.id}' has no @response_handler for request "
                            f"{type(request.data).__qualname__} with response "
                            f"{type(message.data).__qualname__}")
                    ctx._spec = spec
                    ctx.request_id = request.request_id
                    try:
                        await spec.func(executor, request.data, message.data, ctx)
                    finally:
                        ctx.request_id = None
            except Exception as error:
                emit(ExecutorFailedEvent(executor.id, error))
                return error
            emit(ExecutorCompletedEvent(executor.id))
        return None

    def _route(self, stage: SuperstepStage, order: dict[str, Any]
               ) -> tuple[list[Message], dict, list[WorkflowWarningEvent] | None]:
        """Turn what each executor sent into next superstep's deliveries, in a deterministic
        order (executors in delivery order, each one's messages in send order), and a
        warning for each message dropped because no edge delivers it (None if none was)."""
        graph = self.graph
        executors = graph.executors
        pending: list[Message] = []
        dropped: list[WorkflowWarningEvent] | None = None
        fan_in = self.state.fan_in
        if graph.fan_in_groups:  # copy: a failing superstep must leave buffers untouched
            fan_in = {gid: {src: list(items) for src, items in buffers.items()}
                      for gid, buffers in fan_in.items()}
        for source_id in order:
            outbox = stage.outboxes.get(source_id)
            if not outbox:
                continue
            groups = graph.outgoing.get(source_id, ())
            for data, target_id in outbox:
                delivered = routed = False
                try:
                    for group in groups:
                        if group.kind == "fan_in":
                            if target_id is None or target_id == group.targets[0]:
                                fan_in.setdefault(group.buffer_id, {}).setdefault(
                                    source_id, []).append(data)
                                delivered = routed = True
                            continue
                        for tid in group.route(data):
                            if target_id is not None and tid != target_id:
                                continue
                            routed = True
                            if executors[tid].can_handle(data):
                                pending.append(Message(tid, source_id, data))
                                delivered = True
                except Exception as error:  # a condition or selection function raised
                    raise SuperstepFailed(source_id, error) from error
                if not delivered:
                    warning = self._undeliverable(source_id, data, target_id, groups, routed)
                    if warning is not None:
                        if dropped is None:
                            dropped = []
                        dropped.append(warning)
        for group in graph.fan_in_groups:
            buffers = fan_in.get(group.buffer_id)
            if buffers and all(buffers.get(src) for src in group.sources):
                collected = [item for src in group.sources for item in buffers[src]]
                pending.append(Message(group.targets[0], None, collected))
                del fan_in[group.buffer_id]
        return pending, fan_in, dropped

    @staticmethod
    def _undeliverable(source_id: str, data: Any, target_id: str | None, groups: Any,
                       routed: bool) -> WorkflowWarningEvent | None:
        """The warning for a message no executor received, or None when edge conditions
        declined it (dropping it is then the graph's intent).

        Such a message is dropped, as MAF drops it (an executor that sends after its last
        edge, e.g. a MAF workflow's final step, is not a failure there), but never
        silently: the warning names the sender and the message type.
        """
        message_type = type(data).__qualname__
        connected = sorted({t for g in groups for t in g.targets})
        if not groups:
            problem = "it has no outgoing edges"
        elif target_id is not None and target_id not in connected:
            problem = (f"it was sent to '{target_id}', which no edge from it reaches "
                       f"(connected: {', '.join(connected)})")
        elif routed:
            problem = (f"no executor connected to it accepts that type "
                       f"(connected: {', '.join(connected)})")
        else:
            return None
        return WorkflowWarningEvent(
            f"dropped a message of type {message_type} sent by executor '{source_id}': "
            f"{problem}", executor_id=source_id, message_type=message_type)

    # -- status and responses ------------------------------------------------------------
    def set_status(self, status: WorkflowRunState) -> None:
        """Change the status now (see ``report`` for the paced change)."""
        self.state.status = status
        self.emit(WorkflowStatusEvent(status))

    async def report(self, status: WorkflowRunState) -> None:
        """Change the status once a streaming reader has taken every earlier event."""
        if self.pace is not None:
            await self.pace()  # a closed stream: the change is made all the same
        self.set_status(status)

    async def request_made(self) -> None:
        """A handler made a request: the run in progress now has one pending. Reported
        right after that ``request_info`` event, as MAF does, also when the superstep
        making it is the run's last."""
        if self.state.status is not WorkflowRunState.IN_PROGRESS:
            return
        if self.pace is not None:
            await self.pace()
            if self.state.status is not WorkflowRunState.IN_PROGRESS:
                return  # another handler's request reported it meanwhile
        self.set_status(WorkflowRunState.IN_PROGRESS_PENDING_REQUESTS)

    def accept_responses(self, responses: dict[str, Any]) -> None:
        """Queue answers to pending requests for delivery (checked by ``check_responses``)."""
        state = self.state
        for request_id, value in responses.items():
            request = state.pending_requests.pop(request_id)
            state.pending.append(Message(request.source_executor_id, None, value, request))

    # -- checkpoints ---------------------------------------------------------------------
    async def write_checkpoint(self, kind: str) -> CheckpointInfo:
        """Save the committed state of the run; new checkpoints chain to the last one."""
        state = self.state
        checkpoint = await self.build_checkpoint(kind)
        await self.storage.save(checkpoint)
        state.last_checkpoint_id = checkpoint.checkpoint_id
        return CheckpointInfo(checkpoint.checkpoint_id, state.superstep)

    async def build_checkpoint(self, kind: str) -> WorkflowCheckpoint:
        """The committed state of the run as a checkpoint, calling the executors' save
        hooks; saved nowhere (a sub-workflow's state travels inside its parent's)."""
        state = self.state
        graph = self.graph
        return WorkflowCheckpoint(
            checkpoint_id=str(uuid.uuid4()),
            workflow_name=self.workflow_name,
            graph_signature_hash=graph.signature_hash,
            previous_checkpoint_id=state.last_checkpoint_id,
            timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(),
            superstep=state.superstep,
            messages=[message.to_dict() for message in state.pending],
            shared_state=state.shared_state.committed,
            executor_states=await self._executor_states(),
            pending_requests={rid: r.to_dict() for rid, r in state.pending_requests.items()},
            fan_in_buffers=state.fan_in,
            metadata={"kind": kind, "graph": graph.signature},
        )

    async def _executor_states(self) -> dict[str, dict[str, Any]]:
        kept = self.state.executor_states
        for executor in self.graph.state_key_savers:
            stage = SuperstepStage()
            await executor.on_checkpointing(
                WorkflowContext(self.state, stage, executor.id, self.emit))
            if stage.state_updates:
                kept.setdefault(executor.id, {}).update(stage.state_updates[executor.id])
        states = {eid: state for eid, state in kept.items() if state}
        for executor in self.graph.state_dict_savers:
            saved = await executor.on_checkpoint_save()
            if not isinstance(saved, dict):
                raise WorkflowCheckpointError(
                    f"executor '{executor.id}': on_checkpoint_save() must return a dict, "
                    f"got {type(saved).__qualname__}")
            queued = states.get(executor.id)
            states[executor.id] = {**queued, **saved} if queued else saved
        return states

    async def restore(self, checkpoint: WorkflowCheckpoint) -> None:
        """Make the run exactly what ``checkpoint`` recorded, then let executors reload."""
        state = self.state
        graph = self.graph
        state.superstep = checkpoint.superstep
        state.pending = [Message.from_dict(m) for m in checkpoint.messages]
        state.fan_in = checkpoint.fan_in_buffers
        state.pending_requests = {rid: OpenRequest.from_dict(r)
                                  for rid, r in checkpoint.pending_requests.items()}
        state.shared_state = SharedState(checkpoint.shared_state)
        state.executor_states = {eid: dict(saved)
                                 for eid, saved in checkpoint.executor_states.items()
                                 if eid not in graph.state_dict_only}
        state.last_checkpoint_id = checkpoint.checkpoint_id
        for executor in graph.state_key_restorers:
            await executor.on_checkpoint_restored(
                WorkflowContext(state, SuperstepStage(), executor.id, self.emit))
        for executor in graph.state_dict_restorers:
            await executor.on_checkpoint_restore(
                dict(checkpoint.executor_states.get(executor.id, {})))
