"""``WorkflowBuilder.build()``: the graph is validated and errors name the executors."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Never

import pytest

from workflows_app.engine import (Case, Default, FunctionExecutor, Workflow, WorkflowBuilder,
                                  WorkflowContext, WorkflowError, WorkflowValidationError)
from workflows_app.engine.encoding import is_registered

from .workflows import (Sink, build_chain, build_fan_in, build_pingpong, build_switch,
                        is_negative, is_zero)


async def _sends_int(n: int, ctx: WorkflowContext[int]) -> None:
    await ctx.send_message(n)


async def _sends_anything(n: int, ctx: WorkflowContext) -> None:
    await ctx.send_message(str(n))


async def _takes_str(text: str, ctx: WorkflowContext[Never, str]) -> None:
    await ctx.yield_output(text)


async def _takes_str_list(items: list[str], ctx: WorkflowContext[Never, list]) -> None:
    await ctx.yield_output(items)


def fx(func, id):
    return FunctionExecutor(func, id=id)


def test_validation_errors_are_workflow_errors():
    assert issubclass(WorkflowValidationError, WorkflowError)


def test_no_start_executor():
    with pytest.raises(WorkflowValidationError, match="no start executor"):
        WorkflowBuilder(name="nothing").build()
    with pytest.raises(WorkflowValidationError, match="no start executor"):
        # edges alone do not make a start
        WorkflowBuilder().add_edge(Sink("a"), Sink("b")).build()


def test_duplicate_ids_name_the_id():
    start = Sink("start")
    builder = WorkflowBuilder(start_executor=start).add_edge(start, Sink("twin"))
    builder.add_edge(start, Sink("twin"))  # a different object with the same id
    with pytest.raises(WorkflowValidationError, match="share the id.*twin"):
        builder.build()


def test_the_same_executor_may_appear_in_several_edges():
    start, middle, end = fx(_sends_int, "start"), fx(_sends_int, "middle"), Sink("end")
    workflow = (WorkflowBuilder(start_executor=start)
                .add_edge(start, middle).add_edge(middle, end).add_edge(start, end).build())
    assert set(workflow.executors) == {"start", "middle", "end"}


def test_unreachable_executors_are_named():
    start = Sink("start")
    builder = (WorkflowBuilder(start_executor=start)
               .add_edge(start, Sink("reached"))
               .add_edge(Sink("island"), Sink("beyond")))
    with pytest.raises(WorkflowValidationError) as caught:
        builder.build()
    message = str(caught.value)
    assert "island" in message and "beyond" in message and "'start'" in message
    assert "reached" not in message.split("cannot be reached")[0]


def test_edge_type_mismatch_names_both_executors_and_types():
    source, target = fx(_sends_int, "numbers"), fx(_takes_str, "words")
    with pytest.raises(WorkflowValidationError) as caught:
        WorkflowBuilder(start_executor=source).add_edge(source, target).build()
    message = str(caught.value)
    assert "numbers -> words" in message
    assert "'numbers' sends int" in message and "'words' handles only str" in message


def test_undeclared_senders_are_checked_at_run_time_not_build_time():
    source, target = fx(_sends_anything, "loose"), fx(_takes_str, "words")
    workflow = WorkflowBuilder(start_executor=source).add_edge(source, target).build()
    assert isinstance(workflow, Workflow)


def test_fan_in_target_must_accept_a_list_of_what_the_sources_send():
    def build(target):
        a, b = fx(_sends_int, "a"), fx(_sends_int, "b")
        start = fx(_sends_int, "start")
        return (WorkflowBuilder(start_executor=start).add_fan_out_edges(start, [a, b])
                .add_fan_in_edges([a, b], target).build())

    with pytest.raises(WorkflowValidationError, match=r"a -> join: 'a' sends list\[int\]"):
        build(fx(_takes_str_list, "join"))

    async def takes_int_list(items: list[int], ctx: WorkflowContext) -> None:
        pass

    assert build(fx(takes_int_list, "join")).graph.fan_in_groups


@pytest.mark.parametrize("cases, pattern", [
    ([Default(Sink("d"))], "switch-case group of 'router' needs at least one Case"),
    ([Case(is_zero, Sink("z")), Default(Sink("d")), Default(Sink("e"))], "at most one Default"),
    ([Default(Sink("d")), Case(is_zero, Sink("z"))], "placed last"),
    ([], "needs at least one Case"),
])
def test_switch_case_rules(cases, pattern):
    router = fx(_sends_int, "router")
    with pytest.raises(WorkflowValidationError, match=pattern):
        WorkflowBuilder(start_executor=router).add_switch_case_edge_group(router, cases)


def test_switch_case_takes_only_case_and_default():
    router = fx(_sends_int, "router")
    with pytest.raises(WorkflowValidationError, match="take Case"):
        WorkflowBuilder(start_executor=router).add_switch_case_edge_group(
            router, [Case(is_zero, Sink("z")), Sink("not a case")])


def test_switch_case_targets_are_type_checked():
    router = fx(_sends_int, "router")
    with pytest.raises(WorkflowValidationError, match="router -> words"):
        (WorkflowBuilder(start_executor=router)
         .add_switch_case_edge_group(router, [Case(is_negative, fx(_takes_str, "words")),
                                              Default(Sink("rest"))])
         .build())


def test_switch_case_without_default_builds():
    workflow = build_switch(with_default=False)
    assert set(workflow.executors) == {"router", "negative", "zero"}


@pytest.mark.parametrize("call, pattern", [
    (lambda b, s: b.add_fan_out_edges(s, []), "add_fan_out_edges targets must not be empty"),
    (lambda b, s: b.add_fan_in_edges([], s), "add_fan_in_edges sources must not be empty"),
    (lambda b, s: b.add_multi_selection_edge_group(s, [], lambda m, t: t), "must not be empty"),
    (lambda b, s: b.add_chain([s]), "add_chain needs at least two executors"),
])
def test_empty_groups_are_refused(call, pattern):
    start = Sink("start")
    with pytest.raises(WorkflowValidationError, match=pattern):
        call(WorkflowBuilder(start_executor=start), start)


def test_a_group_naming_an_executor_twice_is_refused():
    start, a = Sink("start"), Sink("a")
    with pytest.raises(WorkflowValidationError, match=r"name an executor twice: \['a', 'a'\]"):
        WorkflowBuilder(start_executor=start).add_fan_out_edges(start, [a, a])


def test_non_executors_are_refused():
    start = Sink("start")
    with pytest.raises(WorkflowValidationError, match="expected an Executor"):
        WorkflowBuilder(start_executor=start).add_edge(start, "not an executor")


@pytest.mark.parametrize("bad", [0, -1, 2.5, "10"])
def test_max_iterations_must_be_a_positive_int(bad):
    with pytest.raises(WorkflowValidationError, match="max_iterations"):
        WorkflowBuilder(start_executor=Sink("s"), max_iterations=bad).build()


def test_add_chain_makes_consecutive_edges():
    workflow = build_chain()
    assert [(g.kind, g.sources, g.targets) for g in workflow.edge_groups] == [
        ("direct", ["upper"], ["exclaim"]), ("direct", ["exclaim"], ["echo"])]


def test_workflow_name_defaults_to_the_start_executor_id():
    assert WorkflowBuilder(start_executor=Sink("only")).build().name == "only"
    assert build_pingpong().name == "pingpong"


def test_describe_and_graph_signature_are_stable_across_instances():
    first, second = build_fan_in(), build_fan_in()
    assert first.graph_signature_hash == second.graph_signature_hash
    described = first.describe()
    assert described["start_executor_id"] == "split"
    assert described["input_types"] == ["str"]
    assert {g["kind"] for g in described["edge_groups"]} == {"fan_out", "direct", "fan_in"}
    assert build_chain().graph_signature_hash != first.graph_signature_hash


@dataclass
class Inner:
    value: int


@dataclass
class Outer:
    inner: list[Inner]


async def _takes_outer(message: Outer, ctx: WorkflowContext) -> None:
    pass


def test_build_registers_annotated_message_types_and_their_field_types():
    assert not is_registered(Outer) and not is_registered(Inner)
    WorkflowBuilder(start_executor=fx(_takes_outer, "outer")).build()
    assert is_registered(Outer) and is_registered(Inner)
