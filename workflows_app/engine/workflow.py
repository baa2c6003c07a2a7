"""``Workflow``: a validated graph of executors, and ``run()``, the one way to drive it.

Build one with ``WorkflowBuilder``. An instance keeps the state of its current run, so
``run(responses=...)`` and ``run(checkpoint_id=...)`` continue it (resume); a new instance
built from the same definition continues a checkpoint too (rehydrate). ``request_stop()``
asks a run in progress to end at its next superstep boundary, after that checkpoint.
"""

from __future__ import annotations

import asyncio
from typing import Any, AsyncIterator, Awaitable, Callable

from .checkpoints import KIND_ENTRY, KIND_RESPONSE, WorkflowCheckpoint
from .edges import EdgeGroup
from .errors import WorkflowRunError
from .events import (CheckpointInfo, RequestInfoEvent, WorkflowEvent, WorkflowFailedEvent,
                     WorkflowRunResult, WorkflowRunState, WorkflowStartedEvent)
from .executors import Executor
from .graph import WorkflowGraph
from .messages import Message, OpenRequest
from .runner import Runner, RunState, SuperstepFailed, check_responses
from .storage import CheckpointStorage
from .typing_utils import type_name


class Workflow:
    """A runnable workflow. Not safe to run concurrently: one ``run()`` at a time."""

    def __init__(self, *, name: str, executors: dict[str, Executor], start_executor_id: str,
                 edge_groups: list[EdgeGroup], max_iterations: int = 100,
                 checkpoint_storage: CheckpointStorage | None = None,
                 description: str = "") -> None:
        self.name = name
        self.description = description
        self.graph = WorkflowGraph(executors, start_executor_id, edge_groups)
        self.max_iterations = max_iterations
        self.checkpoint_storage = checkpoint_storage
        self._run_state = RunState()
        self._running = False
        self._runner: Runner | None = None  # while a run() is in progress
        self._stop_reason: str | None = None  # asked for during this run() call

    # -- inspection -----------------------------------------------------------------------
    @property
    def executors(self) -> dict[str, Executor]:
        return self.graph.executors

    @property
    def start_executor_id(self) -> str:
        return self.graph.start_executor_id

    @property
    def start_executor(self) -> Executor:
        return self.graph.start_executor

    @property
    def edge_groups(self) -> list[EdgeGroup]:
        return self.graph.edge_groups

    @property
    def graph_signature(self) -> dict[str, Any]:
        """What a checkpoint records of the graph: start, executors with types, edges."""
        return self.graph.signature

    @property
    def graph_signature_hash(self) -> str:
        return self.graph.signature_hash

    @property
    def input_types(self) -> list[Any]:
        """The message types the start executor accepts (what ``run(message)`` takes)."""
        return self.start_executor.input_types

    @property
    def state(self) -> WorkflowRunState | None:
        """The state of this instance's current or last run (None before the first)."""
        return self._run_state.status

    @property
    def pending_requests(self) -> list[RequestInfoEvent]:
        """The requests this instance's run is waiting on."""
        return [RequestInfoEvent(r.request_id, r.source_executor_id, r.data, r.response_type)
                for r in self._run_state.pending_requests.values()]

    def get_last_checkpoint_id(self) -> str | None:
        """The newest checkpoint this instance wrote or restored."""
        return self._run_state.last_checkpoint_id

    def describe(self) -> dict[str, Any]:
        """The graph as JSON natives (executors with their types, edge groups), for UIs."""
        return {
            "name": self.name,
            "description": self.description,
            "start_executor_id": self.start_executor_id,
            "input_types": [type_name(t) for t in self.input_types],
            "executors": [e.describe() for e in self.executors.values()],
            "edge_groups": [g.describe() for g in self.edge_groups],
            "graph_signature_hash": self.graph_signature_hash,
        }

    # -- running --------------------------------------------------------------------------
    def run(self, message: Any = None, *, stream: bool = False, checkpoint_id: str | None = None,
            responses: dict[str, Any] | None = None,
            checkpoint_storage: CheckpointStorage | None = None,
            on_event: Callable[[WorkflowEvent], None] | None = None,
            ) -> Awaitable[WorkflowRunResult] | AsyncIterator[WorkflowEvent]:
        """Start a run with ``message``, or continue one.

        - ``run(message)``: a fresh run (an entry checkpoint first, with storage).
        - ``run(responses={request_id: value})``: answer this instance's pending requests.
        - ``run(checkpoint_id=...)``: restore that checkpoint (same instance: resume; new
          instance: rehydrate) and continue; with ``responses``, answer its requests too.

        Await it for a ``WorkflowRunResult``, or pass ``stream=True`` and iterate the events.
        ``on_event``, if given, is called with each event the moment it is emitted (before
        the checkpoint that follows it is saved), e.g. to record events with checkpoints.
        A handler that raises fails the run and the error is raised to the caller.
        """
        if message is not None and (checkpoint_id is not None or responses is not None):
            raise WorkflowRunError("run() takes either a message, or checkpoint_id and/or "
                                   "responses, not both")
        if message is None and checkpoint_id is None and responses is None:
            raise WorkflowRunError("run() needs a message, a checkpoint_id or responses")
        args = (message, checkpoint_id, responses, checkpoint_storage, on_event)
        return self._stream(*args) if stream else self._collect(*args)

    def request_stop(self, reason: str = "") -> bool:
        """Ask the run in progress to stop at its next superstep boundary.

        The superstep under way completes and writes its checkpoint; then, instead of
        starting the next one, the run emits a ``stopped`` event naming that checkpoint
        (and ``reason``) and ends with the state ``STOPPED``: not a failure, and ``run()``
        returns normally. ``run(checkpoint_id=...)`` continues from there, on this instance
        or another. A run that has no superstep left ends as usual (idle). Returns False,
        doing nothing, when no run is in progress.
        """
        if not self._running:
            return False
        self._stop_reason = reason or "stop requested"
        if self._runner is not None:
            self._runner.stop_reason = self._stop_reason
        return True

    async def _collect(self, *args: Any) -> WorkflowRunResult:
        result = WorkflowRunResult()
        await self._execute(*args, emit=result.append)
        return result

    async def _stream(self, *args: Any) -> AsyncIterator[WorkflowEvent]:
        queue: asyncio.Queue = asyncio.Queue()
        finished = object()

        async def produce() -> None:
            try:
                await self._execute(*args, emit=queue.put_nowait)
            finally:
                queue.put_nowait(finished)

        task = asyncio.ensure_future(produce())
        try:
            while (event := await queue.get()) is not finished:
                yield event
            await task  # re-raises the run's error, after its events were delivered
        finally:
            if not task.done():  # the caller stopped iterating: stop the run
                task.cancel()
            try:  # collect the run's outcome even when the caller stopped listening
                await task
            except (asyncio.CancelledError, Exception):
                pass

    async def _execute(self, message: Any, checkpoint_id: str | None,
                       responses: dict[str, Any] | None, storage: CheckpointStorage | None,
                       on_event: Callable[[WorkflowEvent], None] | None, *, emit: Any) -> None:
        if self._running:
            raise WorkflowRunError(f"workflow '{self.name}' is already running on this instance")
        self._running = True
        try:
            storage = storage if storage is not None else self.checkpoint_storage
            # Validate everything before changing anything: a refused call leaves no trace.
            checkpoint = None
            if checkpoint_id is not None:
                if storage is None:
                    raise WorkflowRunError("run(checkpoint_id=...) needs checkpoint storage: pass "
                                           "checkpoint_storage= to run() or to WorkflowBuilder")
                checkpoint = await storage.load(checkpoint_id)
                self.graph.check_restorable(checkpoint, self.name)
                if responses is not None:
                    check_responses(self.graph, responses, {
                        rid: OpenRequest.from_dict(r)
                        for rid, r in checkpoint.pending_requests.items()})
            elif responses is not None:
                if self._run_state.status is not WorkflowRunState.IDLE_WITH_PENDING_REQUESTS:
                    raise WorkflowRunError(
                        f"this workflow instance is not waiting on requests (state: "
                        f"{self._run_state.status}); to answer the requests of a checkpoint, "
                        f"pass its checkpoint_id too")
                check_responses(self.graph, responses, self._run_state.pending_requests)
            elif not self.start_executor.can_handle(message):
                raise WorkflowRunError(
                    f"start executor '{self.start_executor_id}' does not accept a "
                    f"{type(message).__qualname__}; it accepts "
                    f"{', '.join(type_name(t) for t in self.input_types)}")
            if on_event is not None:
                collect = emit

                def emit(event: WorkflowEvent) -> None:
                    on_event(event)
                    collect(event)
            if checkpoint is None and responses is None:
                self._run_state = RunState()  # a fresh run forgets the previous one
            runner = Runner(self.graph, self._run_state, workflow_name=self.name,
                            max_iterations=self.max_iterations, storage=storage, emit=emit)
            runner.stop_reason = self._stop_reason
            self._runner = runner
            await self._advance(runner, message, checkpoint, responses)
        finally:
            self._running = False
            self._runner = None
            self._stop_reason = None

    async def _advance(self, runner: Runner, message: Any, checkpoint: WorkflowCheckpoint | None,
                       responses: dict[str, Any] | None) -> None:
        state, emit = runner.state, runner.emit
        try:
            entry: CheckpointInfo | None = None
            reemit: list[OpenRequest] = []
            if checkpoint is not None:
                await runner.restore(checkpoint)
                reemit = [r for rid, r in state.pending_requests.items()
                          if not responses or rid not in responses]
            elif responses is None:
                state.pending = [Message(self.start_executor_id, None, message)]
            if responses:
                runner.accept_responses(responses)
            if runner.storage is not None and (checkpoint is None or responses):
                entry = await runner.write_checkpoint(KIND_RESPONSE if responses else KIND_ENTRY)
            emit(WorkflowStartedEvent(entry))
            for request in reemit:
                emit(RequestInfoEvent(request.request_id, request.source_executor_id,
                                      request.data, request.response_type))
            if state.pending:
                runner.set_status(WorkflowRunState.IN_PROGRESS_PENDING_REQUESTS
                                  if state.pending_requests else WorkflowRunState.IN_PROGRESS)
            await runner.run_until_idle()
        except SuperstepFailed as failure:
            emit(WorkflowFailedEvent(failure.error, failure.executor_id))
            runner.set_status(WorkflowRunState.FAILED)
            raise failure.error from None
        except asyncio.CancelledError:
            runner.set_status(WorkflowRunState.CANCELLED)
            raise
        except Exception as error:
            emit(WorkflowFailedEvent(error))
            runner.set_status(WorkflowRunState.FAILED)
            raise
