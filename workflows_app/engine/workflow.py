"""``Workflow``: a validated graph of executors, and ``run()``, the one way to drive it.

Build one with ``WorkflowBuilder``. An instance keeps the state of its current run, so
``run(responses=...)`` and ``run(checkpoint_id=...)`` continue it (resume); a new instance
built from the same definition continues a checkpoint too (rehydrate).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from typing import Any, AsyncIterator, Awaitable, Callable

from .checkpoints import KIND_ENTRY, KIND_RESPONSE, WorkflowCheckpoint
from .edges import EdgeGroup, FanInEdgeGroup
from .errors import WorkflowCheckpointError, WorkflowRunError
from .events import (CheckpointInfo, RequestInfoEvent, WorkflowEvent, WorkflowFailedEvent,
                     WorkflowRunResult, WorkflowRunState, WorkflowStartedEvent)
from .executors import Executor
from .messages import Message, PendingRequest
from .runner import Runner, SuperstepFailed
from .storage import CheckpointStorage
from .typing_utils import type_name


def edge_group_signature(group: EdgeGroup) -> str:
    """A readable, stable line for one edge group ("direct: a -> b if mod.cond")."""
    line = f"{group.kind}: {', '.join(group.sources)} -> {', '.join(group.targets)}"
    conditions = [c for c in group.conditions() if c is not None]
    return f"{line} by {'; '.join(conditions)}" if conditions else line


def describe_graph_difference(old: Any, new: dict[str, Any]) -> str:
    """Say what differs between two graph signatures: executors and edges added/removed."""
    if not isinstance(old, dict):
        return "the checkpoint does not record the graph it was written by"
    parts = []
    if old.get("start") != new["start"]:
        parts.append(f"start executor changed from '{old.get('start')}' to '{new['start']}'")
    for label, key in (("executors", "executors"), ("edges", "edges")):
        before, after = set(old.get(key) or ()), set(new[key])
        if after - before:
            parts.append(f"{label} added: {'; '.join(sorted(after - before))}")
        if before - after:
            parts.append(f"{label} removed: {'; '.join(sorted(before - after))}")
    return ", ".join(parts) or "the graph signatures differ"


class Workflow:
    """A runnable workflow. Not safe to run concurrently: one ``run()`` at a time."""

    def __init__(self, *, name: str, executors: dict[str, Executor], start_executor_id: str,
                 edge_groups: list[EdgeGroup], max_iterations: int = 100,
                 checkpoint_storage: CheckpointStorage | None = None,
                 description: str = "") -> None:
        self.name = name
        self.description = description
        self.executors = executors
        self.start_executor_id = start_executor_id
        self.edge_groups = edge_groups
        self.max_iterations = max_iterations
        self.checkpoint_storage = checkpoint_storage
        self.outgoing: dict[str, list[EdgeGroup]] = {}
        for group in edge_groups:
            for source in group.sources:
                self.outgoing.setdefault(source, []).append(group)
        self.fan_in_groups = [g for g in edge_groups if isinstance(g, FanInEdgeGroup)]
        self.graph_signature = {
            "start": start_executor_id,
            "executors": sorted(f"{e.id}: {e.type_name}" for e in executors.values()),
            "edges": sorted(edge_group_signature(g) for g in edge_groups),
        }
        self.graph_signature_hash = hashlib.sha256(json.dumps(
            self.graph_signature, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
        self._runner = Runner(self)
        self._running = False

    # -- inspection -----------------------------------------------------------------------
    @property
    def start_executor(self) -> Executor:
        return self.executors[self.start_executor_id]

    @property
    def input_types(self) -> list[Any]:
        """The message types the start executor accepts (what ``run(message)`` takes)."""
        return self.start_executor.input_types

    @property
    def state(self) -> WorkflowRunState | None:
        """The state of this instance's current or last run (None before the first)."""
        return self._runner.state

    @property
    def pending_requests(self) -> list[RequestInfoEvent]:
        """The requests this instance's run is waiting on."""
        return [RequestInfoEvent(r.request_id, r.source_executor_id, r.data, r.response_type)
                for r in self._runner.pending_requests.values()]

    def get_last_checkpoint_id(self) -> str | None:
        """The newest checkpoint this instance wrote or restored."""
        return self._runner.last_checkpoint_id

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
            runner = self._runner
            # Validate everything before changing anything: a refused call leaves no trace.
            checkpoint = None
            if checkpoint_id is not None:
                if storage is None:
                    raise WorkflowRunError("run(checkpoint_id=...) needs checkpoint storage: pass "
                                           "checkpoint_storage= to run() or to WorkflowBuilder")
                checkpoint = await storage.load(checkpoint_id)
                self._check_restorable(checkpoint)
                if responses is not None:
                    runner.check_responses(responses, {
                        rid: PendingRequest.from_dict(r)
                        for rid, r in checkpoint.pending_requests.items()})
            elif responses is not None:
                if runner.state is not WorkflowRunState.IDLE_WITH_PENDING_REQUESTS:
                    raise WorkflowRunError(
                        f"this workflow instance is not waiting on requests (state: "
                        f"{runner.state}); to answer the requests of a checkpoint, pass its "
                        f"checkpoint_id too")
                runner.check_responses(responses, runner.pending_requests)
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
            await self._advance(runner, message, checkpoint, responses, storage, emit)
        finally:
            self._running = False

    async def _advance(self, runner: Runner, message: Any, checkpoint: WorkflowCheckpoint | None,
                       responses: dict[str, Any] | None, storage: CheckpointStorage | None,
                       emit: Any) -> None:
        runner.emit = emit
        runner.storage = storage
        try:
            entry: CheckpointInfo | None = None
            reemit: list[PendingRequest] = []
            if checkpoint is not None:
                await runner.restore(checkpoint)
                reemit = [r for rid, r in runner.pending_requests.items()
                          if not responses or rid not in responses]
            elif responses is None:
                runner.reset()
                runner.pending = [Message(self.start_executor_id, None, message)]
            if responses:
                runner.accept_responses(responses)
            if storage is not None and (checkpoint is None or responses):
                entry = await runner.write_checkpoint(KIND_RESPONSE if responses else KIND_ENTRY)
            emit(WorkflowStartedEvent(entry))
            for request in reemit:
                emit(RequestInfoEvent(request.request_id, request.source_executor_id,
                                      request.data, request.response_type))
            if runner.pending:
                runner.set_state(WorkflowRunState.IN_PROGRESS_PENDING_REQUESTS
                                 if runner.pending_requests else WorkflowRunState.IN_PROGRESS)
            await runner.run_until_idle()
        except SuperstepFailed as failure:
            emit(WorkflowFailedEvent(failure.error, failure.executor_id))
            runner.set_state(WorkflowRunState.FAILED)
            raise failure.error from None
        except asyncio.CancelledError:
            runner.set_state(WorkflowRunState.CANCELLED)
            raise
        except Exception as error:
            emit(WorkflowFailedEvent(error))
            runner.set_state(WorkflowRunState.FAILED)
            raise

    def _check_restorable(self, checkpoint: WorkflowCheckpoint) -> None:
        """Refuse a checkpoint of another graph, or one naming executors this graph lacks."""
        if checkpoint.graph_signature_hash != self.graph_signature_hash:
            difference = describe_graph_difference(checkpoint.metadata.get("graph"),
                                                   self.graph_signature)
            raise WorkflowCheckpointError(
                f"checkpoint {checkpoint.checkpoint_id} was written by a different graph of "
                f"workflow '{checkpoint.workflow_name}' than '{self.name}': {difference}")
        known = self.executors
        unknown = {m["target_id"] for m in checkpoint.messages if m["target_id"] not in known}
        unknown |= {r["source_executor_id"] for r in checkpoint.pending_requests.values()
                    if r["source_executor_id"] not in known}
        unknown |= {eid for eid in checkpoint.executor_states if eid not in known}
        groups = {g.buffer_id for g in self.fan_in_groups}
        if unknown or any(gid not in groups for gid in checkpoint.fan_in_buffers):
            raise WorkflowCheckpointError(
                f"checkpoint {checkpoint.checkpoint_id} refers to executors or edges this "
                f"workflow does not have: {', '.join(sorted(unknown)) or 'a fan-in buffer'}")
