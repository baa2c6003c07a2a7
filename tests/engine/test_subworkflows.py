"""Sub-workflows: ``WorkflowExecutor`` runs a workflow as one executor of another.

Messages in and outputs out, the inner state inside the parent's checkpoints (both state-hook
styles: ``Pinger`` saves keys, ``Ponger`` and ``Approver`` return dicts), requests made
inside answered through the parent, resume and rehydrate, the graph signature, two levels.
"""

from __future__ import annotations

import asyncio
from typing import Any, Never

import pytest

from tests.engine.workflows import (PINGPONG_OUTPUT, ApprovalRequest, Return, Sink, build_approval,
                                    build_pingpong, checkpoint_infos, types_of)
from workflows_app.engine import (Executor, WorkflowBuilder, WorkflowCheckpointError,
                                  WorkflowContext, WorkflowExecutor, WorkflowRunError,
                                  WorkflowRunState, WorkflowValidationError, handler)


class Rounds(Executor):
    """Sends its input to the sub-workflow, then 0 again for each result until it has
    ``rounds`` of them, and yields them all. Saves its results with state-key hooks."""

    def __init__(self, id: str = "driver", rounds: int = 2) -> None:
        super().__init__(id)
        self.rounds = rounds
        self.results: list[dict] = []

    @handler
    async def start(self, n: int, ctx: WorkflowContext[int]) -> None:
        await ctx.send_message(n)

    @handler
    async def back(self, result: dict, ctx: WorkflowContext[int, list]) -> None:
        self.results.append(result)
        if len(self.results) < self.rounds:
            await ctx.send_message(0)
        else:
            await ctx.yield_output(list(self.results))

    async def on_checkpointing(self, ctx: WorkflowContext) -> None:
        await ctx.queue_state_update("results", list(self.results))

    async def on_checkpoint_restored(self, ctx: WorkflowContext) -> None:
        self.results = list(await ctx.read_state("results", []))


class Relay(Executor):
    """Yields whatever dict it receives: makes a sub-workflow's message its workflow's output."""

    @handler
    async def relay(self, value: dict, ctx: WorkflowContext[Never, dict]) -> None:
        await ctx.yield_output(value)


def build_rounds(storage: Any = None, *, fail_at: int | None = None, rounds: int = 2):
    """driver -> sub (a pingpong) -> driver, ``rounds`` times. Supersteps: 1 driver, 2 sub,
    3 driver, 4 sub, 5 driver (yields). The pingpong instance keeps its state between
    rounds, so round 2 shows round 1's: ``ping`` [0, 2, 4, 6] twice, ``pong_hits`` 6."""
    driver = Rounds(rounds=rounds)
    sub = WorkflowExecutor(build_pingpong(fail_at=fail_at), id="sub")
    return (WorkflowBuilder(name="rounds", start_executor=driver, checkpoint_storage=storage)
            .add_edge(driver, sub).add_edge(sub, driver).build())


ROUNDS_OUTPUT = [PINGPONG_OUTPUT,
                 {"ping": [0, 2, 4, 6] * 2, "pong_hits": 6, "last": 5}]


def build_review(storage: Any = None, *, notify: bool = False, name: str = "review_pipeline"):
    """review (the approval workflow) -> done. Request ids: ``review/<topic>-<draft>``."""
    review = WorkflowExecutor(build_approval(notify=notify), id="review")
    return (WorkflowBuilder(name=name, start_executor=review, checkpoint_storage=storage)
            .add_edge(review, Sink("done")).build())


def build_two_level_pingpong(storage: Any = None):
    """driver -> outer (a workflow: inner (a pingpong) -> relay) -> driver, two rounds."""
    inner = WorkflowExecutor(build_pingpong(), id="inner")
    relay = Relay("relay")
    middle = (WorkflowBuilder(name="middle", start_executor=inner)
              .add_edge(inner, relay).build())
    driver = Rounds()
    outer = WorkflowExecutor(middle, id="outer")
    return (WorkflowBuilder(name="two_level", start_executor=driver, checkpoint_storage=storage)
            .add_edge(driver, outer).add_edge(outer, driver).build())


def build_two_level_review(storage: Any = None):
    """outer (a workflow: review (the approval workflow) -> relay) -> done."""
    review = WorkflowExecutor(build_approval(), id="review")
    middle = (WorkflowBuilder(name="middle", start_executor=review)
              .add_edge(review, Relay("relay")).build())
    outer = WorkflowExecutor(middle, id="outer")
    return (WorkflowBuilder(name="two_level_review", start_executor=outer,
                            checkpoint_storage=storage)
            .add_edge(outer, Sink("done")).build())


async def checkpoint_at(storage: Any, result: Any, superstep: int) -> Any:
    infos = [result[0].checkpoint, *checkpoint_infos(result)]  # the entry, then supersteps
    info = next(i for i in infos if i.superstep == superstep)
    return await storage.load(info.checkpoint_id)


# --------------------------------------------------------------------------- messages and outputs
async def test_messages_go_in_and_outputs_come_out_as_messages():
    workflow = build_rounds()
    result = await workflow.run(0)
    assert result.get_outputs() == [ROUNDS_OUTPUT]
    # Each round is one parent superstep: the inner workflow runs to idle inside it.
    assert [e.superstep for e in result if e.type == "superstep_completed"] == [1, 2, 3, 4, 5]
    # The parent's executors and, passed up with the sub-workflow's id prefixed, the inner
    # ones appear in its events; outputs inside are messages.
    assert {e.executor_id for e in result if e.type == "executor_invoked"} == {
        "driver", "sub", "sub/ping", "sub/pong"}
    assert [e.executor_id for e in result if e.type == "output"] == ["driver"]
    assert result.get_final_state() is WorkflowRunState.IDLE


async def test_the_executor_accepts_what_the_inner_start_accepts_and_sends_what_it_yields():
    sub = WorkflowExecutor(build_pingpong(), id="sub")
    assert sub.input_types == [int, Return]  # Pinger's handlers
    assert sub.can_handle(3) and not sub.can_handle("3")
    # Ponger declares what it sends only, so what the pingpong yields is not declared.
    assert sub.send_types() is None
    review = WorkflowExecutor(build_approval(), id="review")
    assert review.input_types == [str] and review.send_types() == (dict,)
    described = review.describe()
    assert described["workflow"]["name"] == "approval"
    assert described["output_types"] == ["dict"] and described["yield_types"] == []
    assert described["requests"] == [{"request_type": "ApprovalRequest",
                                      "response_type": "bool"}]

    # build() checks the edges leaving it against what the inner executors yield.
    class TextOnly(Executor):
        @handler
        async def take(self, text: str, ctx: WorkflowContext) -> None:
            pass

    with pytest.raises(WorkflowValidationError, match="edge review -> text: 'review' sends dict"):
        (WorkflowBuilder(name="bad", start_executor=review)
         .add_edge(review, TextOnly("text")).build())


def test_a_workflow_with_its_own_storage_or_already_wrapped_is_refused(memory_storage):
    with pytest.raises(WorkflowValidationError, match="its own checkpoint storage"):
        WorkflowExecutor(build_pingpong(memory_storage), id="sub")
    pingpong = build_pingpong()
    WorkflowExecutor(pingpong, id="first")
    with pytest.raises(WorkflowValidationError, match="already the sub-workflow of executor 'first'"):
        WorkflowExecutor(pingpong, id="second")


async def test_with_allow_direct_output_the_inner_outputs_are_the_parent_outputs():
    review = WorkflowExecutor(build_approval(), id="review", allow_direct_output=True)
    assert review.send_types() == () and review.yield_types() == (dict,)
    workflow = WorkflowBuilder(name="direct", start_executor=review).build()
    await workflow.run("d")
    result = await workflow.run(responses={"review/legal-d": True, "review/finance-d": True})
    assert [(e.executor_id, e.data) for e in result if e.type == "output"] == [
        ("review", {"draft": "d", "decisions": {"legal": True, "finance": True}})]


# --------------------------------------------------------------------------- state in checkpoints
async def test_inner_state_is_in_the_parent_checkpoint(storage):
    workflow = build_rounds(storage)
    result = await workflow.run(0)
    after_round_one = await checkpoint_at(storage, result, 2)
    saved = after_round_one.executor_states["sub"]["workflow"]
    # Both hook styles of the inner executors, and the inner committed shared state.
    assert saved["executor_states"] == {"ping": {"seen": [0, 2, 4, 6]}, "pong": {"hits": 3}}
    assert saved["shared_state"] == {"last": 5}
    assert saved["messages"] == [] and saved["pending_requests"] == {}
    assert saved["superstep"] == 7
    # The parent's own pending message is the sub-workflow's output.
    assert [(m["source_id"], m["target_id"]) for m in after_round_one.messages] == [("sub", "driver")]


@pytest.mark.parametrize("superstep", [0, 1, 2, 3, 4])
async def test_a_new_instance_restores_the_inner_state(storage, superstep):
    uninterrupted = await build_rounds(storage).run(0)
    checkpoint = await checkpoint_at(storage, uninterrupted, superstep)
    rehydrated = build_rounds(storage)
    result = await rehydrated.run(checkpoint_id=checkpoint.checkpoint_id)
    assert result.get_outputs() == [ROUNDS_OUTPUT]
    # The inner instance is exactly where the uninterrupted one ended.
    inner = rehydrated.executors["sub"].workflow
    assert inner.executors["ping"].seen == [0, 2, 4, 6] * 2
    assert inner.executors["pong"].hits == 6
    final = await storage.load(rehydrated.get_last_checkpoint_id())
    first_final = await storage.load(checkpoint_infos(uninterrupted)[-1].checkpoint_id)
    assert final.executor_states == first_final.executor_states


async def test_resume_on_the_same_instance_rewinds_the_inner_workflow(storage):
    workflow = build_rounds(storage)
    first = await workflow.run(0)
    after_round_one = await checkpoint_at(storage, first, 2)
    again = await workflow.run(checkpoint_id=after_round_one.checkpoint_id)
    assert again.get_outputs() == [ROUNDS_OUTPUT]  # not round 3's state


async def test_a_failure_inside_fails_the_parent_superstep_and_resume_retries_it(memory_storage):
    workflow = build_rounds(memory_storage, fail_at=3)
    events: list = []
    with pytest.raises(RuntimeError, match="pong dropped ball 3") as raised:
        await workflow.run(0, on_event=events.append)
    assert any("sub-workflow 'pingpong' of executor 'sub' in its executor 'pong'" in note
               for note in raised.value.__notes__)
    failed = [e for e in events if e.type == "failed"]
    assert failed[0].executor_id == "sub"
    assert workflow.state is WorkflowRunState.FAILED
    # The failed superstep wrote nothing; resuming from the last checkpoint re-runs it,
    # with the inner workflow put back as it was before the failure.
    result = await workflow.run(checkpoint_id=workflow.get_last_checkpoint_id())
    assert result.get_outputs() == [ROUNDS_OUTPUT]


# --------------------------------------------------------------------------- requests
async def test_a_request_inside_is_a_request_of_the_parent_and_its_answer_continues_inside():
    workflow = build_review()
    result = await workflow.run("d1")
    requests = result.get_request_info_events()
    assert [r.request_id for r in requests] == ["review/legal-d1", "review/finance-d1"]
    assert {r.source_executor_id for r in requests} == {"review"}
    assert requests[0].data == ApprovalRequest("legal", "d1") and requests[0].response_type is bool
    assert result.get_final_state() is WorkflowRunState.IDLE_WITH_PENDING_REQUESTS
    assert [r.request_id for r in workflow.pending_requests] == ["review/legal-d1",
                                                                 "review/finance-d1"]

    with pytest.raises(WorkflowRunError, match="must be bool"):
        await workflow.run(responses={"review/legal-d1": "yes"})
    with pytest.raises(WorkflowRunError, match="no pending request with id 'legal-d1'"):
        await workflow.run(responses={"legal-d1": True})

    one = await workflow.run(responses={"review/legal-d1": True})
    assert one.get_outputs() == []
    assert one.get_final_state() is WorkflowRunState.IDLE_WITH_PENDING_REQUESTS
    assert [r.request_id for r in workflow.pending_requests] == ["review/finance-d1"]
    two = await workflow.run(responses={"review/finance-d1": False})
    assert two.get_outputs() == [("done", {"draft": "d1",
                                           "decisions": {"legal": True, "finance": False}})]
    assert two.get_final_state() is WorkflowRunState.IDLE


async def test_answers_given_together_are_delivered_one_after_the_other():
    workflow = build_review()
    await workflow.run("d1")
    result = await workflow.run(responses={"review/legal-d1": False, "review/finance-d1": True})
    assert result.get_outputs() == [("done", {"draft": "d1",
                                              "decisions": {"legal": False, "finance": True}})]


async def test_requests_of_two_sub_workflows_with_the_same_ids_stay_apart():
    left = WorkflowExecutor(build_approval(topics=("legal",)), id="left")
    right = WorkflowExecutor(build_approval(topics=("legal",)), id="right")

    class Split(Executor):
        @handler
        async def split(self, draft: str, ctx: WorkflowContext[str]) -> None:
            await ctx.send_message(draft)

    split = Split("split")
    workflow = (WorkflowBuilder(name="two_reviews", start_executor=split)
                .add_fan_out_edges(split, [left, right])
                .add_edge(left, Sink("left_done")).add_edge(right, Sink("right_done")).build())
    result = await workflow.run("d")
    assert sorted(r.request_id for r in result.get_request_info_events()) == [
        "left/legal-d", "right/legal-d"]
    done = await workflow.run(responses={"right/legal-d": True})
    assert done.get_outputs() == [("right_done", {"draft": "d", "decisions": {"legal": True}})]


async def test_rehydrate_and_answer_a_request_pending_inside(storage):
    result = await build_review(storage).run("d1")
    waiting = await checkpoint_at(storage, result, 1)
    saved = waiting.executor_states["review"]["workflow"]
    assert sorted(saved["pending_requests"]) == ["finance-d1", "legal-d1"]
    assert sorted(waiting.pending_requests) == ["review/finance-d1", "review/legal-d1"]

    # Rehydrate and answer one in the same call: the other is re-emitted first.
    rehydrated = build_review(storage)
    one = await rehydrated.run(checkpoint_id=waiting.checkpoint_id,
                               responses={"review/legal-d1": True})
    assert types_of(one)[:2] == ["started", "request_info"]
    assert [r.request_id for r in one.get_request_info_events()] == ["review/finance-d1"]
    assert one.get_final_state() is WorkflowRunState.IDLE_WITH_PENDING_REQUESTS

    # The answer given inside is kept by the inner Approver (dict hooks) across another
    # rehydrate from the checkpoint that followed it.
    answered_one = rehydrated.get_last_checkpoint_id()
    again = build_review(storage)
    two = await again.run(checkpoint_id=answered_one, responses={"review/finance-d1": False})
    assert two.get_outputs() == [("done", {"draft": "d1",
                                           "decisions": {"legal": True, "finance": False}})]


async def test_resume_re_emits_the_inner_requests_then_answers_them(storage):
    workflow = build_review(storage)
    first = await workflow.run("d1")
    waiting = await checkpoint_at(storage, first, 1)
    await workflow.run(responses={"review/legal-d1": False, "review/finance-d1": False})
    resumed = await workflow.run(checkpoint_id=waiting.checkpoint_id)
    assert [e.type for e in resumed][:3] == ["started", "request_info", "request_info"]
    assert resumed.get_final_state() is WorkflowRunState.IDLE_WITH_PENDING_REQUESTS
    done = await workflow.run(responses={"review/legal-d1": True, "review/finance-d1": True})
    assert done.get_outputs() == [("done", {"draft": "d1",
                                            "decisions": {"legal": True, "finance": True}})]


# --------------------------------------------------------------------------- graph signature
async def test_the_parent_signature_covers_the_inner_graph(memory_storage):
    workflow = build_review(memory_storage)
    signature = workflow.graph_signature
    assert "review/approver: tests.engine.workflows.Approver" in signature["executors"]
    assert "review/start: approver" in signature["edges"]
    changed = build_review(memory_storage, notify=True)
    assert changed.graph_signature_hash != workflow.graph_signature_hash
    assert build_review().graph_signature_hash == workflow.graph_signature_hash

    result = await workflow.run("d1")
    waiting = checkpoint_infos(result)[-1].checkpoint_id
    with pytest.raises(WorkflowCheckpointError,
                       match=r"executors added: review/notifier: tests\.engine\.workflows\.Sink"
                             r".*edges added: review/direct: approver -> notifier"):
        await changed.run(checkpoint_id=waiting)


# --------------------------------------------------------------------------- two levels
async def test_two_level_pingpong(storage):
    workflow = build_two_level_pingpong(storage)
    result = await workflow.run(0)
    assert result.get_outputs() == [ROUNDS_OUTPUT]
    after_round_one = await checkpoint_at(storage, result, 2)
    middle = after_round_one.executor_states["outer"]["workflow"]
    inner = middle["executor_states"]["inner"]["workflow"]
    assert inner["executor_states"] == {"ping": {"seen": [0, 2, 4, 6]}, "pong": {"hits": 3}}
    assert "outer/inner/ping: tests.engine.workflows.Pinger" in workflow.graph_signature["executors"]

    rehydrated = build_two_level_pingpong(storage)
    again = await rehydrated.run(checkpoint_id=after_round_one.checkpoint_id)
    assert again.get_outputs() == [ROUNDS_OUTPUT]


async def test_a_request_two_levels_down(storage):
    workflow = build_two_level_review(storage)
    result = await workflow.run("d2")
    assert [r.request_id for r in result.get_request_info_events()] == [
        "outer/review/legal-d2", "outer/review/finance-d2"]
    waiting = checkpoint_infos(result)[-1].checkpoint_id
    rehydrated = build_two_level_review(storage)
    done = await rehydrated.run(checkpoint_id=waiting, responses={
        "outer/review/legal-d2": True, "outer/review/finance-d2": True})
    assert done.get_outputs() == [("done", {"draft": "d2",
                                            "decisions": {"legal": True, "finance": True}})]


# --------------------------------------------------------------------------- warnings, cancelling
async def test_a_warning_inside_is_passed_on_naming_the_sub_workflow():
    workflow = build_review()
    await workflow.run("d1")
    result = await workflow.run("d2")  # the inner requests of d1 are still pending
    warnings = [e for e in result if e.type == "warning"]
    inner = [w for w in warnings if w.executor_id == "review"]
    assert inner and inner[0].data.startswith("sub-workflow 'approval' of executor 'review': ")
    assert sorted(r.request_id for r in workflow.pending_requests) == [
        "review/finance-d1", "review/finance-d2", "review/legal-d1", "review/legal-d2"]


class Gate(Executor):
    """Waits for ``opened`` before yielding what it got: an inner handler still running."""

    def __init__(self, id: str, opened: Any) -> None:
        super().__init__(id)
        self.opened = opened

    @handler
    async def wait(self, n: int, ctx: WorkflowContext[Never, dict]) -> None:
        await self.opened.wait()
        await ctx.yield_output({"n": n})


async def test_closing_the_parent_stream_while_the_inner_runs_then_resuming(memory_storage):
    opened = asyncio.Event()

    def build():
        inner = WorkflowBuilder(name="gated", start_executor=Gate("gate", opened)).build()
        driver = Rounds(rounds=1)
        sub = WorkflowExecutor(inner, id="sub")
        return (WorkflowBuilder(name="gated_parent", start_executor=driver,
                                checkpoint_storage=memory_storage)
                .add_edge(driver, sub).add_edge(sub, driver).build())

    workflow = build()
    stream = workflow.run(5, stream=True)
    async for event in stream:
        if event.type == "executor_invoked" and event.executor_id == "sub":
            break
    await asyncio.sleep(0)  # the inner handler is now waiting at the gate
    await stream.aclose()
    assert workflow.state is WorkflowRunState.CANCELLED
    with pytest.raises(WorkflowRunError, match="in flight"):
        await workflow.run(6)

    # The lost superstep left the inner workflow mid-run; restoring the parent's last
    # checkpoint puts it back, and the run ends as if never interrupted.
    opened.set()
    result = await workflow.run(checkpoint_id=workflow.get_last_checkpoint_id())
    assert result.get_outputs() == [[{"n": 5}]]


# --------------------------------------------------------------------------- inner progress
async def test_inner_executor_events_are_passed_up_prefixed_in_order_without_inner_supersteps():
    workflow = build_rounds(rounds=1)
    events = [e async for e in workflow.run(0, stream=True)]
    # No inner superstep events: the parent's supersteps are 1 (driver), 2 (sub), 3 (driver).
    assert [e.superstep for e in events if e.type == "superstep_started"] == [1, 2, 3]
    second = [i for i, e in enumerate(events) if e.type == "superstep_started"][1]
    third = [i for i, e in enumerate(events) if e.type == "superstep_started"][2]
    inside = [(e.type, e.executor_id) for e in events[second:third]
              if e.type.startswith("executor_")]
    # Within the parent's superstep 2, between sub's own invoked and completed, the inner
    # pingpong's executors in the order they ran (ping 0, pong, ping 2, ... ping 6 stops).
    assert inside[0] == ("executor_invoked", "sub")
    assert inside[-1] == ("executor_completed", "sub")
    inner = inside[1:-1]
    assert inner[:4] == [("executor_invoked", "sub/ping"), ("executor_completed", "sub/ping"),
                         ("executor_invoked", "sub/pong"), ("executor_completed", "sub/pong")]
    assert {executor for _, executor in inner} == {"sub/ping", "sub/pong"}
    assert all(kind == ("executor_invoked" if n % 2 == 0 else "executor_completed")
               for n, (kind, _) in enumerate(inner))


async def test_nested_sub_workflows_prefix_once_per_level_and_name_the_requesting_executor():
    workflow = build_two_level_review()
    result = await workflow.run("d2")
    invoked = [e.executor_id for e in result if e.type == "executor_invoked"]
    assert invoked == ["outer", "outer/review", "outer/review/approver"]
    requests = result.get_request_info_events()
    assert {r.source_executor_id for r in requests} == {"outer"}
    assert {r.origin_executor_id for r in requests} == {"outer/review/approver"}
    assert {r.origin_executor_id for r in workflow.pending_requests} == {
        "outer/review/approver"}


async def test_an_inner_failure_is_passed_up_as_the_inner_executor_failing():
    workflow = build_rounds(fail_at=3)
    with pytest.raises(Exception):
        await workflow.run(0)
    # (the result is lost with the error; a stream shows the events)
    workflow = build_rounds(fail_at=3)
    events = []
    with pytest.raises(Exception):
        async for event in workflow.run(0, stream=True):
            events.append(event)
    failed = [e.executor_id for e in events if e.type == "executor_failed"]
    assert failed == ["sub/pong", "sub"]


async def test_a_restored_request_still_names_the_inner_executor(storage):
    workflow = build_review(storage)
    result = await workflow.run("d1")
    assert {r.origin_executor_id for r in result.get_request_info_events()} == {
        "review/approver"}
    waiting = checkpoint_infos(result)[-1].checkpoint_id
    rehydrated = build_review(storage)
    again = [e async for e in rehydrated.run(checkpoint_id=waiting, stream=True)]
    assert {e.origin_executor_id for e in again if e.type == "request_info"} == {
        "review/approver"}
    # An ordinary request's origin is its source.
    plain = build_approval()
    asked = await plain.run("d3")
    assert {(r.source_executor_id, r.origin_executor_id)
            for r in asked.get_request_info_events()} == {("approver", "approver")}
