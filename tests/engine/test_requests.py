"""Requests and responses: ``request_info``, ``@response_handler``, ``run(responses=...)``."""

from __future__ import annotations

from typing import Never

import pytest

from workflows_app.engine import (Executor, RequestInfoEvent, WorkflowBuilder, WorkflowContext,
                                  WorkflowError, WorkflowRunError, WorkflowRunState, handler,
                                  response_handler)

from .workflows import ApprovalRequest, build_approval, types_of

LEGAL, FINANCE = "legal-draft", "finance-draft"


async def test_request_info_emits_events_and_leaves_the_run_idle_with_pending_requests():
    workflow = build_approval()
    result = await workflow.run("draft")
    requests = result.get_request_info_events()
    assert [r.request_id for r in requests] == [LEGAL, FINANCE]
    first = requests[0]
    assert isinstance(first, RequestInfoEvent)
    assert first.source_executor_id == "approver"
    assert first.data == ApprovalRequest("legal", "draft")
    assert first.response_type is bool
    assert result.get_final_state() is WorkflowRunState.IDLE_WITH_PENDING_REQUESTS
    assert workflow.state is WorkflowRunState.IDLE_WITH_PENDING_REQUESTS
    assert [r.request_id for r in workflow.pending_requests] == [LEGAL, FINANCE]
    assert result.get_outputs() == []


async def test_responses_reach_the_response_handler_and_finish_the_run():
    workflow = build_approval()
    await workflow.run("draft")
    result = await workflow.run(responses={LEGAL: True, FINANCE: False})
    assert result.get_outputs() == [{"draft": "draft", "decisions": {"legal": True, "finance": False}}]
    assert result.get_final_state() is WorkflowRunState.IDLE
    assert workflow.pending_requests == []
    assert types_of(result)[:3] == ["started", "status", "superstep_started"]
    assert result.get_request_info_events() == []


async def test_partial_answers_keep_the_rest_pending():
    workflow = build_approval()
    await workflow.run("draft")
    result = await workflow.run(responses={FINANCE: True})
    assert result.get_outputs() == []
    assert result.get_final_state() is WorkflowRunState.IDLE_WITH_PENDING_REQUESTS
    assert [r.request_id for r in workflow.pending_requests] == [LEGAL]
    result = await workflow.run(responses={LEGAL: False})
    assert result.get_outputs() == [{"draft": "draft", "decisions": {"finance": True, "legal": False}}]


async def test_pending_requests_while_messages_flow_report_in_progress_pending_requests():
    result = await build_approval(notify=True).run("draft")
    states = [e.state for e in result if e.type == "status"]
    assert states == [WorkflowRunState.IN_PROGRESS, WorkflowRunState.IN_PROGRESS_PENDING_REQUESTS,
                      WorkflowRunState.IDLE_WITH_PENDING_REQUESTS]
    assert result.get_outputs() == [("notifier", "awaiting draft")]


async def test_generated_request_ids_are_unique_strings():
    class Asker(Executor):
        @handler
        async def ask(self, n: int, ctx: WorkflowContext) -> None:
            self.ids = [await ctx.request_info(f"q{i}", int) for i in range(3)]

        @response_handler
        async def answer(self, question: str, value: int, ctx: WorkflowContext[Never, str]) -> None:
            await ctx.yield_output(f"{question}={value}")

    asker = Asker("asker")
    workflow = WorkflowBuilder(start_executor=asker).build()
    result = await workflow.run(1)
    ids = [r.request_id for r in result.get_request_info_events()]
    assert ids == asker.ids and len(set(ids)) == 3 and all(isinstance(i, str) for i in ids)
    result = await workflow.run(responses={ids[1]: 42})
    assert result.get_outputs() == ["q1=42"]


async def test_a_duplicate_request_id_fails_the_run():
    class Twice(Executor):
        @handler
        async def ask(self, n: int, ctx: WorkflowContext) -> None:
            await ctx.request_info("a", int, request_id="same")
            await ctx.request_info("b", int, request_id="same")

        @response_handler
        async def answer(self, question: str, value: int, ctx: WorkflowContext) -> None:
            pass

    with pytest.raises(WorkflowError, match="request id 'same' is already pending"):
        await WorkflowBuilder(start_executor=Twice("twice")).build().run(1)


async def refused(workflow, memory_storage, responses, error, pattern):
    """Assert ``run(responses=...)`` is refused and changes nothing."""
    saved_before = await memory_storage.list_checkpoint_ids()
    pending_before = [r.request_id for r in workflow.pending_requests]
    with pytest.raises(error, match=pattern):
        await workflow.run(responses=responses)
    assert [r.request_id for r in workflow.pending_requests] == pending_before
    assert workflow.state is WorkflowRunState.IDLE_WITH_PENDING_REQUESTS
    assert await memory_storage.list_checkpoint_ids() == saved_before
    assert workflow.executors["approver"].decisions == {}


@pytest.mark.parametrize("responses, pattern", [
    ({LEGAL: "yes"}, f"response to request '{LEGAL}' must be bool, got str"),
    ({LEGAL: True, FINANCE: 1}, f"response to request '{FINANCE}' must be bool, got int"),
    ({"nope": True}, "no pending request with id 'nope'"),
    ({LEGAL: True, "nope": True}, "no pending request with id 'nope'"),
    ({}, "non-empty dict"),
    ([(LEGAL, True)], "non-empty dict"),
])
async def test_bad_responses_are_refused_with_nothing_changed(memory_storage, responses, pattern):
    workflow = build_approval(memory_storage)
    await workflow.run("draft")
    await refused(workflow, memory_storage, responses, WorkflowRunError, pattern)
    # the refused call left the run answerable
    result = await workflow.run(responses={LEGAL: True, FINANCE: True})
    assert result.get_outputs()[0]["decisions"] == {"legal": True, "finance": True}


async def test_a_response_no_response_handler_takes_is_refused(memory_storage):
    class NarrowAsker(Executor):
        @handler
        async def ask(self, n: int, ctx: WorkflowContext) -> None:
            await ctx.request_info("question", int | str, request_id="q")

        @response_handler
        async def answer(self, question: str, value: int, ctx: WorkflowContext) -> None:
            pass

    workflow = WorkflowBuilder(start_executor=NarrowAsker("asker")).build()
    await workflow.run(1)
    with pytest.raises(WorkflowRunError, match="'asker' has no @response_handler for request str "
                                               "with response str"):
        await workflow.run(responses={"q": "text"})
    assert [r.request_id for r in workflow.pending_requests] == ["q"]


async def test_answering_is_refused_when_nothing_is_pending():
    workflow = build_approval()
    with pytest.raises(WorkflowRunError, match="not waiting on requests"):
        await workflow.run(responses={LEGAL: True})
    await workflow.run("draft")
    await workflow.run(responses={LEGAL: True, FINANCE: True})
    with pytest.raises(WorkflowRunError, match="not waiting on requests"):
        await workflow.run(responses={LEGAL: True})
