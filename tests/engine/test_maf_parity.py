"""Where the engine now behaves as MAF's Python workflows do (issue 15, items 1-7).

1. a superstep that asks for input reports IN_PROGRESS_PENDING_REQUESTS right after the
   request, also when it is the run's last;
2. a streamed run advances only as its events are read, one run at a time per instance;
3. two handlers for one message type are refused, naming both;
4. a handler annotated with a ``TypeVar`` is refused;
5. a message no edge delivers is dropped, with a ``warning`` event;
6. an instance keeps its state across ``run(message)`` calls;
7. (kept, unlike MAF) the first handler in definition order takes a message.

What MAF does was confirmed by running the same scenarios on agent-framework-core 1.23.
Pingpong's two executors save their state through the two kinds of hooks (state-key and
state-dict), so every continuation below covers both.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any, Never, TypeVar

import pytest

from workflows_app.engine import (Executor, FileCheckpointStorage, FunctionExecutor,
                                  InMemoryCheckpointStorage, WorkflowBuilder, WorkflowContext,
                                  WorkflowRunError, WorkflowRunState, WorkflowValidationError,
                                  WorkflowWarningEvent, executor, handler, response_handler)

from .workflows import (PINGPONG_OUTPUT, ApprovalRequest, Approver, Pinger, Ponger, Serve,
                        build_approval, build_pingpong, build_switch, checkpoint_infos, types_of)

IN_PROGRESS = WorkflowRunState.IN_PROGRESS
PENDING = WorkflowRunState.IN_PROGRESS_PENDING_REQUESTS
IDLE = WorkflowRunState.IDLE
IDLE_PENDING = WorkflowRunState.IDLE_WITH_PENDING_REQUESTS
LEGAL, FINANCE = "legal-draft", "finance-draft"


@pytest.fixture(params=["none", "memory", "file"])
def any_storage(request, tmp_path):
    """No storage, then each storage the engine ships."""
    if request.param == "none":
        return None
    if request.param == "memory":
        return InMemoryCheckpointStorage()
    return FileCheckpointStorage(tmp_path / "checkpoints")


async def events_of(call: Any) -> list:
    """The events of ``run(...)``, awaited or (``stream=True``) read to the end."""
    if hasattr(call, "__aiter__"):
        return [event async for event in call]
    return list(await call)


def statuses(events) -> list[WorkflowRunState]:
    return [event.state for event in events if event.type == "status"]


async def superstep_checkpoints(storage, name: str = "pingpong") -> list[int]:
    return [c.superstep for c in await storage.list_checkpoints(name)] if storage else []


def handler_calls(workflow) -> int:
    """Handler calls of a pingpong run: ping records each ball, pong counts its hits."""
    return len(workflow.executors["ping"].seen) + workflow.executors["pong"].hits


def other_tasks() -> set:
    return {task for task in asyncio.all_tasks() if task is not asyncio.current_task()}


# --------------------------------------------------------------------------- 1. status
@pytest.mark.parametrize("stream", [False, True], ids=["awaited", "streamed"])
async def test_a_last_superstep_that_asks_reports_pending_requests_right_after_asking(
        any_storage, stream):
    result = await events_of(build_approval(any_storage).run("draft", stream=stream))
    # MAF 1.23's order for the same run (it also yields no output here).
    assert types_of(result) == [
        "started", "status", "superstep_started", "executor_invoked", "request_info", "status",
        "request_info", "executor_completed", "superstep_completed", "status"]
    assert statuses(result) == [IN_PROGRESS, PENDING, IDLE_PENDING]


async def test_requests_of_several_executors_in_one_superstep_report_it_once(any_storage):
    @FunctionExecutor
    async def split(draft: str, ctx: WorkflowContext[str]) -> None:
        await ctx.send_message(draft)

    legal, finance = Approver("legal", topics=("legal",)), Approver("finance", topics=("finance",))
    workflow = (WorkflowBuilder(start_executor=split, checkpoint_storage=any_storage)
                .add_fan_out_edges(split, [legal, finance]).build())
    result = await events_of(workflow.run("draft", stream=True))
    assert statuses(result) == [IN_PROGRESS, PENDING, IDLE_PENDING]
    assert sorted(r.request_id for r in workflow.pending_requests) == [FINANCE, LEGAL]


async def test_a_request_while_messages_still_flow_reports_it_the_same_way():
    result = await build_approval(notify=True).run("draft")
    kinds = types_of(result)
    assert kinds.index("status", 2) == kinds.index("request_info") + 1  # right after asking
    assert statuses(result) == [IN_PROGRESS, PENDING, IDLE_PENDING]


# --------------------------------------------------------------------------- 2. streaming
async def test_a_reader_that_stops_at_superstep_1_has_let_1_handler_run(any_storage):
    workflow = build_pingpong(any_storage, limit=50)
    async with contextlib.aclosing(workflow.run(0, stream=True)) as events:
        async for event in events:
            if event.type == "superstep_completed" and event.superstep == 1:
                await asyncio.sleep(0.01)  # a run that raced ahead would go on meanwhile
                assert handler_calls(workflow) == 1
                break
    # MAF: 1 handler call and 2 checkpoints (the entry one and superstep 1's).
    assert handler_calls(workflow) == 1
    assert await superstep_checkpoints(any_storage) == ([0, 1] if any_storage else [])
    assert workflow.state is WorkflowRunState.CANCELLED
    assert other_tasks() == set()


async def test_a_streamed_run_is_at_most_one_superstep_ahead_of_a_slow_reader(any_storage):
    workflow = build_pingpong(any_storage)
    emitted: list[int] = []  # supersteps the run started, as it starts them

    def on_event(event) -> None:
        if event.type == "superstep_started":
            emitted.append(event.superstep)

    read_completed, read = 0, []
    async for event in workflow.run(0, stream=True, on_event=on_event):
        read.append(event)
        assert max(emitted, default=0) <= read_completed + 1
        if event.type == "superstep_completed":
            read_completed = event.superstep
        for _ in range(5):  # the reader takes its time over every event
            await asyncio.sleep(0)
    assert types_of(read) == types_of(await build_pingpong(None).run(0))
    assert read[-1].state is IDLE and workflow.state is IDLE


@pytest.mark.parametrize("build, message", [
    (build_pingpong, 0), (build_approval, "draft"),
    (lambda storage: build_pingpong(storage, fail_at=3), 0)],
    ids=["pingpong", "approval", "failing"])
async def test_workflow_state_is_the_status_event_the_reader_read_last(any_storage, build, message):
    workflow = build(any_storage)
    last_status = None
    with contextlib.suppress(RuntimeError):
        async for event in workflow.run(message, stream=True):
            if event.type == "status":
                last_status = event.state
            for _ in range(3):
                await asyncio.sleep(0)  # the run gets every chance to run ahead
            assert workflow.state is last_status
    assert last_status is workflow.state is not None


async def test_a_second_run_is_refused_while_a_stream_is_open(any_storage):
    workflow = build_pingpong(any_storage)
    events = workflow.run(0, stream=True)
    with pytest.raises(WorkflowRunError, match="already running on this instance: its event "
                                               "stream has not been read to the end or closed"):
        await workflow.run(1)  # before the stream was even started
    async for event in events:
        if event.type == "superstep_completed":
            with pytest.raises(WorkflowRunError, match="already running"):
                workflow.run(1, stream=True)  # refused when called, not when iterated
            with pytest.raises(WorkflowRunError, match="already running"):
                await workflow.run(checkpoint_id="any")
    # read to the end: the instance is free (and keeps its state, item 6)
    assert (await workflow.run(0)).get_final_state() is IDLE


async def test_closing_or_dropping_a_stream_frees_the_instance(storage):
    workflow = build_pingpong(storage)
    unread = workflow.run(0, stream=True)
    await unread.aclose()  # closed before its first event: nothing ran
    assert workflow.state is None and await storage.list_checkpoints() == []

    events = workflow.run(0, stream=True)
    async for event in events:
        if event.type == "superstep_completed" and event.superstep == 2:
            break
    del events  # dropped while unfinished, as a reader that breaks out of a loop does
    stop = (await storage.list_checkpoints())[-1]
    assert stop.superstep == 2
    # The new run first ends the dropped one, so the two never advance the same state.
    result = await workflow.run(checkpoint_id=stop.checkpoint_id)
    assert result.get_outputs() == [PINGPONG_OUTPUT] and result.get_final_state() is IDLE
    assert other_tasks() == set()


async def test_an_awaited_run_is_refused_while_another_is_awaited():
    workflow = build_pingpong()
    first = asyncio.ensure_future(workflow.run(0))
    with pytest.raises(WorkflowRunError, match="already running on this instance: the previous "
                                               "run\\(\\) has not finished"):
        workflow.run(0, stream=True)
    assert (await first).get_outputs() == [PINGPONG_OUTPUT]


class BlockingPonger(Ponger):
    """Pong that, served ``block_at``, stages a shared-state write and waits forever."""

    def __init__(self, block_at: int | None) -> None:
        super().__init__()
        self.block_at = block_at
        self.cancelled = False

    @handler
    async def serve(self, ball: Serve, ctx: WorkflowContext[Any]) -> None:
        if ball.n == self.block_at:
            await ctx.set_shared_state("doomed", True)
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                self.cancelled = True
                raise
        await super().serve(ball, ctx)


def build_blocking(storage: Any, block_at: int | None):
    ping, pong = Pinger(), BlockingPonger(block_at)
    return (WorkflowBuilder(name="pingpong", start_executor=ping, checkpoint_storage=storage)
            .add_edge(ping, pong).add_edge(pong, ping).build())


async def test_closing_a_stream_while_handlers_run_cancels_them_and_commits_nothing(any_storage):
    workflow = build_blocking(any_storage, block_at=3)
    pong = workflow.executors["pong"]
    async with contextlib.aclosing(workflow.run(0, stream=True)) as events:
        async for event in events:
            if (event.type, event.data) == ("executor_invoked", Serve(3)):
                await asyncio.sleep(0.01)  # pong is blocked in its handler
                break
    assert pong.cancelled and workflow.state is WorkflowRunState.CANCELLED
    assert other_tasks() == set()
    # Superstep 4 committed nothing: no checkpoint, no shared state, its message in flight.
    assert await superstep_checkpoints(any_storage) == ([0, 1, 2, 3] if any_storage else [])
    with pytest.raises(WorkflowRunError, match=r"1 message\(s\) in flight"):
        await workflow.run(0)
    if any_storage is not None:  # the next run goes on from superstep 3, on any instance
        last = (await any_storage.list_checkpoints())[-1]
        assert "doomed" not in last.shared_state
        rehydrated = build_blocking(any_storage, block_at=None)
        result = await rehydrated.run(checkpoint_id=last.checkpoint_id)
        assert result.get_outputs() == [PINGPONG_OUTPUT]


class SlowStorage(InMemoryCheckpointStorage):
    """Saves after a pause, in which a run could be cut short; says when it is saving."""

    def __init__(self) -> None:
        super().__init__()
        self.saving = False

    async def save(self, checkpoint) -> str:
        self.saving = True
        try:
            await asyncio.sleep(0.02)
            return await super().save(checkpoint)
        finally:
            self.saving = False


async def test_closing_a_stream_during_a_checkpoint_write_lets_the_write_finish():
    storage = SlowStorage()
    workflow = build_pingpong(storage)
    async with contextlib.aclosing(workflow.run(0, stream=True)) as events:
        async for event in events:
            if event.type == "executor_completed" and len(workflow.executors["ping"].seen) == 2:
                assert storage.saving  # superstep 3's checkpoint is being written
                break
    assert workflow.state is WorkflowRunState.CANCELLED
    saved = await storage.list_checkpoints()
    assert [c.superstep for c in saved] == [0, 1, 2, 3]  # whole, and nothing after it
    assert workflow.get_last_checkpoint_id() == saved[-1].checkpoint_id
    assert handler_calls(workflow) == 3
    result = await build_pingpong(storage).run(checkpoint_id=saved[-1].checkpoint_id)
    assert result.get_outputs() == [PINGPONG_OUTPUT]


# --------------------------------------------------------------------------- 3. duplicates
def test_two_handlers_for_one_message_type_are_refused_when_the_class_is_defined():
    with pytest.raises(WorkflowValidationError, match=r"executor class .*Twice has two @handler "
                       r"methods for messages of type str: Twice\.first and Twice\.second"):
        class Twice(Executor):
            @handler
            async def first(self, text: str, ctx: WorkflowContext) -> None:
                pass

            @handler
            async def second(self, text: str, ctx: WorkflowContext) -> None:
                pass


def test_a_subclass_handler_duplicating_an_inherited_one_is_refused_naming_both():
    class Base(Executor):
        @handler
        async def on_text(self, text: str | None, ctx: WorkflowContext) -> None:
            pass

    with pytest.raises(WorkflowValidationError,
                       match=r"type str \| None: Base\.on_text and Child\.also_text"):
        class Child(Base):
            @handler
            async def also_text(self, text: None | str, ctx: WorkflowContext) -> None:
                pass


def test_two_response_handlers_for_one_request_and_response_type_are_refused():
    with pytest.raises(WorkflowValidationError, match=r"two @response_handler methods for "
                       r"requests of type ApprovalRequest answered with bool: "
                       r"Asker\.decided and Asker\.decided_again"):
        class Asker(Executor):
            @handler
            async def ask(self, draft: str, ctx: WorkflowContext) -> None:
                pass

            @response_handler
            async def decided(self, request: ApprovalRequest, ok: bool,
                              ctx: WorkflowContext) -> None:
                pass

            @response_handler
            async def decided_again(self, request: ApprovalRequest, ok: bool,
                                    ctx: WorkflowContext) -> None:
                pass


def test_handlers_for_different_types_and_overrides_are_not_duplicates():
    class Base(Executor):
        @handler
        async def on_int(self, n: int, ctx: WorkflowContext) -> None:
            pass

        @handler
        async def on_bool(self, flag: bool, ctx: WorkflowContext) -> None:
            pass  # a subtype is another type: first-match routing decides (item 7)

    class Child(Base):
        @handler
        async def on_int(self, n: int, ctx: WorkflowContext) -> None:
            pass  # an override replaces the inherited handler

    assert [s.name for s in Child("c").handler_specs()] == ["on_int", "on_bool"]


def test_a_duplicate_hidden_behind_an_unresolved_annotation_is_refused_at_build(monkeypatch):
    class Later(Executor):  # "Ticket" does not exist yet when the class is defined
        @handler
        async def first(self, ticket: Ticket, ctx: WorkflowContext) -> None:  # noqa: F821
            pass

        @handler
        async def second(self, ticket: Ticket, ctx: WorkflowContext) -> None:  # noqa: F821
            pass

    monkeypatch.setitem(globals(), "Ticket", dict)
    with pytest.raises(WorkflowValidationError, match=r"Later\.first and Later\.second"):
        WorkflowBuilder(start_executor=Later("later")).build()


# --------------------------------------------------------------------------- 4. TypeVars
Text = TypeVar("Text", bound=str)
Anything = TypeVar("Anything")
Number = TypeVar("Number", int, float)


def test_a_handler_typed_with_a_bounded_typevar_is_refused_naming_the_bound():
    # It used to accept any message: an int reached a handler of TypeVar("T", bound=str).
    with pytest.raises(WorkflowValidationError, match=r"handler .*Bounded\.take annotates its "
                       r"message with the type variable Text \(bound to str\): .*annotate it "
                       r"with str instead"):
        class Bounded(Executor):
            @handler
            async def take(self, text: Text, ctx: WorkflowContext) -> None:
                pass


@pytest.mark.parametrize("annotation, instead", [
    (Anything, "Any"), (Number, "int | float"), (list[Text], "str"), (dict[str, Anything], "Any")])
def test_any_typevar_in_a_message_annotation_is_refused(annotation, instead):
    async def take(self, message, ctx: WorkflowContext) -> None:
        pass

    take.__annotations__ = {"message": annotation, "ctx": WorkflowContext}
    with pytest.raises(WorkflowValidationError, match=f"annotate it with {instead} instead"):
        type("Generic", (Executor,), {"take": handler(take)})


def test_typevars_in_what_a_handler_sends_yields_or_is_answered_with_are_refused():
    with pytest.raises(WorkflowValidationError, match="annotates its sent messages with the "
                                                      "type variable Text"):
        class Sends(Executor):
            @handler
            async def take(self, text: str, ctx: WorkflowContext[Text]) -> None:
                pass

    with pytest.raises(WorkflowValidationError, match="annotates its outputs with the type "
                                                      "variable Anything"):
        class Yields(Executor):
            @handler
            async def take(self, text: str, ctx: WorkflowContext[Never, Anything]) -> None:
                pass

    with pytest.raises(WorkflowValidationError, match=r"response handler .*Answered\.decided "
                                                      r"annotates its response"):
        class Answered(Executor):
            @handler
            async def ask(self, text: str, ctx: WorkflowContext) -> None:
                pass

            @response_handler
            async def decided(self, request: str, answer: Text, ctx: WorkflowContext) -> None:
                pass


def test_an_executor_function_typed_with_a_typevar_is_refused():
    async def relay(text: Text, ctx: WorkflowContext[str]) -> None:
        await ctx.send_message(text)

    with pytest.raises(WorkflowValidationError, match=r"executor function .*relay annotates "
                                                      r"its message .*\(bound to str\)"):
        executor(relay)


# --------------------------------------------------------------------------- 5. no edge
class Finisher(Executor):
    """Answers its own request, then sends a note though no edge leaves it (a MAF workflow's
    last step doing so). Keeps its answers through state-key hooks."""

    def __init__(self, id: str = "finisher") -> None:
        super().__init__(id)
        self.answers: list[bool] = []

    @handler
    async def ask(self, draft: str, ctx: WorkflowContext[str, str]) -> None:
        await ctx.request_info(ApprovalRequest("legal", draft), bool, request_id="legal")

    @response_handler
    async def decided(self, request: ApprovalRequest, ok: bool,
                      ctx: WorkflowContext[str, str]) -> None:
        self.answers.append(ok)
        await ctx.yield_output(f"{request.draft}: {ok}")
        await ctx.send_message(f"tell someone {request.draft} is {ok}")

    async def on_checkpointing(self, ctx: WorkflowContext) -> None:
        await ctx.queue_state_update("answers", list(self.answers))

    async def on_checkpoint_restored(self, ctx: WorkflowContext) -> None:
        self.answers = list(await ctx.read_state("answers", []))


async def test_a_message_sent_where_no_edge_leads_is_dropped_with_a_warning(any_storage):
    workflow = WorkflowBuilder(start_executor=Finisher(), checkpoint_storage=any_storage).build()
    await workflow.run("memo")
    result = await workflow.run(responses={"legal": True})
    assert result.get_outputs() == ["memo: True"] and result.get_final_state() is IDLE
    warnings = [event for event in result if event.type == "warning"]
    assert len(warnings) == 1 and isinstance(warnings[0], WorkflowWarningEvent)
    warning = warnings[0]
    assert (warning.executor_id, warning.message_type) == ("finisher", "str")
    assert warning.data == warning.message == (
        "dropped a message of type str sent by executor 'finisher': it has no outgoing edges")
    kinds = types_of(result)  # reported in the superstep that sent it, before its end
    assert kinds.index("executor_completed") < kinds.index("warning") < kinds.index(
        "superstep_completed")
    if any_storage is not None:
        last = await any_storage.load(checkpoint_infos(result)[-1].checkpoint_id)
        assert last.messages == [] and last.executor_states["finisher"] == {"answers": [True]}


async def test_a_message_edge_conditions_decline_is_dropped_without_a_warning():
    result = await build_switch(with_default=False).run(9)
    assert result.get_outputs() == [] and "warning" not in types_of(result)


async def test_streamed_and_observed_runs_see_the_warning_too():
    seen = []
    workflow = WorkflowBuilder(start_executor=Finisher()).build()
    await workflow.run("memo")
    streamed = await events_of(workflow.run(responses={"legal": False}, stream=True,
                                            on_event=seen.append))
    assert types_of(streamed) == types_of(seen) and "warning" in types_of(streamed)


# --------------------------------------------------------------------------- 6. re-run
class KeyTally(Executor):
    """Counts its messages (state-key hooks) and a run-wide total in shared state."""

    def __init__(self, id: str = "key") -> None:
        super().__init__(id)
        self.count = 0

    @handler
    async def take(self, word: str, ctx: WorkflowContext[str]) -> None:
        self.count += 1
        await ctx.set_shared_state("total", await ctx.get_shared_state("total", 0) + 1)
        await ctx.send_message(word)

    async def on_checkpointing(self, ctx: WorkflowContext) -> None:
        await ctx.queue_state_update("count", self.count)

    async def on_checkpoint_restored(self, ctx: WorkflowContext) -> None:
        self.count = await ctx.read_state("count", 0)


class DictTally(Executor):
    """Counts its messages (state-dict hooks) and yields both counts and the total."""

    def __init__(self, id: str = "dict") -> None:
        super().__init__(id)
        self.count = 0

    @handler
    async def take(self, word: str, ctx: WorkflowContext[Never, dict]) -> None:
        self.count += 1
        total = await ctx.get_shared_state("total", 0) + 1
        await ctx.set_shared_state("total", total)
        key = await ctx.get_shared_state("key_seen", [])
        await ctx.set_shared_state("key_seen", [*key, word])
        await ctx.yield_output({"word": word, "dict": self.count, "total": total})

    async def on_checkpoint_save(self) -> dict[str, Any]:
        return {"count": self.count}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self.count = state.get("count", 0)


def build_tally(storage: Any = None):
    key, tally = KeyTally(), DictTally()
    return (WorkflowBuilder(name="tally", start_executor=key, checkpoint_storage=storage)
            .add_edge(key, tally).build())


async def test_a_new_message_keeps_executor_and_shared_state_like_a_chat(any_storage):
    # It used to reset the instance: shared state, executor state and requests were lost.
    workflow = build_tally(any_storage)
    first = await workflow.run("hello")
    second = await workflow.run("again")
    assert first.get_outputs() == [{"word": "hello", "dict": 1, "total": 2}]
    assert second.get_outputs() == [{"word": "again", "dict": 2, "total": 4}]
    assert workflow.executors["key"].count == 2
    assert [e.superstep for e in second if e.type == "superstep_started"] == [1, 2]
    assert "warning" not in types_of(second)
    if any_storage is not None:  # the new message's checkpoints carry the kept state on
        entry = await any_storage.load(second[0].checkpoint.checkpoint_id)
        assert entry.superstep == 0
        assert entry.previous_checkpoint_id == checkpoint_infos(first)[-1].checkpoint_id
        assert entry.executor_states == {"key": {"count": 1}, "dict": {"count": 1}}
        assert entry.shared_state == {"total": 2, "key_seen": ["hello"]}
        rehydrated = await build_tally(any_storage).run(checkpoint_id=entry.checkpoint_id)
        assert rehydrated.get_outputs() == second.get_outputs()


async def test_a_new_message_while_requests_are_pending_warns_and_keeps_them_answerable(
        any_storage):
    workflow = build_approval(any_storage)
    await workflow.run("draft")
    second = await workflow.run("memo")
    warnings = [event for event in second if event.type == "warning"]
    assert len(warnings) == 1 and warnings[0].message_type == "str"
    assert warnings[0].message.startswith(
        f"a new message of type str started a run while 2 request(s) are pending "
        f"({LEGAL}, {FINANCE}); they stay pending and answerable with run(responses=...)")
    assert types_of(second)[:2] == ["started", "warning"]
    assert second.get_final_state() is IDLE_PENDING
    assert [r.request_id for r in workflow.pending_requests] == [
        LEGAL, FINANCE, "legal-memo", "finance-memo"]
    answered = await workflow.run(responses={LEGAL: True, FINANCE: False})
    assert answered.get_outputs() == [
        {"draft": "draft", "decisions": {"legal": True, "finance": False}}]
    assert answered.get_final_state() is IDLE_PENDING  # the memo's requests remain
    assert "warning" not in types_of(answered)  # answering is the normal way: no warning


@pytest.mark.parametrize("end", ["failed", "stopped"])
async def test_a_new_message_is_refused_while_an_unfinished_run_has_messages_in_flight(
        storage, end):
    workflow = build_pingpong(storage, fail_at=3 if end == "failed" else None)

    def stop_at_2(event) -> None:
        if event.type == "superstep_completed" and event.superstep == 2:
            workflow.request_stop()

    with contextlib.suppress(RuntimeError):
        await workflow.run(0, on_event=stop_at_2 if end == "stopped" else None)
    state = workflow.state
    saved = await storage.list_checkpoint_ids()
    with pytest.raises(WorkflowRunError, match=rf"still has 1 message\(s\) in flight from a run "
                                               rf"that did not finish \(state: {state}\); "
                                               rf"continue it with run\(checkpoint_id=...\)"):
        await workflow.run(0)
    assert workflow.state is state and await storage.list_checkpoint_ids() == saved
    # as the message says: the run goes on from its last checkpoint (a failed superstep
    # re-runs; pong fails only once)
    result = await workflow.run(checkpoint_id=saved[-1])
    assert result.get_outputs() == [PINGPONG_OUTPUT]


# --------------------------------------------------------------------------- 7. routing
async def test_the_first_handler_in_definition_order_takes_a_message():
    class FirstWins(Executor):
        @handler
        async def zeta(self, n: int, ctx: WorkflowContext[Never, str]) -> None:
            await ctx.yield_output("zeta")

        @handler
        async def alpha(self, value: object, ctx: WorkflowContext[Never, str]) -> None:
            await ctx.yield_output("alpha")

    workflow = WorkflowBuilder(start_executor=FirstWins("first")).build()
    # MAF tries handlers by method name and would pick alpha.
    assert (await workflow.run(3)).get_outputs() == ["zeta"]
    assert (await workflow.run("x")).get_outputs() == ["alpha"]


def test_inherited_handlers_come_before_a_subclass_s_own():
    class Base(Executor):
        @handler
        async def general(self, value: object, ctx: WorkflowContext) -> None:
            pass

    class Child(Base):
        @handler
        async def specific(self, n: int, ctx: WorkflowContext) -> None:
            pass

    assert Child("child").find_handler(1).name == "general"
