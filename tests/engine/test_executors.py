"""Executors: typed handler routing, ``@executor`` functions, declared send/yield types."""

from __future__ import annotations

from typing import Any, Never

import pytest

from workflows_app.engine import (Executor, FunctionExecutor, WorkflowBuilder, WorkflowContext,
                                  WorkflowError, WorkflowEvent, WorkflowRunError,
                                  WorkflowRunState, WorkflowValidationError, executor, handler,
                                  response_handler)

from .workflows import Sink, types_of


class Router(Executor):
    """Handlers in definition order: int, then list[int], list[str], then anything."""

    @handler
    async def on_int(self, n: int, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(f"int:{n!r}")

    @handler
    async def on_ints(self, items: list[int], ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(f"ints:{items!r}")

    @handler
    async def on_strs(self, items: list[str], ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(f"strs:{items!r}")

    @handler
    async def on_other(self, value: object, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(f"other:{value!r}")


def single(executor_: Executor):
    return WorkflowBuilder(start_executor=executor_).build()


@pytest.mark.parametrize("message, expected", [
    (3, "int:3"),
    (True, "int:True"),  # bool is an int: the first matching handler wins
    ([1, 2], "ints:[1, 2]"),
    (["a"], "strs:['a']"),
    ([1, "a"], "other:[1, 'a']"),  # containers are checked deeply
    ("text", "other:'text'"),
])
async def test_messages_are_routed_to_the_first_handler_whose_type_accepts_them(message, expected):
    result = await single(Router("router")).run(message)
    assert result.get_outputs() == [expected]


def test_find_handler_and_can_handle():
    router = Router("router")
    assert router.find_handler(5).name == "on_int"
    assert router.find_handler([1]).name == "on_ints"
    assert router.find_handler(["x"]).name == "on_strs"  # not cached from list[int] routing
    assert router.can_handle(object())
    assert Sink("s").can_handle(None)
    only_int = FunctionExecutor(_takes_int, id="only_int")
    assert only_int.can_handle(1) and not only_int.can_handle("1")


async def _takes_int(n: int, ctx: WorkflowContext) -> None:
    await ctx.yield_output(n * 10)


async def test_union_and_optional_annotations_route():
    class Maybe(Executor):
        @handler
        async def take(self, value: int | str | None, ctx: WorkflowContext[Never, Any]) -> None:
            await ctx.yield_output(value)

    maybe = Maybe("maybe")
    assert maybe.can_handle(None) and maybe.can_handle("x") and maybe.can_handle(1)
    assert not maybe.can_handle(1.5)
    assert (await single(maybe).run("x")).get_outputs() == ["x"]


async def test_start_message_no_handler_accepts_is_refused_before_anything_runs():
    workflow = single(FunctionExecutor(_takes_int, id="only_int"))
    with pytest.raises(WorkflowRunError, match="only_int.*does not accept a str.*int"):
        await workflow.run("not an int")
    assert workflow.state is None  # nothing started
    assert (await workflow.run(2)).get_outputs() == [20]


async def test_executor_decorator_bare_and_with_id():
    @executor
    async def double(n: int, ctx: WorkflowContext[Never, int]) -> None:
        await ctx.yield_output(n * 2)

    @executor(id="triple_it")
    async def triple(n: int, ctx: WorkflowContext[Never, int]) -> None:
        await ctx.yield_output(n * 3)

    assert isinstance(double, FunctionExecutor) and double.id == "double"
    assert triple.id == "triple_it"
    assert double.type_name.startswith("function:") and double.type_name.endswith("double")
    assert double.input_types == [int]
    assert double.yield_types() == (int,)
    assert (await single(double).run(4)).get_outputs() == [8]
    assert (await single(triple).run(4)).get_outputs() == [12]


async def test_function_executor_without_context_parameter():
    seen = []

    @executor(id="quiet")
    async def quiet(n: int) -> None:
        seen.append(n)

    result = await single(quiet).run(7)
    assert seen == [7]
    assert result.get_final_state() is WorkflowRunState.IDLE


def test_handlers_must_be_coroutines():
    with pytest.raises(TypeError, match="@handler needs an 'async def'"):
        handler(lambda self, m, ctx: None)
    with pytest.raises(TypeError, match="@response_handler needs an 'async def'"):
        response_handler(lambda self, r, v, ctx: None)
    with pytest.raises(TypeError, match="@executor needs an 'async def'"):
        executor(lambda m: None)


def test_unannotated_handler_is_reported_at_build():
    class Sloppy(Executor):
        @handler
        async def take(self, message, ctx) -> None:
            pass

    with pytest.raises(WorkflowValidationError, match=r"handler .*Sloppy\.take must annotate"):
        single(Sloppy("sloppy"))


def test_executor_ids_must_be_non_empty_strings():
    for bad in ("", None, 3):
        with pytest.raises(WorkflowValidationError, match="non-empty string"):
            Sink(bad)


def test_executor_without_handlers_is_refused_at_build():
    class Empty(Executor):
        pass

    start = Sink("start")
    with pytest.raises(WorkflowValidationError, match="'empty' has no @handler"):
        WorkflowBuilder(start_executor=start).add_edge(start, Empty("empty")).build()


async def test_subclasses_inherit_handlers_and_can_override_them():
    class Base(Executor):
        @handler
        async def on_int(self, n: int, ctx: WorkflowContext[Never, str]) -> None:
            await ctx.yield_output("base")

        @handler
        async def on_str(self, s: str, ctx: WorkflowContext[Never, str]) -> None:
            await ctx.yield_output("base-str")

    class Child(Base):
        @handler
        async def on_int(self, n: int, ctx: WorkflowContext[Never, str]) -> None:
            await ctx.yield_output("child")

    child = Child("child")
    assert (await single(child).run(1)).get_outputs() == ["child"]
    assert (await single(Child("c2")).run("s")).get_outputs() == ["base-str"]
    assert [s.name for s in child.handler_specs()] == ["on_int", "on_str"]


async def test_sending_an_undeclared_type_fails_the_run_naming_executor_and_handler():
    @executor(id="liar")
    async def liar(n: int, ctx: WorkflowContext[int]) -> None:
        await ctx.send_message("a string")

    workflow = WorkflowBuilder(start_executor=liar).add_edge(liar, Sink("sink")).build()
    events = []
    with pytest.raises(WorkflowError, match="'liar' sent a str but its handler 'liar' declares it sends int"):
        async for event in workflow.run(1, stream=True):
            events.append(event)
    failed = [e for e in events if e.type == "executor_failed"]
    assert [e.executor_id for e in failed] == ["liar"]
    assert events[-1].type == "status" and events[-1].state is WorkflowRunState.FAILED


async def test_yielding_an_undeclared_type_fails_the_run():
    @executor(id="yields_int")
    async def yields_int(n: int, ctx: WorkflowContext[Never, int]) -> None:
        await ctx.yield_output("not an int")

    with pytest.raises(WorkflowError, match="'yields_int' yielded a str .* declares it yields int"):
        await single(yields_int).run(1)


async def test_never_send_type_refuses_every_message():
    @executor(id="mute")
    async def mute(n: int, ctx: WorkflowContext[Never]) -> None:
        await ctx.send_message(n)

    with pytest.raises(WorkflowError, match=r"declares it sends nothing \(Never\)"):
        await single(mute).run(1)


async def test_custom_events_reach_the_caller_in_order():
    class Progress(WorkflowEvent):
        type = "progress"

    @executor(id="reporter")
    async def reporter(n: int, ctx: WorkflowContext[Never, int]) -> None:
        await ctx.add_event(Progress(f"{n}%"))
        await ctx.yield_output(n)

    result = await single(reporter).run(50)
    kinds = types_of(result)
    assert kinds.index("progress") < kinds.index("output")
    assert [e.data for e in result if e.type == "progress"] == ["50%"]


async def test_add_event_refuses_non_events():
    @executor(id="bad_event")
    async def bad_event(n: int, ctx: WorkflowContext) -> None:
        await ctx.add_event({"not": "an event"})

    with pytest.raises(TypeError, match="add_event"):
        await single(bad_event).run(1)


def test_describe_lists_types_and_requests():
    from .workflows import Approver

    described = Approver("approver").describe()
    assert described["id"] == "approver"
    assert described["input_types"] == ["str"]
    assert described["output_types"] == ["str"]
    assert described["yield_types"] == ["dict"]
    assert described["requests"] == [{"request_type": "ApprovalRequest", "response_type": "bool"}]
    assert described["type"].endswith("workflows.Approver")
