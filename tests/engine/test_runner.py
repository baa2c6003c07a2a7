"""The superstep runner: delivery, concurrency, ordering, shared state, edges, events."""

from __future__ import annotations

import asyncio
import contextlib
import gc
from typing import Any, Never

import pytest

from workflows_app.engine import (Executor, FunctionExecutor, WorkflowBuilder, WorkflowContext,
                                  WorkflowConvergenceError, WorkflowRunError,
                                  WorkflowRunState, handler)

from .workflows import (PINGPONG_OUTPUT, PINGPONG_SUPERSTEPS, Sink, build_chain,
                        build_conditional, build_fan_in, build_multi_selection, build_pingpong,
                        build_switch, checkpoint_infos, types_of)


def superstep_of_invocations(events) -> list[tuple[int, str]]:
    """``(superstep, executor_id)`` of every ``executor_invoked`` event."""
    current, found = 0, []
    for event in events:
        if event.type == "superstep_started":
            current = event.superstep
        elif event.type == "executor_invoked":
            found.append((current, event.executor_id))
    return found


async def _fan(message: Any, ctx: WorkflowContext) -> None:
    await ctx.send_message(message)


def fan(id: str = "start") -> FunctionExecutor:
    return FunctionExecutor(_fan, id=id)


# --------------------------------------------------------------------------- supersteps
async def test_a_run_is_a_sequence_of_supersteps():
    result = await build_pingpong().run(0)
    assert result.get_outputs() == [PINGPONG_OUTPUT]
    assert result.get_final_state() is WorkflowRunState.IDLE
    assert types_of(result)[:6] == ["started", "status", "superstep_started", "executor_invoked",
                                    "executor_completed", "superstep_completed"]
    assert result[1].state is WorkflowRunState.IN_PROGRESS
    started = [e.superstep for e in result if e.type == "superstep_started"]
    completed = [e.superstep for e in result if e.type == "superstep_completed"]
    assert started == completed == list(range(1, PINGPONG_SUPERSTEPS + 1))
    assert checkpoint_infos(result) == [None] * PINGPONG_SUPERSTEPS  # no storage


async def test_messages_sent_in_a_superstep_are_delivered_in_the_next():
    result = await build_pingpong().run(0)
    assert superstep_of_invocations(result) == [
        (1, "ping"), (2, "pong"), (3, "ping"), (4, "pong"), (5, "ping"), (6, "pong"), (7, "ping")]


class Rendezvous(Executor):
    """Sets its own event, then waits for the other's: finishes only if both run at once."""

    def __init__(self, id: str, mine: asyncio.Event, theirs: asyncio.Event) -> None:
        super().__init__(id)
        self.mine, self.theirs = mine, theirs

    @handler
    async def meet(self, message: str, ctx: WorkflowContext[Never, str]) -> None:
        self.mine.set()
        await asyncio.wait_for(self.theirs.wait(), timeout=2)
        await ctx.yield_output(self.id)


async def test_different_executors_of_a_superstep_run_concurrently():
    a_ready, b_ready = asyncio.Event(), asyncio.Event()
    start = fan()
    a, b = Rendezvous("a", a_ready, b_ready), Rendezvous("b", b_ready, a_ready)
    workflow = WorkflowBuilder(start_executor=start).add_fan_out_edges(start, [a, b]).build()
    result = await workflow.run("go")
    assert sorted(result.get_outputs()) == ["a", "b"]
    assert superstep_of_invocations(result) == [(1, "start"), (2, "a"), (2, "b")]


class Serial(Executor):
    """Records messages and the most handlers of this executor running at once."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.received: list[Any] = []
        self.active = self.max_active = 0

    @handler
    async def take(self, message: Any, ctx: WorkflowContext) -> None:
        self.active += 1
        self.max_active = max(self.max_active, self.active)
        for _ in range(3):
            await asyncio.sleep(0)
        self.received.append(message)
        self.active -= 1


class Burst(Executor):
    """Sends ``<id>0..<id>(count-1)`` after ``delay`` seconds."""

    def __init__(self, id: str, count: int, delay: float = 0) -> None:
        super().__init__(id)
        self.count, self.delay = count, delay

    @handler
    async def go(self, message: str, ctx: WorkflowContext[str]) -> None:
        await asyncio.sleep(self.delay)
        for i in range(self.count):
            await ctx.send_message(f"{self.id}{i}")


async def test_one_executor_gets_its_messages_one_at_a_time_in_order():
    start, sink = fan(), Serial("sink")
    slow, fast = Burst("slow", 3, delay=0.02), Burst("fast", 3)
    workflow = (WorkflowBuilder(start_executor=start)
                .add_fan_out_edges(start, [slow, fast])
                .add_edge(slow, sink).add_edge(fast, sink).build())
    await workflow.run("go")
    # slow finished last, but it was delivered first, so its messages come first.
    assert sink.received == ["slow0", "slow1", "slow2", "fast0", "fast1", "fast2"]
    assert sink.max_active == 1


# --------------------------------------------------------------------------- shared state
class Writer(Executor):
    def __init__(self, id: str, written: asyncio.Event) -> None:
        super().__init__(id)
        self.written = written
        self.read_back: Any = None

    @handler
    async def write(self, message: str, ctx: WorkflowContext[str]) -> None:
        await ctx.set_shared_state("color", "blue")
        await ctx.delete_shared_state("obsolete")
        self.read_back = await ctx.get_shared_state("color")
        self.written.set()
        await ctx.send_message("next")


class Reader(Executor):
    def __init__(self, id: str, wait_for: asyncio.Event | None = None) -> None:
        super().__init__(id)
        self.wait_for = wait_for
        self.seen: list[Any] = []

    @handler
    async def read(self, message: str, ctx: WorkflowContext) -> None:
        if self.wait_for is not None:
            await asyncio.wait_for(self.wait_for.wait(), timeout=2)
        self.seen.append((await ctx.get_shared_state("color"),
                          await ctx.get_shared_state("obsolete", "gone")))


async def test_shared_state_is_visible_at_once_and_committed_at_the_boundary(memory_storage):
    written = asyncio.Event()

    @FunctionExecutor
    async def seed(message: str, ctx: WorkflowContext[str]) -> None:
        await ctx.set_shared_state("obsolete", "old")
        await ctx.send_message(message)

    writer, peer, later = Writer("writer", written), Reader("peer", written), Reader("later")
    workflow = (WorkflowBuilder(start_executor=seed, checkpoint_storage=memory_storage)
                .add_fan_out_edges(seed, [writer, peer]).add_edge(writer, later).build())
    result = await workflow.run("go")
    assert writer.read_back == "blue"  # the writer's own later read
    assert peer.seen == [("blue", "gone")]  # another executor, same superstep, after the write
    assert later.seen == [("blue", "gone")]  # the next superstep
    infos = checkpoint_infos(result)
    states = [(await memory_storage.load(i.checkpoint_id)).shared_state for i in infos]
    assert states == [{"obsolete": "old"}, {"color": "blue"}, {"color": "blue"}]


async def test_shared_state_of_a_failed_superstep_is_discarded(memory_storage):
    workflow = build_pingpong(memory_storage, fail_at=3)
    with pytest.raises(RuntimeError, match="pong dropped ball 3"):
        await workflow.run(0)
    # Only the runner can see a discard: a failed run writes no checkpoint and accepts no
    # responses, and a restore replaces the shared state anyway.
    assert workflow._run_state.shared_state.get("doomed") is None
    saved = await memory_storage.list_checkpoints()
    assert [c.superstep for c in saved] == [0, 1, 2, 3]  # superstep 4 failed: no checkpoint
    assert all("doomed" not in c.shared_state for c in saved)


# --------------------------------------------------------------------------- max_iterations
async def test_max_iterations_bounds_the_superstep_number():
    workflow = build_pingpong(limit=1000, max_iterations=5)
    events = []
    with pytest.raises(WorkflowConvergenceError, match="max_iterations=5 with 1 message"):
        async for event in workflow.run(0, stream=True):
            events.append(event)
    assert [e.superstep for e in events if e.type == "superstep_completed"] == [1, 2, 3, 4, 5]
    assert types_of(events)[-2:] == ["failed", "status"]
    assert isinstance(events[-2].error, WorkflowConvergenceError)
    assert workflow.state is WorkflowRunState.FAILED


async def test_a_run_that_needs_exactly_max_iterations_supersteps_finishes():
    result = await build_pingpong(max_iterations=PINGPONG_SUPERSTEPS).run(0)
    assert result.get_outputs() == [PINGPONG_OUTPUT]
    with pytest.raises(WorkflowConvergenceError):
        await build_pingpong(max_iterations=PINGPONG_SUPERSTEPS - 1).run(0)


# --------------------------------------------------------------------------- edges
@pytest.mark.parametrize("n, target", [(5, "small"), (10, "small"), (11, "large")])
async def test_conditional_edges(n, target):
    assert (await build_conditional().run(n)).get_outputs() == [(target, n)]


async def test_a_message_every_condition_declines_is_dropped():
    start = fan()
    workflow = (WorkflowBuilder(start_executor=start)
                .add_edge(start, Sink("positive"), condition=lambda n: n > 0).build())
    result = await workflow.run(-1)
    assert result.get_outputs() == []
    assert result.get_final_state() is WorkflowRunState.IDLE


async def test_fan_out_delivers_to_every_target_that_accepts_the_type():
    @FunctionExecutor
    async def only_str(text: str, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(f"str:{text}")

    start, a, b = fan(), Sink("a"), Sink("b")
    workflow = WorkflowBuilder(start_executor=start).add_fan_out_edges(start, [a, b, only_str]).build()
    assert (await workflow.run(1)).get_outputs() == [("a", 1), ("b", 1)]
    assert (await workflow.run("x")).get_outputs() == [("a", "x"), ("b", "x"), "str:x"]


async def test_fan_in_waits_for_every_source_and_delivers_one_list():
    workflow = build_fan_in()
    result = await workflow.run("Hi")
    assert result.get_outputs() == [["HI", "hi"]]
    assert superstep_of_invocations(result) == [
        (1, "split"), (2, "upper"), (2, "relay"), (3, "lower"), (4, "join")]
    assert workflow.executors["join"].batches == [["HI", "hi"]]


async def test_fan_in_keeps_every_message_of_a_source_in_source_order():
    start, join = fan(), Serial("join")
    twice, once = Burst("twice", 2), Burst("once", 1)
    workflow = (WorkflowBuilder(start_executor=start)
                .add_fan_out_edges(start, [once, twice])
                .add_fan_in_edges([twice, once], join).build())
    await workflow.run("go")
    assert join.received == [["twice0", "twice1", "once0"]]


@pytest.mark.parametrize("n, target", [(-4, "negative"), (0, "zero"), (9, "positive")])
async def test_switch_case_takes_the_first_matching_case_else_default(n, target):
    assert (await build_switch().run(n)).get_outputs() == [(target, n)]


async def test_switch_case_without_default_drops_unmatched_messages():
    result = await build_switch(with_default=False).run(9)
    assert result.get_outputs() == []
    assert result.get_final_state() is WorkflowRunState.IDLE


@pytest.mark.parametrize("n, expected", [
    (7, [("odd", 7)]), (8, [("even", 8)]), (102, [("even", 102), ("big", 102)])])
async def test_multi_selection(n, expected):
    assert (await build_multi_selection().run(n)).get_outputs() == expected


async def test_multi_selection_of_an_unknown_target_fails_the_run():
    start = fan()
    workflow = (WorkflowBuilder(start_executor=start)
                .add_multi_selection_edge_group(start, [Sink("a")], lambda m, ids: ["nowhere"])
                .build())
    result_events = []
    with pytest.raises(ValueError, match=r"returned \['nowhere'\]"):
        async for event in workflow.run(1, stream=True):
            result_events.append(event)
    failed = result_events[-2]
    assert failed.type == "failed" and failed.executor_id == "start"


async def test_add_chain():
    result = await build_chain().run("hi")
    assert result.get_outputs() == [("echo", "HI!")]
    assert superstep_of_invocations(result) == [(1, "upper"), (2, "exclaim"), (3, "echo")]


async def test_target_id_sends_to_one_connected_executor_only():
    @FunctionExecutor
    async def picky(n: int, ctx: WorkflowContext[int]) -> None:
        await ctx.send_message(n, target_id="b")

    workflow = (WorkflowBuilder(start_executor=picky)
                .add_fan_out_edges(picky, [Sink("a"), Sink("b"), Sink("c")]).build())
    assert (await workflow.run(1)).get_outputs() == [("b", 1)]


# These three failed the run until issue 15 (item 5): MAF drops a message no edge delivers,
# and workflows ported from it rely on that. It is dropped here too, never silently: a
# warning event names the sender and the message type (more in test_maf_parity.py).
def only_warning(result) -> Any:
    warnings = [e for e in result if e.type == "warning"]
    assert len(warnings) == 1 and result.get_final_state() is WorkflowRunState.IDLE
    return warnings[0]


async def test_target_id_of_an_unconnected_executor_drops_the_message_with_a_warning():
    @FunctionExecutor
    async def stray(n: int, ctx: WorkflowContext[int]) -> None:
        await ctx.send_message(n, target_id="elsewhere")

    workflow = WorkflowBuilder(start_executor=stray).add_edge(stray, Sink("a")).build()
    warning = only_warning(await workflow.run(1))
    assert (warning.executor_id, warning.message_type) == ("stray", "int")
    assert "sent to 'elsewhere', which no edge from it reaches (connected: a)" in warning.message


async def test_a_message_no_connected_executor_accepts_is_dropped_with_a_warning():
    @FunctionExecutor
    async def wrong(n: int, ctx: WorkflowContext) -> None:
        await ctx.send_message(b"bytes")

    @FunctionExecutor
    async def ints(n: int, ctx: WorkflowContext) -> None:
        pass

    workflow = WorkflowBuilder(start_executor=wrong).add_edge(wrong, ints).build()
    warning = only_warning(await workflow.run(1))
    assert (warning.executor_id, warning.message_type) == ("wrong", "bytes")
    assert "no executor connected to it accepts that type (connected: ints)" in warning.message


async def test_sending_without_outgoing_edges_drops_the_message_with_a_warning():
    warning = only_warning(await WorkflowBuilder(start_executor=fan()).build().run(1))
    assert warning.message == ("dropped a message of type int sent by executor 'start': "
                               "it has no outgoing edges")


# --------------------------------------------------------------------------- failures
async def test_a_failing_handler_fails_the_run_and_raises_its_error():
    boom = RuntimeError("boom")

    @FunctionExecutor
    async def bad(n: int, ctx: WorkflowContext) -> None:
        raise boom

    start = fan()
    workflow = WorkflowBuilder(start_executor=start).add_edge(start, bad).build()
    events = []
    with pytest.raises(RuntimeError) as caught:
        async for event in workflow.run(1, stream=True):
            events.append(event)
    assert caught.value is boom
    assert types_of(events)[-4:] == ["executor_invoked", "executor_failed", "failed", "status"]
    assert events[-3].executor_id == "bad" and events[-3].data is boom
    assert events[-2].executor_id == "bad" and events[-2].error is boom
    assert events[-1].state is WorkflowRunState.FAILED
    assert "superstep_completed" not in types_of(events)[types_of(events).index("executor_failed"):]
    assert workflow.state is WorkflowRunState.FAILED


# --------------------------------------------------------------------------- events
async def test_streamed_and_collected_runs_report_the_same_events_in_the_same_order():
    collected = await build_fan_in().run("Hi")
    streamed = [event async for event in build_fan_in().run("Hi", stream=True)]
    assert types_of(streamed) == types_of(collected)
    assert [getattr(e, "executor_id", None) for e in streamed] == [
        getattr(e, "executor_id", None) for e in collected]
    assert types_of(collected)[0] == "started" and types_of(collected)[-1] == "status"
    kinds = types_of(collected)
    assert kinds.index("output") < kinds.index("status", 2)


async def test_streamed_events_arrive_while_the_run_is_still_going():
    release = asyncio.Event()

    @FunctionExecutor
    async def gate(n: int, ctx: WorkflowContext[Never, int]) -> None:
        await asyncio.wait_for(release.wait(), timeout=2)
        await ctx.yield_output(n)

    seen = []
    async for event in WorkflowBuilder(start_executor=gate).build().run(3, stream=True):
        seen.append(event.type)
        if event.type == "executor_invoked":
            assert "output" not in seen  # the handler is still blocked
            release.set()
    assert seen[-3:] == ["executor_completed", "superstep_completed", "status"]
    assert "output" in seen


async def test_closing_a_stream_cancels_the_run():
    workflow = build_pingpong(limit=10**6, max_iterations=1000)
    async with contextlib.aclosing(workflow.run(0, stream=True)) as events:
        async for event in events:
            if event.type == "superstep_completed" and event.superstep == 3:
                break
    assert workflow.state is WorkflowRunState.CANCELLED
    # The instance is free again, but (since issue 15, item 6) it keeps its state, so a new
    # message is refused while the cancelled run's message is still in flight, as in MAF;
    # it used to start afresh. Continuing from a checkpoint, or a new instance, works.
    with pytest.raises(WorkflowRunError, match=r"1 message\(s\) in flight .* CANCELLED"):
        await workflow.run(999_999)
    result = await build_pingpong(limit=10**6, max_iterations=1000).run(999_999)
    assert result.get_final_state() is WorkflowRunState.IDLE
    assert result.get_outputs()[0]["pong_hits"] is not None


async def test_one_run_at_a_time_per_instance():
    release = asyncio.Event()

    @FunctionExecutor
    async def gate(n: int, ctx: WorkflowContext[Never, int]) -> None:
        await asyncio.wait_for(release.wait(), timeout=2)
        await ctx.yield_output(n)

    workflow = WorkflowBuilder(start_executor=gate).build()
    first = asyncio.ensure_future(workflow.run(1))
    await asyncio.sleep(0.01)
    with pytest.raises(WorkflowRunError, match="already running"):
        await workflow.run(2)
    release.set()
    assert (await first).get_outputs() == [1]
    assert (await workflow.run(3)).get_outputs() == [3]


@pytest.mark.parametrize("kwargs, pattern", [
    ({}, "needs a message"),
    ({"message": 1, "checkpoint_id": "x"}, "either a message"),
    ({"message": 1, "responses": {"r": True}}, "either a message"),
    ({"checkpoint_id": "x"}, "needs checkpoint storage"),
])
async def test_invalid_run_arguments_are_refused(kwargs, pattern):
    workflow = build_chain()
    with pytest.raises(WorkflowRunError, match=pattern):
        await workflow.run(**kwargs)
    assert workflow.state is None


async def test_an_instance_can_run_again_with_a_new_message():
    # It used to run "from scratch"; since issue 15 (item 6) it keeps its executors' state,
    # as MAF's does: the echo sink remembers the first message.
    workflow = build_chain()
    assert (await workflow.run("a")).get_outputs() == [("echo", "A!")]
    assert (await workflow.run("b")).get_outputs() == [("echo", "B!")]
    assert workflow.executors["echo"].received == ["A!", "B!"]


async def test_stopping_a_stream_after_a_failure_leaves_no_unretrieved_error(caplog):
    @FunctionExecutor
    async def broken(n: int, ctx: WorkflowContext) -> None:
        raise RuntimeError("broken")

    workflow = WorkflowBuilder(start_executor=broken).build()
    async with contextlib.aclosing(workflow.run(1, stream=True)) as events:
        async for event in events:
            if event.type == "failed":
                break  # the caller has seen the failure and stops listening
    del events
    await asyncio.sleep(0)
    gc.collect()
    assert workflow.state is WorkflowRunState.FAILED
    assert "never retrieved" not in caplog.text


async def test_a_dropped_workflow_is_freed_at_once_with_its_state_and_storage():
    # No reference cycle holds a finished workflow: its executors' state and the storage
    # (with the records it keeps to store deltas against) go when the last reference does,
    # not at the next garbage collection. Workers restore large states one after another.
    import weakref

    from workflows_app.engine import InMemoryCheckpointStorage

    from .workflows import build_pingpong

    storage = InMemoryCheckpointStorage()
    workflow = build_pingpong(storage)
    await workflow.run(0)
    watched = [weakref.ref(workflow), weakref.ref(storage),
               *(weakref.ref(e) for e in workflow.executors.values())]
    gc.disable()
    try:
        del workflow, storage
        assert [ref() for ref in watched] == [None] * len(watched)
    finally:
        gc.enable()
