"""A cooperative stop: ``Workflow.request_stop`` ends a run at its next superstep boundary,
after that superstep's checkpoint, as a normal (non-failed) outcome that a later ``run``
continues from. Pingpong's two executors save their state through the two kinds of hooks
(state-key and state-dict), so both are covered by every continuation below."""

from __future__ import annotations

import pytest

from workflows_app.engine import WorkflowRunState, WorkflowStoppedEvent

from .workflows import (PINGPONG_OUTPUT, PINGPONG_SUPERSTEPS, build_approval, build_pingpong,
                        checkpoint_infos, types_of)


def stop_at(workflow, superstep: int, reason: str = "enough for now"):
    """An ``on_event`` callback that asks ``workflow`` to stop when ``superstep`` completes."""
    def on_event(event) -> None:
        if event.type == "superstep_completed" and event.superstep == superstep:
            assert workflow.request_stop(reason)
    return on_event


async def test_a_stop_ends_the_run_after_the_checkpoint_of_the_superstep_under_way(storage):
    workflow = build_pingpong(storage)
    result = await workflow.run(0, on_event=stop_at(workflow, 3))
    assert types_of(result)[-2:] == ["stopped", "status"]
    stopped = result[-2]
    assert isinstance(stopped, WorkflowStoppedEvent) and stopped.reason == "enough for now"
    last = checkpoint_infos(result)[-1]
    assert (last.superstep, stopped.checkpoint) == (3, last)
    assert [e.superstep for e in result if e.type == "superstep_started"] == [1, 2, 3]
    assert result.get_final_state() is WorkflowRunState.STOPPED
    assert workflow.state is WorkflowRunState.STOPPED and result.get_outputs() == []
    assert [c.superstep for c in await storage.list_checkpoints()] == [0, 1, 2, 3]
    assert not any(e.type in ("failed", "executor_failed") for e in result)


@pytest.mark.parametrize("same_instance", [True, False], ids=["resume", "rehydrate"])
async def test_a_stopped_run_continues_from_its_checkpoint_to_the_uninterrupted_end(
        storage, same_instance):
    workflow = build_pingpong(storage)
    stopped = (await workflow.run(0, on_event=stop_at(workflow, 2)))[-2]
    again = workflow if same_instance else build_pingpong(storage)
    result = await again.run(checkpoint_id=stopped.checkpoint.checkpoint_id)
    assert result.get_outputs() == [PINGPONG_OUTPUT]
    assert result.get_final_state() is WorkflowRunState.IDLE
    supersteps = [e.superstep for e in result if e.type == "superstep_completed"]
    assert supersteps == list(range(3, PINGPONG_SUPERSTEPS + 1))
    first = await storage.load(checkpoint_infos(result)[0].checkpoint_id)
    assert first.previous_checkpoint_id == stopped.checkpoint.checkpoint_id


async def test_a_stop_asked_before_the_first_superstep_stops_at_the_entry_checkpoint(storage):
    workflow = build_pingpong(storage)

    def on_event(event) -> None:
        if event.type == "started":
            workflow.request_stop()

    result = await workflow.run(0, on_event=on_event)
    assert types_of(result) == ["started", "status", "stopped", "status"]
    assert result[2].checkpoint == result[0].checkpoint and result[2].checkpoint.superstep == 0
    assert result[2].reason == "stop requested"


async def test_while_streaming_the_reader_may_ask_for_the_stop(storage):
    workflow = build_pingpong(storage)
    seen = []
    async for event in workflow.run(0, stream=True):
        seen.append(event)
        if event.type == "superstep_completed" and event.superstep == 4:
            workflow.request_stop("reader is done")
    assert types_of(seen)[-2:] == ["stopped", "status"]
    assert seen[-2].checkpoint.superstep == 4 and seen[-1].state is WorkflowRunState.STOPPED


async def test_a_run_with_no_superstep_left_ends_as_usual():
    workflow = build_pingpong(None)
    result = await workflow.run(0, on_event=stop_at(workflow, PINGPONG_SUPERSTEPS))
    assert result.get_final_state() is WorkflowRunState.IDLE
    assert "stopped" not in types_of(result) and result.get_outputs() == [PINGPONG_OUTPUT]


async def test_without_storage_a_stop_names_no_checkpoint():
    workflow = build_pingpong(None)
    result = await workflow.run(0, on_event=stop_at(workflow, 1))
    assert result[-2].type == "stopped" and result[-2].checkpoint is None


async def test_a_stop_outside_a_run_does_nothing_and_does_not_leak_into_the_next(storage):
    workflow = build_pingpong(storage)
    assert workflow.request_stop() is False
    result = await workflow.run(0)
    assert result.get_final_state() is WorkflowRunState.IDLE
    stopped = await workflow.run(0, on_event=stop_at(workflow, 1))
    assert stopped.get_final_state() is WorkflowRunState.STOPPED
    # asked once, honoured once. (The continuation used to be run(0) afresh; an instance
    # now keeps its state and refuses a new message while the stopped run's message is in
    # flight, as MAF does, so it continues from the stop's checkpoint instead.)
    again = await workflow.run(checkpoint_id=stopped[-2].checkpoint.checkpoint_id)
    assert again.get_final_state() is WorkflowRunState.IDLE and "stopped" not in types_of(again)


async def test_a_run_stopped_while_requests_are_pending_keeps_them_answerable(storage):
    workflow = build_approval(storage)
    first = await workflow.run("contract")
    asked = first.get_request_info_events()
    assert first.get_final_state() is WorkflowRunState.IDLE_WITH_PENDING_REQUESTS
    responses = {request.request_id: True for request in asked}

    def on_event(event) -> None:
        if event.type == "started":
            workflow.request_stop("handing over")

    stopped = await workflow.run(responses=responses, on_event=on_event)
    assert stopped.get_final_state() is WorkflowRunState.STOPPED
    entry = stopped[-2].checkpoint
    assert entry == stopped[0].checkpoint  # the response checkpoint holds the answers
    finished = await build_approval(storage).run(checkpoint_id=entry.checkpoint_id)
    assert finished.get_final_state() is WorkflowRunState.IDLE and finished.get_outputs()
