"""Checkpoints: when they are written, what they hold, and resume / rehydrate from them."""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Any, Literal, Never

import pytest

from workflows_app.engine import (CheckpointInfo, Executor, FunctionExecutor,
                                  InMemoryCheckpointStorage, WorkflowBuilder,
                                  WorkflowCheckpoint, WorkflowCheckpointError, WorkflowContext,
                                  WorkflowRunError, WorkflowRunState, handler,
                                  response_handler)

from .workflows import (ENCODABLE_SAMPLES, PINGPONG_OUTPUT, PINGPONG_SUPERSTEPS, ApprovalRequest,
                        Serve, Return, Sink, build_approval, build_conditional, build_fan_in,
                        build_pingpong, checkpoint_infos, same, types_of)

LEGAL, FINANCE = "legal-draft", "finance-draft"


def superstep_numbers(events) -> list[int]:
    return [e.superstep for e in events if e.type == "superstep_started"]


async def saved(storage, name: str) -> list[WorkflowCheckpoint]:
    return await storage.list_checkpoints(name)


def comparable(checkpoint: WorkflowCheckpoint) -> tuple:
    """What two checkpoints of the same point of two equivalent runs have in common."""
    return (checkpoint.superstep, checkpoint.kind, checkpoint.messages, checkpoint.shared_state,
            checkpoint.executor_states, checkpoint.pending_requests, checkpoint.fan_in_buffers)


# --------------------------------------------------------------------------- lineage
async def test_one_checkpoint_per_superstep_plus_the_entry_one(storage):
    workflow = build_pingpong(storage)
    result = await workflow.run(0)
    checkpoints = await saved(storage, "pingpong")

    assert [c.superstep for c in checkpoints] == list(range(PINGPONG_SUPERSTEPS + 1))
    assert [c.kind for c in checkpoints] == ["entry"] + ["superstep"] * PINGPONG_SUPERSTEPS
    assert checkpoints[0].previous_checkpoint_id is None
    for previous, current in zip(checkpoints, checkpoints[1:]):
        assert current.previous_checkpoint_id == previous.checkpoint_id
    assert result[0].type == "started"
    assert result[0].checkpoint == CheckpointInfo(checkpoints[0].checkpoint_id, 0)
    assert checkpoint_infos(result) == [CheckpointInfo(c.checkpoint_id, c.superstep)
                                        for c in checkpoints[1:]]
    assert workflow.get_last_checkpoint_id() == checkpoints[-1].checkpoint_id
    for checkpoint in checkpoints:
        assert uuid.UUID(checkpoint.checkpoint_id)
        assert checkpoint.workflow_name == "pingpong"
        assert checkpoint.graph_signature_hash == workflow.graph_signature_hash
        assert checkpoint.version == "1"
        stamp = datetime.datetime.fromisoformat(checkpoint.timestamp)
        assert stamp.utcoffset() == datetime.timedelta(0)


async def test_a_new_message_on_the_same_instance_continues_its_lineage(memory_storage):
    # Was: a new run started a new lineage from a blank state. An instance now keeps its
    # state across run() calls, as MAF's does (issue 15, item 6), so the new message's
    # entry checkpoint chains to the last one and holds the state the first run left;
    # superstep numbers start again at 0, as MAF's iteration count does.
    workflow = build_pingpong(memory_storage)
    first = await workflow.run(0)
    second = await workflow.run(5)
    entry = await memory_storage.load(second[0].checkpoint.checkpoint_id)
    assert entry.kind == "entry" and entry.superstep == 0
    assert entry.previous_checkpoint_id == checkpoint_infos(first)[-1].checkpoint_id
    assert entry.executor_states == {"ping": {"seen": [0, 2, 4, 6]}, "pong": {"hits": 3}}
    assert entry.shared_state == {"last": 5}
    assert superstep_numbers(second)[0] == 1


async def test_a_checkpoint_holds_the_whole_state_of_the_run(memory_storage):
    await build_pingpong(memory_storage).run(0)
    entry, first, second = (await saved(memory_storage, "pingpong"))[:3]
    assert entry.messages == [{"source_id": None, "target_id": "ping", "data": 0}]
    assert entry.executor_states == {"ping": {"seen": []}, "pong": {"hits": 0}}
    assert entry.shared_state == {} and entry.pending_requests == {}
    assert first.messages == [{"source_id": "ping", "target_id": "pong", "data": Serve(1)}]
    assert second.messages == [{"source_id": "pong", "target_id": "ping", "data": Return(2, 1)}]
    assert second.shared_state == {"last": 1}
    assert second.executor_states == {"ping": {"seen": [0]}, "pong": {"hits": 1}}
    assert second.metadata["graph"]["start"] == "ping"


# --------------------------------------------------------------------------- replay, resume, rehydrate
async def test_replay_from_the_entry_checkpoint_gives_the_same_outputs(storage):
    await build_pingpong(storage).run(0)
    entry = (await saved(storage, "pingpong"))[0]
    replayed = await build_pingpong(storage).run(checkpoint_id=entry.checkpoint_id)
    assert replayed.get_outputs() == [PINGPONG_OUTPUT]
    assert superstep_numbers(replayed) == list(range(1, PINGPONG_SUPERSTEPS + 1))


async def test_resume_from_a_middle_checkpoint_on_the_same_instance(storage):
    workflow = build_pingpong(storage)
    await workflow.run(0)
    original = await saved(storage, "pingpong")
    middle = original[3]

    result = await workflow.run(checkpoint_id=middle.checkpoint_id)

    assert result.get_outputs() == [PINGPONG_OUTPUT]  # ping's and pong's state were reset to it
    assert superstep_numbers(result) == [4, 5, 6, 7]  # numbers continue
    assert result[0].type == "started" and result[0].checkpoint is None  # nothing new to save
    resumed = [c for c in await saved(storage, "pingpong") if c not in original]
    assert [c.superstep for c in resumed] == [4, 5, 6, 7]
    assert resumed[0].previous_checkpoint_id == middle.checkpoint_id  # chained to the restored
    for previous, current in zip(resumed, resumed[1:]):
        assert current.previous_checkpoint_id == previous.checkpoint_id
    # the resumed run retraced the original one exactly
    assert [comparable(c) for c in resumed] == [comparable(c) for c in original[4:]]


@pytest.mark.parametrize("superstep", range(PINGPONG_SUPERSTEPS))
async def test_rehydrate_from_any_checkpoint_into_a_new_instance(storage, superstep):
    await build_pingpong(storage).run(0)
    checkpoint = (await saved(storage, "pingpong"))[superstep]

    fresh = build_pingpong(storage)
    result = await fresh.run(checkpoint_id=checkpoint.checkpoint_id)

    assert result.get_outputs() == [PINGPONG_OUTPUT]
    assert superstep_numbers(result) == list(range(superstep + 1, PINGPONG_SUPERSTEPS + 1))
    assert fresh.executors["ping"].seen == [0, 2, 4, 6]
    assert fresh.executors["pong"].hits == 3


async def test_rehydrate_with_storage_given_to_run():
    storage = InMemoryCheckpointStorage()
    await build_pingpong(storage).run(0)
    checkpoint = (await saved(storage, "pingpong"))[4]
    result = await build_pingpong().run(checkpoint_id=checkpoint.checkpoint_id,
                                        checkpoint_storage=storage)
    assert result.get_outputs() == [PINGPONG_OUTPUT]
    assert len(await saved(storage, "pingpong")) == 8 + 3  # the run wrote to the given storage


async def test_executor_state_is_restored_in_both_hook_styles(storage):
    await build_pingpong(storage).run(0)
    checkpoints = await saved(storage, "pingpong")

    fresh = build_pingpong(storage)
    ping, pong = fresh.executors["ping"], fresh.executors["pong"]
    await fresh.run(checkpoint_id=checkpoints[-1].checkpoint_id)  # nothing left to run
    assert ping.seen == [0, 2, 4, 6]  # on_checkpointing / on_checkpoint_restored + read_state
    assert pong.hits == 3  # on_checkpoint_save / on_checkpoint_restore

    ping.seen, pong.hits = ["junk"], 99  # same instance, drifted: the restore resets it
    await fresh.run(checkpoint_id=checkpoints[3].checkpoint_id)
    assert ping.seen == [0, 2, 4, 6] and pong.hits == 3


class Both(Executor):
    """Saves with both hook styles at once, plus a key queued from a handler."""

    def __init__(self, id: str = "both") -> None:
        super().__init__(id)
        self.seed_value, self.maf_value = "seed-0", "maf-0"
        self.restored: dict[str, Any] = {}

    @handler
    async def take(self, n: int, ctx: WorkflowContext) -> None:
        self.seed_value, self.maf_value = f"seed-{n}", f"maf-{n}"
        await ctx.queue_state_update("from_handler", n)

    async def on_checkpointing(self, ctx: WorkflowContext) -> None:
        await ctx.queue_state_update("seed", self.seed_value)

    async def on_checkpoint_restored(self, ctx: WorkflowContext) -> None:
        self.restored["seed"] = await ctx.read_state("seed")
        self.restored["from_handler"] = await ctx.read_state("from_handler")
        self.restored["missing"] = await ctx.read_state("missing", "default")

    async def on_checkpoint_save(self) -> dict[str, Any]:
        return {"maf": self.maf_value}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self.restored["maf_dict"] = dict(state)


async def test_both_hook_styles_on_one_executor_share_one_state_dict(memory_storage):
    workflow = WorkflowBuilder(name="both", start_executor=Both(),
                               checkpoint_storage=memory_storage).build()
    await workflow.run(5)
    last = (await saved(memory_storage, "both"))[-1]
    assert last.executor_states == {"both": {"seed": "seed-5", "from_handler": 5, "maf": "maf-5"}}

    fresh = WorkflowBuilder(name="both", start_executor=Both(),
                            checkpoint_storage=memory_storage).build()
    await fresh.run(checkpoint_id=last.checkpoint_id)
    assert fresh.executors["both"].restored == {
        "seed": "seed-5", "from_handler": 5, "missing": "default",
        "maf_dict": {"seed": "seed-5", "from_handler": 5, "maf": "maf-5"}}


class Tally(Executor):
    """Keeps its count only in the checkpointed state (read_state / queue_state_update)."""

    @handler
    async def count(self, n: int, ctx: WorkflowContext[int, int]) -> None:
        total = await ctx.read_state("total", 0) + n
        await ctx.queue_state_update("total", total)
        if n > 1:
            await ctx.send_message(n - 1)
        else:
            await ctx.yield_output(total)


def build_tally(storage):
    tally = Tally("tally")
    return WorkflowBuilder(name="tally", start_executor=tally, checkpoint_storage=storage) \
        .add_edge(tally, tally).build()


async def test_state_kept_only_in_the_context_survives_a_rehydrate(memory_storage):
    assert (await build_tally(memory_storage).run(4)).get_outputs() == [4 + 3 + 2 + 1]
    middle = (await saved(memory_storage, "tally"))[2]
    assert middle.executor_states == {"tally": {"total": 7}}
    result = await build_tally(memory_storage).run(checkpoint_id=middle.checkpoint_id)
    assert result.get_outputs() == [10]


# --------------------------------------------------------------------------- failures
async def test_a_failed_superstep_writes_no_checkpoint_and_is_retried_from_the_previous(storage):
    workflow = build_pingpong(storage, fail_at=3)
    events = []
    with pytest.raises(RuntimeError, match="pong dropped ball 3"):
        async for event in workflow.run(0, stream=True):
            events.append(event)
    assert superstep_numbers(events)[-1] == 4
    assert [i.superstep for i in checkpoint_infos(events)] == [1, 2, 3]
    checkpoints = await saved(storage, "pingpong")
    assert [c.superstep for c in checkpoints] == [0, 1, 2, 3]
    latest = await storage.get_latest("pingpong")
    assert latest.checkpoint_id == checkpoints[-1].checkpoint_id

    retried = await workflow.run(checkpoint_id=latest.checkpoint_id)
    assert retried.get_outputs() == [PINGPONG_OUTPUT]
    assert superstep_numbers(retried) == [4, 5, 6, 7]  # the failed superstep re-ran
    after = (await saved(storage, "pingpong"))[4:]
    assert after[0].previous_checkpoint_id == latest.checkpoint_id
    assert all("doomed" not in c.shared_state for c in after)


async def test_a_failed_superstep_discards_state_updates_queued_by_its_handlers(memory_storage):
    class Fragile(Executor):
        @handler
        async def take(self, n: int, ctx: WorkflowContext[int]) -> None:
            await ctx.queue_state_update("n", n)
            if n == 2:
                raise RuntimeError("two")
            await ctx.send_message(n + 1)

    fragile = Fragile("fragile")
    workflow = WorkflowBuilder(name="fragile", start_executor=fragile,
                               checkpoint_storage=memory_storage).add_edge(fragile, fragile).build()
    with pytest.raises(RuntimeError, match="two"):
        await workflow.run(1)
    checkpoints = await saved(memory_storage, "fragile")
    assert [c.executor_states for c in checkpoints] == [{}, {"fragile": {"n": 1}}]


# --------------------------------------------------------------------------- requests
async def test_pending_requests_survive_a_checkpoint_and_are_re_emitted(storage):
    await build_approval(storage).run("draft")
    checkpoint = (await saved(storage, "approval"))[-1]
    assert checkpoint.superstep == 1
    assert set(checkpoint.pending_requests) == {LEGAL, FINANCE}
    record = checkpoint.pending_requests[LEGAL]
    assert record == {"request_id": LEGAL, "source_executor_id": "approver",
                      "data": ApprovalRequest("legal", "draft"), "response_type": bool}

    fresh = build_approval(storage)
    result = await fresh.run(checkpoint_id=checkpoint.checkpoint_id)
    assert types_of(result) == ["started", "request_info", "request_info", "status"]
    assert [(r.request_id, r.data, r.response_type) for r in result.get_request_info_events()] == [
        (LEGAL, ApprovalRequest("legal", "draft"), bool),
        (FINANCE, ApprovalRequest("finance", "draft"), bool)]
    assert fresh.state is WorkflowRunState.IDLE_WITH_PENDING_REQUESTS

    answered = await fresh.run(responses={LEGAL: True, FINANCE: True})  # the new instance waits
    assert answered.get_outputs() == [{"draft": "draft", "decisions": {"legal": True, "finance": True}}]


async def test_re_emitted_requests_come_before_the_first_superstep(memory_storage):
    await build_approval(memory_storage, notify=True).run("draft")
    checkpoint = (await saved(memory_storage, "approval"))[1]
    assert checkpoint.messages and checkpoint.pending_requests  # both pending at once
    result = await build_approval(memory_storage, notify=True).run(
        checkpoint_id=checkpoint.checkpoint_id)
    kinds = types_of(result)
    assert kinds[:3] == ["started", "request_info", "request_info"]
    assert kinds.index("superstep_started") > 2
    assert result[3].state is WorkflowRunState.IN_PROGRESS_PENDING_REQUESTS
    assert result.get_outputs() == [("notifier", "awaiting draft")]


async def test_partial_answers_with_a_checkpoint_re_emit_only_the_unanswered(storage):
    await build_approval(storage).run("draft")
    waiting = (await saved(storage, "approval"))[-1]

    fresh = build_approval(storage)
    result = await fresh.run(checkpoint_id=waiting.checkpoint_id, responses={LEGAL: False})

    assert [r.request_id for r in result.get_request_info_events()] == [FINANCE]
    assert types_of(result).index("request_info") < types_of(result).index("superstep_started")
    assert result.get_outputs() == []
    assert result.get_final_state() is WorkflowRunState.IDLE_WITH_PENDING_REQUESTS
    assert fresh.executors["approver"].decisions == {"legal": False}

    response_entry = result[0].checkpoint
    assert response_entry.superstep == waiting.superstep  # same number as the one it answers
    stored = await storage.load(response_entry.checkpoint_id)
    assert stored.kind == "response"
    assert stored.previous_checkpoint_id == waiting.checkpoint_id
    assert set(stored.pending_requests) == {FINANCE}
    assert [(m["target_id"], m["data"], m["request"]["request_id"]) for m in stored.messages] == [
        ("approver", False, LEGAL)]  # the response in flight

    # the run's latest checkpoint knows the legal decision: answer finance from a third instance
    latest = await storage.get_latest("approval")
    assert latest.superstep == waiting.superstep + 1
    third = build_approval(storage)
    done = await third.run(checkpoint_id=latest.checkpoint_id, responses={FINANCE: True})
    assert done.get_request_info_events() == []
    assert done.get_outputs() == [{"draft": "draft", "decisions": {"legal": False, "finance": True}}]


async def test_a_response_entry_checkpoint_on_the_same_instance(memory_storage):
    workflow = build_approval(memory_storage)
    await workflow.run("draft")
    waiting_id = workflow.get_last_checkpoint_id()
    result = await workflow.run(responses={LEGAL: True, FINANCE: True})
    info = result[0].checkpoint
    assert info.superstep == 1
    stored = await memory_storage.load(info.checkpoint_id)
    assert stored.kind == "response" and stored.previous_checkpoint_id == waiting_id
    assert stored.pending_requests == {}
    assert len(stored.messages) == 2
    assert [c.superstep for c in checkpoint_infos(result)] == [2]


@pytest.mark.parametrize("responses, pattern", [
    ({LEGAL: "yes"}, "must be bool, got str"),
    ({"unknown": True}, "no pending request with id 'unknown'"),
])
async def test_bad_responses_with_a_checkpoint_are_refused_with_nothing_changed(
        memory_storage, responses, pattern):
    await build_approval(memory_storage).run("draft")
    waiting = (await saved(memory_storage, "approval"))[-1]
    before = await memory_storage.list_checkpoint_ids()
    fresh = build_approval(memory_storage)
    with pytest.raises(WorkflowRunError, match=pattern):
        await fresh.run(checkpoint_id=waiting.checkpoint_id, responses=responses)
    assert fresh.state is None and fresh.pending_requests == []
    assert fresh.get_last_checkpoint_id() is None
    assert await memory_storage.list_checkpoint_ids() == before


async def test_a_response_in_flight_survives_a_checkpoint(storage):
    await build_approval(storage).run("draft")
    waiting = (await saved(storage, "approval"))[-1]
    result = await build_approval(storage).run(checkpoint_id=waiting.checkpoint_id,
                                               responses={LEGAL: True, FINANCE: False})
    response_entry = result[0].checkpoint
    # a new instance restored from the response-entry checkpoint delivers the answers itself
    fresh = build_approval(storage)
    replayed = await fresh.run(checkpoint_id=response_entry.checkpoint_id)
    assert replayed.get_request_info_events() == []
    assert replayed.get_outputs() == result.get_outputs() == [
        {"draft": "draft", "decisions": {"legal": True, "finance": False}}]


class Chooser(Executor):
    @handler
    async def ask(self, question: str, ctx: WorkflowContext) -> None:
        await ctx.request_info(question, Literal["approve", "reject"] | None, request_id="choice")

    @response_handler
    async def chosen(self, question: str, answer: Literal["approve", "reject"] | None,
                     ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(f"{question}: {answer}")


async def test_response_types_survive_a_checkpoint_and_still_validate(tmp_path):
    from workflows_app.engine import FileCheckpointStorage

    def build(storage):
        return WorkflowBuilder(name="chooser", start_executor=Chooser("chooser"),
                               checkpoint_storage=storage).build()

    storage = FileCheckpointStorage(tmp_path)
    await build(storage).run("ship it?")
    waiting = await storage.get_latest("chooser")
    fresh = build(storage)
    with pytest.raises(WorkflowRunError, match="must be Literal.* \\| None, got str"):
        await fresh.run(checkpoint_id=waiting.checkpoint_id, responses={"choice": "maybe"})
    result = await fresh.run(checkpoint_id=waiting.checkpoint_id, responses={"choice": "approve"})
    assert result.get_outputs() == ["ship it?: approve"]


# --------------------------------------------------------------------------- fan-in buffers
async def test_fan_in_buffers_survive_a_checkpoint_between_partial_deliveries(storage):
    await build_fan_in(storage).run("Hi")
    checkpoints = await saved(storage, "fan_in")
    partial = checkpoints[2]
    assert partial.superstep == 2
    assert partial.fan_in_buffers == {"fan_in:upper,lower->join": {"upper": ["HI"]}}
    assert partial.messages == [{"source_id": "relay", "target_id": "lower", "data": "Hi"}]
    assert checkpoints[3].fan_in_buffers == {}  # complete: delivered as one message

    fresh = build_fan_in(storage)
    result = await fresh.run(checkpoint_id=partial.checkpoint_id)
    assert result.get_outputs() == [["HI", "hi"]]
    assert fresh.executors["join"].batches == [["HI", "hi"]]


# --------------------------------------------------------------------------- graph changes
def build_pingpong_with_spectator(storage):
    from .workflows import Pinger, Ponger
    ping, pong = Pinger(), Ponger()
    return (WorkflowBuilder(name="pingpong", start_executor=ping, checkpoint_storage=storage)
            .add_edge(ping, pong).add_edge(pong, ping).add_edge(pong, Sink("spectator")).build())


async def test_a_checkpoint_of_another_graph_is_refused_naming_what_was_added(memory_storage):
    await build_pingpong(memory_storage).run(0)
    checkpoint = (await saved(memory_storage, "pingpong"))[2]
    before = await memory_storage.list_checkpoint_ids()

    changed = build_pingpong_with_spectator(memory_storage)
    with pytest.raises(WorkflowCheckpointError) as caught:
        await changed.run(checkpoint_id=checkpoint.checkpoint_id)
    message = str(caught.value)
    assert "executors added: spectator: tests.engine.workflows.Sink" in message
    assert "edges added: direct: pong -> spectator" in message
    assert "removed" not in message
    assert changed.state is None and changed.executors["spectator"].received == []
    assert await memory_storage.list_checkpoint_ids() == before


async def test_a_checkpoint_of_another_graph_is_refused_naming_what_was_removed(memory_storage):
    await build_pingpong_with_spectator(memory_storage).run(0)
    checkpoint = (await saved(memory_storage, "pingpong"))[1]
    with pytest.raises(WorkflowCheckpointError) as caught:
        await build_pingpong(memory_storage).run(checkpoint_id=checkpoint.checkpoint_id)
    message = str(caught.value)
    assert "executors removed: spectator" in message
    assert "edges removed: direct: pong -> spectator" in message


async def test_a_changed_start_executor_is_a_different_graph(memory_storage):
    from .workflows import Pinger, Ponger

    await build_pingpong(memory_storage).run(0)
    checkpoint = (await saved(memory_storage, "pingpong"))[1]
    ping, pong = Pinger(), Ponger()
    flipped = (WorkflowBuilder(name="pingpong", start_executor=pong)
               .add_edge(ping, pong).add_edge(pong, ping).build())
    with pytest.raises(WorkflowCheckpointError,
                       match="start executor changed from 'ping' to 'pong'"):
        await flipped.run(checkpoint_id=checkpoint.checkpoint_id,
                          checkpoint_storage=memory_storage)


async def test_a_changed_edge_condition_is_a_different_graph(memory_storage):
    await build_conditional(memory_storage).run(3)
    checkpoint = (await saved(memory_storage, "conditional"))[0]

    def small_enough(n: int) -> bool:
        return n < 100

    source = FunctionExecutor(build_conditional().executors["source"].func, id="source")
    altered = (WorkflowBuilder(name="conditional", start_executor=source,
                               checkpoint_storage=memory_storage)
               .add_edge(source, Sink("small"), condition=small_enough)
               .add_edge(source, Sink("large"), condition=lambda n: n >= 100).build())
    with pytest.raises(WorkflowCheckpointError) as caught:
        await altered.run(checkpoint_id=checkpoint.checkpoint_id)
    message = str(caught.value)
    assert "edges added: direct: source -> large by" in message
    assert "small_enough" in message and "at_most_ten" in message


# --------------------------------------------------------------------------- encoding in runs
class Keeper(Executor):
    """Holds a value in its state (MAF style) and in shared state."""

    def __init__(self, id: str = "keeper", value: Any = None) -> None:
        super().__init__(id)
        self.value = value

    @handler
    async def keep(self, key: str, ctx: WorkflowContext) -> None:
        await ctx.set_shared_state(key, self.value)

    async def on_checkpoint_save(self) -> dict[str, Any]:
        return {"value": self.value}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self.value = state.get("value")


def build_keeper(storage, value: Any = None):
    return WorkflowBuilder(name="keeper", start_executor=Keeper(value=value),
                           checkpoint_storage=storage).build()


@pytest.mark.parametrize("label, value", ENCODABLE_SAMPLES, ids=[s[0] for s in ENCODABLE_SAMPLES])
async def test_every_encodable_value_round_trips_through_a_checkpoint(tmp_path, label, value):
    from workflows_app.engine import FileCheckpointStorage

    storage = FileCheckpointStorage(tmp_path, fsync=False)
    await build_keeper(storage, value).run("slot")
    last = await storage.get_latest("keeper")
    assert same(last.shared_state["slot"], value)
    fresh = build_keeper(storage)
    await fresh.run(checkpoint_id=last.checkpoint_id)
    assert same(fresh.executors["keeper"].value, value)


class Unencodable:
    pass


async def test_an_unencodable_executor_state_fails_the_checkpoint_naming_executor_and_key(
        storage):
    workflow = build_keeper(storage, value={"fine": 1, "socket": Unencodable()})
    with pytest.raises(WorkflowCheckpointError) as caught:
        await workflow.run("slot")
    message = str(caught.value)
    assert "executor 'keeper' state['value']['socket']" in message
    assert "Unencodable cannot be stored" in message
    assert await storage.list_checkpoint_ids() == []  # the entry checkpoint already failed
    assert workflow.state is WorkflowRunState.FAILED


async def test_an_unencodable_state_key_is_named(memory_storage):
    class Opener(Executor):
        @handler
        async def open(self, n: int, ctx: WorkflowContext) -> None:
            await ctx.queue_state_update("handle", lambda: None)

    workflow = WorkflowBuilder(name="opener", start_executor=Opener("opener"),
                               checkpoint_storage=memory_storage).build()
    events = []
    with pytest.raises(WorkflowCheckpointError,
                       match=r"executor 'opener' state\['handle'\]: values of type .*function"):
        async for event in workflow.run(1, stream=True):
            events.append(event)
    assert [c.kind for c in await saved(memory_storage, "opener")] == ["entry"]
    assert "superstep_completed" not in types_of(events)
    assert types_of(events)[-2:] == ["failed", "status"]


async def test_unencodable_shared_state_and_messages_are_named(memory_storage):
    @FunctionExecutor
    async def sharer(n: int, ctx: WorkflowContext) -> None:
        await ctx.set_shared_state("conn", Unencodable())

    with pytest.raises(WorkflowCheckpointError, match=r"shared state\['conn'\]"):
        await WorkflowBuilder(name="s", start_executor=sharer,
                              checkpoint_storage=memory_storage).build().run(1)

    @FunctionExecutor
    async def sender(n: int, ctx: WorkflowContext) -> None:
        await ctx.send_message(Unencodable())

    workflow = (WorkflowBuilder(name="m", start_executor=sender, checkpoint_storage=memory_storage)
                .add_edge(sender, Sink("sink")).build())
    with pytest.raises(WorkflowCheckpointError, match="message from 'sender' to 'sink'"):
        await workflow.run(1)


async def test_an_unregistered_dataclass_is_refused(memory_storage):
    from dataclasses import dataclass

    @dataclass
    class Secret:
        value: int

    with pytest.raises(WorkflowCheckpointError,
                       match=r"keeper' state\['value'\]: type .*Secret is not registered"):
        await build_keeper(memory_storage, value=Secret(1)).run("slot")


# --------------------------------------------------------------------------- tampering
async def test_a_tampered_checkpoint_fails_to_load_and_executes_nothing(tmp_path):
    from workflows_app.engine import FileCheckpointStorage

    storage = FileCheckpointStorage(tmp_path)
    await build_pingpong(storage).run(0)
    target = (await saved(storage, "pingpong"))[2]
    path = tmp_path / f"{target.checkpoint_id}.json"
    sentinel = tmp_path / "sentinel"
    assert "delta_of" in json.loads(path.read_text())  # stored as a delta: write it whole
    document = target.to_dict()
    assert document["messages"][0]["data"]["__type__"] == "dataclass"
    document["messages"][0]["data"] = {
        "__type__": "dataclass", "class": "subprocess.Popen",
        "fields": {"args": ["touch", str(sentinel)]}}
    document["shared_state"]["last"] = {"__type__": "enum", "class": "os.system",
                                        "name": f"touch {sentinel}"}
    path.write_text(json.dumps(document))

    with pytest.raises(WorkflowCheckpointError, match="'subprocess.Popen', which is not registered"):
        await storage.load(target.checkpoint_id)
    fresh = build_pingpong(storage)
    with pytest.raises(WorkflowCheckpointError, match="not registered"):
        await fresh.run(checkpoint_id=target.checkpoint_id)
    assert not sentinel.exists()
    assert fresh.state is None
    assert fresh.executors["ping"].seen == [] and fresh.executors["pong"].hits == 0


async def test_a_checkpoint_with_an_unknown_tag_fails_to_load(memory_storage):
    await build_pingpong(memory_storage).run(0)
    target = (await saved(memory_storage, "pingpong"))[1]
    document = target.to_dict()
    document["pending_requests"] = {"r": {"request_id": "r", "source_executor_id": "ping",
                                          "data": None, "response_type": "os.system"}}
    document["checkpoint_id"] = "tampered"
    with pytest.raises(WorkflowCheckpointError, match="'os.system', which is not registered"):
        WorkflowCheckpoint.from_dict(document)
    document["pending_requests"] = {}
    document["executor_states"]["ping"] = {"__type__": "pickle", "data": "gASV"}
    with pytest.raises(WorkflowCheckpointError, match="unknown type tag 'pickle'"):
        WorkflowCheckpoint.from_dict(document)


@pytest.mark.parametrize("field, value, pattern", [
    ("executor_states", {"ping": [1, 2]}, "state of executor 'ping' must be an object, got list"),
    ("shared_state", {"__type__": "tuple", "items": [1]}, "shared state must be an object"),
    ("fan_in_buffers", {"fan_in:a->b": [1]}, "fan-in buffer 'fan_in:a->b' is malformed"),
    ("fan_in_buffers", {"fan_in:a->b": {"a": "not a list"}}, "fan-in buffer .* is malformed"),
    ("metadata", {"__type__": "set", "items": []}, "metadata must be an object, got set"),
])
async def test_a_checkpoint_of_the_wrong_shape_fails_to_load_and_runs_nothing(
        tmp_path, field, value, pattern):
    from workflows_app.engine import FileCheckpointStorage

    storage = FileCheckpointStorage(tmp_path)
    await build_pingpong(storage).run(0)
    target = (await saved(storage, "pingpong"))[2]
    path = tmp_path / f"{target.checkpoint_id}.json"
    document = target.to_dict()
    document[field] = value
    path.write_text(json.dumps(document))  # edited on disk, stored whole
    with pytest.raises(WorkflowCheckpointError, match=pattern):
        await storage.load(target.checkpoint_id)
    fresh = build_pingpong(storage)
    with pytest.raises(WorkflowCheckpointError, match=pattern):
        await fresh.run(checkpoint_id=target.checkpoint_id)
    assert fresh.state is None and fresh.executors["ping"].seen == []


@pytest.mark.parametrize("change, pattern", [
    (lambda d: d.pop("superstep"), "no 'superstep' field"),
    (lambda d: d.update(superstep="3"), "'superstep' must be int"),
    (lambda d: d.update(superstep=True), "'superstep' must be int"),
    (lambda d: d.update(version="2"), "version '2' is not supported"),
    (lambda d: d.update(messages=[{"data": 1}]), "must be objects with a 'target_id'"),
    (lambda d: d.update(pending_requests={"r": "x"}), "pending request 'r' is malformed"),
])
def test_malformed_checkpoint_documents_are_refused(change, pattern):
    document = WorkflowCheckpoint(checkpoint_id="c", workflow_name="w", graph_signature_hash="h",
                                  previous_checkpoint_id=None, timestamp="t",
                                  superstep=1).to_dict()
    change(document)
    with pytest.raises(WorkflowCheckpointError, match=pattern):
        WorkflowCheckpoint.from_dict(document)


async def test_an_unknown_checkpoint_id_is_refused_with_nothing_changed(memory_storage):
    workflow = build_pingpong(memory_storage)
    with pytest.raises(WorkflowCheckpointError, match="not found"):
        await workflow.run(checkpoint_id="missing")
    assert workflow.state is None
