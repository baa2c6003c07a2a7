"""``Workflow``: a validated graph of executors, and ``run()``, the one way to drive it.

Build one with ``WorkflowBuilder``. An instance keeps its state across ``run()`` calls, as
MAF's do: ``run(responses=...)`` and ``run(checkpoint_id=...)`` continue a run (resume), and
``run(message)`` delivers a new message to the same executors, shared state and pending
requests (a caller who wants a clean slate builds a new instance). A new instance built
from the same definition continues a checkpoint too (rehydrate). ``request_stop()`` asks a
run in progress to end at its next superstep boundary, after that checkpoint.
"""

from __future__ import annotations

import asyncio
import collections
import weakref
from typing import Any, AsyncIterator, Awaitable, Callable

from .checkpoints import KIND_ENTRY, KIND_RESPONSE, WorkflowCheckpoint
from .edges import EdgeGroup
from .errors import WorkflowRunError
from .events import (CheckpointInfo, RequestInfoEvent, WorkflowEvent, WorkflowFailedEvent,
                     WorkflowRunResult, WorkflowRunState, WorkflowStartedEvent,
                     WorkflowWarningEvent)
from .executors import Executor
from .graph import WorkflowGraph
from .messages import Message, OpenRequest
from .runner import Runner, RunState, SuperstepFailed, check_responses
from .storage import CheckpointStorage
from .typing_utils import type_name


_END = object()  # the end of a streamed run's events


class _EventFeed:
    """A streamed run's events on their way to the reader, and the reader's demand.

    The run puts events and, at superstep boundaries and status changes, awaits
    ``caught_up()``: the reader has taken every event and asks for the next (True), or
    closed the stream (False). The reader takes events with ``next()``.
    """

    __slots__ = ("events", "closed", "ended", "runner", "_arrived", "_wanted")

    def __init__(self) -> None:
        self.events: collections.deque[WorkflowEvent] = collections.deque()
        self.closed = False  # the reader stopped reading
        self.ended = False  # the run is over: no event will follow those in ``events``
        self.runner: Runner | None = None  # set once the run has one
        self._arrived = asyncio.Event()
        self._wanted = asyncio.Event()

    def put(self, event: WorkflowEvent) -> None:
        if self.closed:
            return  # no one will read it
        self.events.append(event)
        self._wanted.clear()
        self._arrived.set()

    def end(self, _task: Any = None) -> None:
        self.ended = True
        self._arrived.set()

    def close(self) -> None:
        self.closed = True
        self.events.clear()
        self._wanted.set()  # release a run waiting in caught_up()

    async def next(self) -> Any:
        """The next event, or ``_END`` once the run is over and every event was taken."""
        while not self.events:
            if self.ended:
                return _END
            self._arrived.clear()
            self._wanted.set()
            await self._arrived.wait()
        return self.events.popleft()

    async def caught_up(self) -> bool:
        while not self.closed and not self._wanted.is_set():
            await self._wanted.wait()
        return not self.closed


class _RunStream:
    """What ``run(stream=True)`` returns: an async iterator of the run's events, with
    ``aclose()``. While it is referenced and not read to the end or closed, the instance
    refuses another run; dropping it closes the run as ``aclose()`` does."""

    __slots__ = ("_events", "__weakref__")

    def __init__(self, events: Any) -> None:
        self._events = events

    def __aiter__(self) -> "_RunStream":
        return self

    @property
    def finished(self) -> bool:
        """Read to the end or closed (also when closed before the first event)."""
        return self._events.ag_frame is None

    def __anext__(self) -> Awaitable[WorkflowEvent]:
        return self._events.__anext__()

    def aclose(self) -> Awaitable[None]:
        """Stop reading: the run ends as cancelled at once if handlers are running (their
        superstep is lost, as a failed one is), else at its next superstep boundary,
        after the checkpoint under way; returns once it has ended."""
        return self._events.aclose()


async def _close_stream(task: asyncio.Task, feed: _EventFeed) -> None:
    """End a streamed run whose reader stopped reading, and wait until it has ended.

    Handlers that are running are cancelled (their superstep commits nothing); anything
    else (a restore, a checkpoint write) completes first, so no checkpoint is cut short,
    and the run then ends at the boundary where it waits for its reader.
    """
    if not task.done():
        feed.close()
        if feed.runner is not None and feed.runner.in_handlers:
            task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        current = asyncio.current_task()
        if current is not None and current.cancelling():
            raise  # the caller itself is being cancelled, not just the run we ended
    except Exception:
        pass  # the run's own outcome: its reader is gone, and its state records it


class Workflow:
    """A runnable workflow. One ``run()`` at a time: another is refused until the first
    has finished (a stream: read to the end, closed, or dropped)."""

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
        # The run() call this instance is busy with: a token and a weak reference to what
        # run() returned (a coroutine or a stream), so one dropped unread frees the instance.
        self._claim: tuple[object, weakref.ref, bool] | None = None
        # The task and feed of a streamed run still executing, so that a run started after
        # its stream was dropped first ends it (see _settle_dropped_stream).
        self._streaming: tuple[asyncio.Task, _EventFeed] | None = None

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
        """The state of this instance's current or last run (None before the first). While
        a run streams, it changes when the reader reaches the status event announcing it."""
        return self._run_state.status

    @property
    def pending_requests(self) -> list[RequestInfoEvent]:
        """The requests this instance's run is waiting on."""
        return [RequestInfoEvent(r.request_id, r.source_executor_id, r.data, r.response_type,
                                 r.origin_executor_id)
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

        - ``run(message)``: deliver ``message`` to the start executor (an entry checkpoint
          first, with storage). The instance keeps what earlier runs left, as in MAF:
          executor state, shared state, pending requests (still answerable; a ``warning``
          event says so) and the checkpoint lineage; superstep numbers start again at 0.
          Refused while messages of an earlier run are still in flight (it failed, stopped
          or was cancelled mid-run): continue that with ``run(checkpoint_id=...)``.
        - ``run(responses={request_id: value})``: answer this instance's pending requests.
        - ``run(checkpoint_id=...)``: restore that checkpoint (same instance: resume; new
          instance: rehydrate) and continue; with ``responses``, answer its requests too.

        Await it for a ``WorkflowRunResult``, or pass ``stream=True`` and iterate the events:
        the run advances as they are read, at most one superstep ahead of the reader, and
        closing the stream (``aclose()``, or dropping it) ends the run as cancelled.
        ``on_event``, if given, is called with each event the moment it is emitted (before
        the checkpoint that follows it is saved), e.g. to record events with checkpoints.
        A handler that raises fails the run and the error is raised to the caller.
        ``WorkflowRunError`` is raised at once while an earlier run of this instance is
        not finished (a stream not yet read to the end or closed).
        """
        if message is not None and (checkpoint_id is not None or responses is not None):
            raise WorkflowRunError("run() takes either a message, or checkpoint_id and/or "
                                   "responses, not both")
        if message is None and checkpoint_id is None and responses is None:
            raise WorkflowRunError("run() needs a message, a checkpoint_id or responses")
        self._refuse_if_busy()
        args = (message, checkpoint_id, responses, checkpoint_storage, on_event)
        claim = object()
        call: Any = (_RunStream(self._stream(claim, *args)) if stream
                     else self._collect(claim, *args))
        self._claim = (claim, weakref.ref(call), stream)
        return call

    def _refuse_if_busy(self) -> None:
        # Checked when run() is called, before any await, so two calls cannot both pass.
        call = self._claim[1]() if self._claim is not None else None
        if call is None or (isinstance(call, _RunStream) and call.finished):
            return
        why = ("its event stream has not been read to the end or closed (aclose(), or "
               "contextlib.aclosing)" if self._claim[2] else "the previous run() has not "
               "finished")
        raise WorkflowRunError(
            f"workflow '{self.name}' is already running on this instance: {why}; an instance "
            f"runs one run() at a time (build another instance to run side by side)")

    def _release(self, claim: object) -> None:
        if self._claim is not None and self._claim[0] is claim:
            self._claim = None

    async def _settle_dropped_stream(self) -> None:
        """End the run of a stream that was dropped while unfinished (which freed the
        instance) before another run starts, so two never advance the same state."""
        if self._streaming is not None:
            await _close_stream(*self._streaming)

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

    async def _collect(self, claim: object, *args: Any) -> WorkflowRunResult:
        try:
            if self._streaming is not None:
                await self._settle_dropped_stream()
            result = WorkflowRunResult()
            await self._execute(*args, emit=result.append)
            return result
        finally:
            self._release(claim)

    async def _stream(self, claim: object, *args: Any) -> AsyncIterator[WorkflowEvent]:
        # The run executes in its own task (handlers may await anything), paced by the
        # reader through the feed: it advances only as events are taken.
        feed = _EventFeed()
        task: asyncio.Task | None = None
        try:
            await self._settle_dropped_stream()
            task = asyncio.ensure_future(self._execute(*args, emit=feed.put, feed=feed))
            task.add_done_callback(feed.end)
            self._streaming = (task, feed)
            while (event := await feed.next()) is not _END:
                yield event
            await task  # re-raises the run's error, after its events were delivered
        finally:
            if task is not None:
                await _close_stream(task, feed)  # the reader stopped early: end the run
                if self._streaming is not None and self._streaming[0] is task:
                    self._streaming = None
            self._release(claim)

    async def _execute(self, message: Any, checkpoint_id: str | None,
                       responses: dict[str, Any] | None, storage: CheckpointStorage | None,
                       on_event: Callable[[WorkflowEvent], None] | None, *, emit: Any,
                       feed: _EventFeed | None = None) -> None:
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
            elif self._run_state.pending:
                # As MAF: a new message must not join messages an unfinished run left.
                raise WorkflowRunError(
                    f"workflow '{self.name}' still has {len(self._run_state.pending)} "
                    f"message(s) in flight from a run that did not finish (state: "
                    f"{self._run_state.status}); continue it with run(checkpoint_id=...), or "
                    f"build a new instance to start afresh")
            if on_event is not None:
                collect = emit

                def emit(event: WorkflowEvent) -> None:
                    on_event(event)
                    collect(event)
            runner = Runner(self.graph, self._run_state, workflow_name=self.name,
                            max_iterations=self.max_iterations, storage=storage, emit=emit,
                            pace=feed.caught_up if feed is not None else None)
            runner.stop_reason = self._stop_reason
            self._runner = runner
            if feed is not None:
                feed.runner = runner
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
            still_pending: list[str] = []
            if checkpoint is not None:
                await runner.restore(checkpoint)
                reemit = [r for rid, r in state.pending_requests.items()
                          if not responses or rid not in responses]
            elif responses is None:
                # A new message to an instance that keeps what earlier runs left; only the
                # superstep count starts again (MAF counts iterations per run).
                still_pending = list(state.pending_requests)
                state.superstep = 0
                state.pending = [Message(self.start_executor_id, None, message)]
            if responses:
                runner.accept_responses(responses)
            if runner.storage is not None and (checkpoint is None or responses):
                entry = await runner.write_checkpoint(KIND_RESPONSE if responses else KIND_ENTRY)
            emit(WorkflowStartedEvent(entry))
            if still_pending:
                emit(WorkflowWarningEvent(
                    f"a new message of type {type(message).__qualname__} started a run while "
                    f"{len(still_pending)} request(s) are pending ({', '.join(still_pending)}); "
                    f"they stay pending and answerable with run(responses=...), but this run "
                    f"moves executor and shared state on, so a later answer may find the "
                    f"workflow changed", message_type=type(message).__qualname__))
            for request in reemit:
                emit(RequestInfoEvent(request.request_id, request.source_executor_id,
                                      request.data, request.response_type,
                                      request.origin_executor_id))
            if state.pending:
                await runner.report(WorkflowRunState.IN_PROGRESS_PENDING_REQUESTS
                                    if state.pending_requests else WorkflowRunState.IN_PROGRESS)
            await runner.run_until_idle()
        except SuperstepFailed as failure:
            emit(WorkflowFailedEvent(failure.error, failure.executor_id))
            await runner.report(WorkflowRunState.FAILED)
            raise failure.error from None
        except asyncio.CancelledError:
            runner.set_status(WorkflowRunState.CANCELLED)
            raise
        except Exception as error:
            emit(WorkflowFailedEvent(error))
            await runner.report(WorkflowRunState.FAILED)
            raise
