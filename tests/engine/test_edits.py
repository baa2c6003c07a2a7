"""Edit-and-fork in the engine: ``edit_checkpoint`` makes a new checkpoint from another, and a
workflow restored from it runs the edited state."""

from __future__ import annotations

import pytest

from workflows_app.engine import WorkflowCheckpoint, WorkflowCheckpointError
from workflows_app.engine.edits import (KIND_EDITED, CheckpointEditError, RemoveMessage,
                                        ReplaceExecutorState, ReplaceMessage, SetExecutorState,
                                        SetSharedState, edit_checkpoint)

from .workflows import Return, Serve, build_approval, build_pingpong


async def at_superstep(storage, number: int) -> WorkflowCheckpoint:
    """The checkpoint pingpong wrote at the end of superstep ``number``: at 2, ping has seen
    [0], pong has 1 hit, shared ``last`` is 1 and Return(2, 1) waits for ping."""
    await build_pingpong(storage).run(0)
    found = [c for c in await storage.list_checkpoints("pingpong")
             if c.superstep == number and c.kind == "superstep"]
    assert len(found) == 1
    return found[0]


async def test_edited_states_of_both_hook_styles_and_a_message_are_what_the_run_sees(storage):
    source = await at_superstep(storage, 2)
    assert source.executor_states == {"ping": {"seen": [0]}, "pong": {"hits": 1}}
    edited = edit_checkpoint(source, [
        SetExecutorState("ping", "seen", [100]),  # read back with ctx.read_state
        ReplaceExecutorState("pong", {"hits": 10}),  # given to on_checkpoint_restore
        ReplaceMessage(0, Return(4, 1)),
    ], author="alice", workflow=build_pingpong())
    await storage.save(edited)

    result = await build_pingpong(storage).run(checkpoint_id=edited.checkpoint_id)
    # ping: 100, then 4 (the edited ball), then 6; pong counts on from 10
    assert result.get_outputs() == [{"ping": [100, 4, 6], "pong_hits": 11, "last": 5}]


async def test_an_edited_shared_state_key_is_what_handlers_read(storage):
    source = await at_superstep(storage, 2)
    edited = edit_checkpoint(source, [SetSharedState("last", 99),
                                      ReplaceMessage(0, Return(6, 50))])
    await storage.save(edited)
    result = await build_pingpong(storage).run(checkpoint_id=edited.checkpoint_id)
    assert result.get_outputs() == [{"ping": [0, 6], "pong_hits": 50, "last": 99}]


async def test_the_edited_checkpoint_is_new_linked_to_its_source_and_records_the_change(storage):
    source = await at_superstep(storage, 2)
    before = source.to_dict()
    edited = edit_checkpoint(source, [SetExecutorState("pong", "hits", 7)], author="alice")
    await storage.save(edited)
    loaded = await storage.load(edited.checkpoint_id)

    assert loaded.checkpoint_id != source.checkpoint_id
    assert loaded.previous_checkpoint_id == source.checkpoint_id
    assert loaded.kind == KIND_EDITED
    assert loaded.superstep == source.superstep
    assert loaded.graph_signature_hash == source.graph_signature_hash
    assert loaded.metadata["graph"] == source.metadata["graph"]
    assert loaded.metadata["edit"] == {
        "source": source.checkpoint_id, "author": "alice",
        "changes": [{"path": "executor_states.pong.hits", "before": 1, "after": 7}]}
    assert loaded.executor_states["pong"] == {"hits": 7}
    assert source.to_dict() == before  # the source is untouched
    assert (await storage.load(source.checkpoint_id)).to_dict() == before


async def test_a_removed_message_is_not_delivered(storage):
    source = await at_superstep(storage, 2)
    edited = edit_checkpoint(source, [RemoveMessage(0)])
    assert edited.messages == []
    assert edited.metadata["edit"]["changes"][0]["path"] == "messages[0]"
    await storage.save(edited)
    result = await build_pingpong(storage).run(checkpoint_id=edited.checkpoint_id)
    assert result.get_outputs() == []


@pytest.mark.parametrize("edit, problem", [
    (SetSharedState("nope", 1), "shared state has no key 'nope'"),
    (SetExecutorState("ghost", "seen", []), "there is no executor 'ghost'"),
    (ReplaceExecutorState("ghost", {}), "there is no executor 'ghost'"),
    (SetExecutorState("ping", "nope", 1), "executor 'ping' state has no key 'nope'"),
    (ReplaceMessage(3, Return(1, 1)), "there is no pending message 3"),
    (RemoveMessage(-1), "there is no pending message -1"),
    (SetSharedState("last", object()), "cannot encode shared_state.last"),
    (ReplaceExecutorState("pong", {"hits": object()}), "cannot encode executor_states.pong"),
    (ReplaceExecutorState("pong", ["hits"]), "a state must be an object"),
    (ReplaceMessage(0, 4), "messages[0]: must be a Return, got int"),
    (ReplaceMessage(0, Serve(4)), "messages[0]: must be a Return, got Serve"),
])
async def test_refused_edits_say_what_is_wrong_and_change_nothing(memory_storage, edit, problem):
    source = await at_superstep(memory_storage, 2)
    before = source.to_dict()
    with pytest.raises(CheckpointEditError, match=problem.replace("[", r"\[").replace("]", r"\]")):
        edit_checkpoint(source, [edit], workflow=build_pingpong())
    assert source.to_dict() == before
    assert len(await memory_storage.list_checkpoints()) == 8  # nothing saved


async def test_every_problem_is_listed_and_it_is_a_checkpoint_error(memory_storage):
    source = await at_superstep(memory_storage, 2)
    with pytest.raises(WorkflowCheckpointError) as caught:
        edit_checkpoint(source, [SetSharedState("nope", 1), RemoveMessage(0), RemoveMessage(0)])
    assert caught.value.problems == ["shared state has no key 'nope'",
                                     "messages[0] is removed by an earlier edit"]
    with pytest.raises(CheckpointEditError, match="no edits given"):
        edit_checkpoint(source, [])


async def test_a_workflow_with_another_graph_is_refused(memory_storage):
    source = await at_superstep(memory_storage, 2)
    with pytest.raises(CheckpointEditError, match="another graph"):
        edit_checkpoint(source, [SetSharedState("last", 2)], workflow=build_approval())


async def test_a_response_in_flight_must_be_of_the_response_type(memory_storage):
    workflow = build_approval(memory_storage, topics=("legal",))
    await workflow.run("draft")
    checkpoint = await memory_storage.get_latest(workflow_name="approval")
    await build_approval(memory_storage, topics=("legal",)).run(
        checkpoint_id=checkpoint.checkpoint_id, responses={"legal-draft": True})
    response_entry = [c for c in await memory_storage.list_checkpoints()
                      if c.kind == "response"][0]
    assert response_entry.messages[0]["data"] is True
    with pytest.raises(CheckpointEditError, match="response type"):
        edit_checkpoint(response_entry, [ReplaceMessage(0, "yes")])
    edited = edit_checkpoint(response_entry, [ReplaceMessage(0, False)])
    await memory_storage.save(edited)
    result = await build_approval(memory_storage, topics=("legal",)).run(
        checkpoint_id=edited.checkpoint_id)
    assert result.get_outputs() == [{"draft": "draft", "decisions": {"legal": False}}]
