"""``WorkflowExecutor``: a workflow used as one executor of another (a sub-workflow).

As in MAF, the wrapped ("inner") workflow runs inside the handler of its executor in the
parent ("outer") workflow:

- **Messages in, outputs out.** A message delivered to the executor is the inner workflow's
  input (it accepts what the inner start executor accepts). The inner workflow runs to idle
  within that one parent superstep, however many inner supersteps that takes (its own
  ``max_iterations`` bounds them); each value it yields (``ctx.yield_output``) is then sent
  as a message of the executor in the parent graph, in the order yielded. So the executor
  sends what the inner executors declare they yield, and ``build()`` checks its edges
  against that. With ``allow_direct_output=True`` (MAF's option) they are outputs of the
  parent run instead, yielded by this executor, which then sends nothing. Several messages
  in one superstep run the inner workflow once each, in order.
- **Requests.** A request made inside surfaces as a pending request of the parent run (a
  ``request_info`` event of the parent, source executor: this executor), with the inner
  request's data and response type and the id ``"<executor id>/<inner request id>"``:
  unique in the parent even when two sub-workflows make requests with the same id, stable
  across restores, and nested sub-workflows prefix it once per level
  (``"outer/inner/approve-1"``). Answering it (``run(responses=...)`` of the parent, with
  or without ``checkpoint_id``) delivers the answer to the inner workflow, which continues
  to idle within that parent superstep; answers arriving together are delivered one at a
  time. Requests still pending when a new message arrives stay answerable, as MAF allows
  (the inner workflow's warning is passed on).
- **State.** The inner workflow's whole state (its executors' saved states, messages,
  fan-in buffers, committed shared state, pending requests and superstep) is this
  executor's state in the parent's checkpoints, ``executor_states[id]["workflow"]``: the
  inner checkpoint document (without id, lineage and timestamp). It is saved through the
  executor's state hooks at every parent checkpoint, when the inner workflow is idle, and
  a parent restore (resume or rehydrate) restores the inner workflow from it, its
  executors' restore hooks included. The inner workflow writes no checkpoints of its own:
  giving it a checkpoint storage is refused.
- **Graph.** The parent's graph signature includes the inner graph (its executors, edges
  and start, prefixed with this executor's id), so a checkpoint written before the inner
  graph changed is refused, naming what changed inside.
- **Events.** The inner executors' ``executor_invoked``, ``executor_completed`` and
  ``executor_failed`` events are passed up as they happen, in order, through the emit of
  this executor's context (the path of the parent's own executor events), with the
  executor id prefixed by this executor's id (``"review/writer"``; nested levels prefix
  again, ``"outer/review/writer"``); they fall between this executor's own invoked and
  completed events, in the parent's superstep under way. The inner ``superstep_started``
  / ``superstep_completed`` events are not passed up: the inner supersteps all happen
  within one parent superstep, and the parent's timeline numbers only its own. A request
  made inside names the inner executor as its ``origin_executor_id`` (same prefixing;
  ``source_executor_id`` stays this executor, which takes the answer). Other inner events
  stay inside, except outputs and requests (above) and warnings, which are re-emitted by
  this executor with the sub-workflow named. An inner handler
  that raises fails this executor (and the parent's superstep) with the same error, noted
  with the sub-workflow and the inner executor. ``request_stop()`` of the parent takes
  effect at the parent's next boundary, once the inner workflow is idle; cancelling the
  parent (closing its stream) cancels the inner run too, and the parent's checkpoint it
  resumes from puts the inner workflow back.

A ``Workflow`` instance can be wrapped by one ``WorkflowExecutor`` only; build one instance
per use (a factory that builds the parent builds its sub-workflows afresh, as rehydrating
needs).
"""

from __future__ import annotations

from typing import Any

from .checkpoints import KIND_SUPERSTEP, WorkflowCheckpoint
from .context import WorkflowContext
from .errors import WorkflowValidationError
from .events import (ExecutorCompletedEvent, ExecutorFailedEvent, ExecutorInvokedEvent,
                     WorkflowEvent, WorkflowFailedEvent, WorkflowRunResult, WorkflowRunState,
                     WorkflowWarningEvent)
from .executors import Executor, HandlerSpec, ResponseHandlerSpec, _union_declared
from .runner import Runner
from .workflow import Workflow

# The key of the inner checkpoint document in the executor's saved state.
STATE_KEY = "workflow"
# Between the executor id and the inner request id in the parent's request ids.
REQUEST_ID_SEPARATOR = "/"
# Fields of the inner checkpoint that are not state: a restore supplies its own.
_VOLATILE = ("checkpoint_id", "previous_checkpoint_id", "timestamp", "metadata")
# The inner events passed up to the parent, re-made with the prefixed executor id.
_PASSED_UP = {"executor_invoked": ExecutorInvokedEvent,
              "executor_completed": ExecutorCompletedEvent,
              "executor_failed": ExecutorFailedEvent}


def _ignore(event: WorkflowEvent) -> None:
    """Where the events of the inner workflow's state hooks go (as a top-level run's hooks'
    contexts, they have no run to report to)."""


class WorkflowExecutor(Executor):
    """An executor that runs ``workflow`` as a sub-workflow (see the module docstring)."""

    def __init__(self, workflow: Workflow, id: str, *, allow_direct_output: bool = False) -> None:
        super().__init__(id)
        if not isinstance(workflow, Workflow):
            raise WorkflowValidationError(
                f"WorkflowExecutor '{id}' needs a built Workflow, got {workflow!r}")
        if workflow.checkpoint_storage is not None:
            raise WorkflowValidationError(
                f"the sub-workflow '{workflow.name}' of executor '{id}' has its own checkpoint "
                f"storage: its state is saved in the parent's checkpoints; build it without one")
        owner = getattr(workflow, "_wrapped_by", None)
        if owner is not None:
            raise WorkflowValidationError(
                f"workflow '{workflow.name}' is already the sub-workflow of executor '{owner}'; "
                f"an instance keeps one run's state, so build another instance for '{id}'")
        workflow._wrapped_by = id
        self.workflow = workflow
        self.allow_direct_output = allow_direct_output
        # What the inner executors yield is what this executor sends (or yields); None when
        # any of them does not declare it (then checked at run time only, as for any
        # executor).
        produced = _union_declared([e.yield_types() for e in workflow.executors.values()])
        sends, yields = ((), produced) if allow_direct_output else (produced, ())
        self._specs = [
            HandlerSpec("run_workflow", WorkflowExecutor._run_workflow, spec.message_type,
                        sends, yields, takes_context=True, class_only=spec.class_only)
            for spec in workflow.start_executor.handler_specs()]
        # Any request of this executor is one of the inner workflow's: the parent checked
        # the response against the inner request's response type already.
        self._response_specs = [ResponseHandlerSpec(
            "answer_workflow", WorkflowExecutor._answer_workflow, Any, Any, sends, yields)]

    # -- what it is -----------------------------------------------------------------------
    def handler_specs(self) -> list[HandlerSpec]:
        return self._specs

    def response_handler_specs(self) -> list[ResponseHandlerSpec]:
        return self._response_specs

    @property
    def subgraph_signature(self) -> dict[str, Any]:
        """The inner graph's signature, which the parent's graph signature includes."""
        return self.workflow.graph_signature

    def describe(self) -> dict[str, Any]:
        """As any executor, with the inner workflow's description under ``workflow`` and
        the requests its executors make as this executor's ``requests``."""
        described = super().describe()
        inner = self.workflow.describe()
        described["workflow"] = inner
        described["requests"] = [r for e in inner["executors"] for r in e["requests"]]
        return described

    def inner_request_id(self, request_id: str) -> str:
        """The inner workflow's id of the parent request ``request_id`` (see the module
        docstring); raises ``ValueError`` for an id this executor did not make."""
        prefix = self.id + REQUEST_ID_SEPARATOR
        if not request_id.startswith(prefix):
            raise ValueError(f"request id {request_id!r} is not one of executor '{self.id}'")
        return request_id[len(prefix):]

    # -- handlers ---------------------------------------------------------------------------
    async def _run_workflow(self, message: Any, ctx: WorkflowContext) -> None:
        result = await self._run_inner(ctx, message=message)
        await self._forward(result, ctx)

    async def _answer_workflow(self, original_request: Any, response: Any,
                               ctx: WorkflowContext) -> None:
        inner_id = self.inner_request_id(ctx.request_id or "")
        result = await self._run_inner(ctx, responses={inner_id: response})
        await self._forward(result, ctx)

    async def _run_inner(self, ctx: WorkflowContext, **call: Any) -> WorkflowRunResult:
        failed: list[WorkflowFailedEvent] = []
        # Package-internal: the parent runner's emit, which its own executor events take,
        # so the inner ones reach the parent's caller live and in order.
        emit = ctx._emit
        prefix = self.id + REQUEST_ID_SEPARATOR

        def pass_up(event: WorkflowEvent) -> None:
            passed = _PASSED_UP.get(event.type)
            if passed is not None:
                emit(passed(prefix + event.executor_id, event.data))
            elif event.type == "failed":
                failed.append(event)

        try:
            return await self.workflow.run(**call, on_event=pass_up)
        except Exception as error:
            where = (f" in its executor '{failed[0].executor_id}'"
                     if failed and failed[0].executor_id else "")
            error.add_note(f"raised in sub-workflow '{self.workflow.name}' of executor "
                           f"'{self.id}'{where}")
            raise

    async def _forward(self, result: WorkflowRunResult, ctx: WorkflowContext) -> None:
        """Send the inner run's outputs, then surface its new requests (as MAF: outputs first)."""
        for event in result:
            if event.type == "output":
                if self.allow_direct_output:
                    await ctx.yield_output(event.data)
                else:
                    await ctx.send_message(event.data)
            elif event.type == "warning":
                await ctx.add_event(WorkflowWarningEvent(
                    f"sub-workflow '{self.workflow.name}' of executor '{self.id}': {event.data}",
                    executor_id=self.id, message_type=event.message_type))
        for request in result.get_request_info_events():
            await ctx._request(request.data, request.response_type,
                               self.id + REQUEST_ID_SEPARATOR + request.request_id,
                               self.id + REQUEST_ID_SEPARATOR + request.origin_executor_id)

    # -- state hooks ------------------------------------------------------------------------
    def _inner_runner(self) -> Runner:
        # Package-internal access: the inner instance's run state is what the parent saves.
        inner = self.workflow
        return Runner(inner.graph, inner._run_state, workflow_name=inner.name,
                      max_iterations=inner.max_iterations, storage=None, emit=_ignore)

    async def on_checkpoint_save(self) -> dict[str, Any]:
        """The inner workflow's checkpoint document (it is idle between parent supersteps)."""
        checkpoint = await self._inner_runner().build_checkpoint(KIND_SUPERSTEP)
        document = checkpoint.to_dict()
        for key in _VOLATILE:
            del document[key]
        return {STATE_KEY: document}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        """Make the inner workflow what the parent's checkpoint recorded (a state without
        it, e.g. of a checkpoint edited by hand, restores the inner workflow to empty)."""
        inner = self.workflow
        document = state.get(STATE_KEY)
        restoring = {"checkpoint_id": f"{self.id}{REQUEST_ID_SEPARATOR}{inner.name}",
                     "previous_checkpoint_id": None, "timestamp": "", "metadata": {}}
        if document is None:
            checkpoint = WorkflowCheckpoint(
                workflow_name=inner.name, graph_signature_hash=inner.graph_signature_hash,
                superstep=0, **restoring)
        else:
            checkpoint = WorkflowCheckpoint.from_dict({**document, **restoring})
        inner.graph.check_restorable(checkpoint, inner.name)
        await self._inner_runner().restore(checkpoint)
        run_state = inner._run_state
        run_state.last_checkpoint_id = None  # it has none of its own
        run_state.status = (WorkflowRunState.IDLE_WITH_PENDING_REQUESTS
                            if run_state.pending_requests else WorkflowRunState.IDLE)
