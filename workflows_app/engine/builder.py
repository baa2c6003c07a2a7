"""``WorkflowBuilder``: assemble executors and edges, then ``build()`` a validated workflow.

``build()`` refuses graphs that cannot run as drawn (no start, duplicate ids, executors the
start cannot reach, edges whose source sends types the target has no handler for) with a
``WorkflowValidationError`` naming the executors involved. It also registers the message,
request and response types named in handler annotations for checkpoint encoding.
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, Callable, Iterable

from .edges import (Case, Default, DirectEdge, EdgeGroup, FanInEdgeGroup, FanOutEdgeGroup,
                    SwitchCaseEdgeGroup)
from .encoding import is_registered, register_checkpoint_type, registrable
from .errors import WorkflowValidationError
from .executors import Executor
from .storage import CheckpointStorage
from .typing_utils import is_subtype, iter_classes, type_name
from .workflow import Workflow


class WorkflowBuilder:
    def __init__(self, name: str | None = None, start_executor: Executor | None = None,
                 checkpoint_storage: CheckpointStorage | None = None, max_iterations: int = 100,
                 description: str = "") -> None:
        self.name = name
        self.description = description
        self.checkpoint_storage = checkpoint_storage
        self.max_iterations = max_iterations
        self._executors: dict[str, Executor] = {}
        self._duplicates: list[str] = []
        self._groups: list[EdgeGroup] = []
        self._start: Executor | None = None
        if start_executor is not None:
            self.set_start_executor(start_executor)

    # -- assembling -----------------------------------------------------------------------
    def _add(self, executor: Any) -> str:
        if not isinstance(executor, Executor):
            raise WorkflowValidationError(
                f"expected an Executor (or an @executor function), got {executor!r}")
        known = self._executors.get(executor.id)
        if known is None:
            self._executors[executor.id] = executor
        elif known is not executor and executor.id not in self._duplicates:
            self._duplicates.append(executor.id)
        return executor.id

    def set_start_executor(self, executor: Executor) -> "WorkflowBuilder":
        self._add(executor)
        self._start = executor
        return self

    def add_edge(self, source: Executor, target: Executor,
                 condition: Callable[[Any], bool] | None = None) -> "WorkflowBuilder":
        """``source`` → ``target``; with ``condition``, only messages it accepts pass."""
        self._groups.append(DirectEdge(self._add(source), self._add(target), condition))
        return self

    def add_fan_out_edges(self, source: Executor, targets: Iterable[Executor]) -> "WorkflowBuilder":
        """Every message of ``source`` goes to each target that has a handler for it."""
        ids = self._distinct([self._add(t) for t in targets], "add_fan_out_edges targets")
        self._groups.append(FanOutEdgeGroup(self._add(source), ids))
        return self

    def add_fan_in_edges(self, sources: Iterable[Executor], target: Executor) -> "WorkflowBuilder":
        """``target`` receives a list once every source has sent (sources in this order)."""
        ids = self._distinct([self._add(s) for s in sources], "add_fan_in_edges sources")
        self._groups.append(FanInEdgeGroup(ids, self._add(target)))
        return self

    def add_switch_case_edge_group(self, source: Executor,
                                   cases: Iterable[Case | Default]) -> "WorkflowBuilder":
        """Each message goes to the first ``Case`` whose condition holds, else the ``Default``."""
        cases = list(cases)
        plain = [c for c in cases if isinstance(c, Case)]
        defaults = [c for c in cases if isinstance(c, Default)]
        if len(plain) + len(defaults) != len(cases):
            raise WorkflowValidationError("switch-case groups take Case(...) and Default(...) items")
        if not plain or len(defaults) > 1 or (defaults and cases[-1] is not defaults[0]):
            raise WorkflowValidationError(
                f"the switch-case group of '{getattr(source, 'id', source)}' needs at least one "
                f"Case and at most one Default, placed last")
        for case in cases:
            self._add(case.target)
        self._groups.append(SwitchCaseEdgeGroup(self._add(source), plain,
                                                defaults[0] if defaults else None))
        return self

    def add_multi_selection_edge_group(
            self, source: Executor, targets: Iterable[Executor],
            selection_func: Callable[[Any, list[str]], list[str]]) -> "WorkflowBuilder":
        """Each message goes to the targets ``selection_func(message, target_ids)`` returns."""
        ids = self._distinct([self._add(t) for t in targets], "multi-selection targets")
        self._groups.append(FanOutEdgeGroup(self._add(source), ids, selection_func))
        return self

    def add_chain(self, executors: Iterable[Executor]) -> "WorkflowBuilder":
        """Edges between consecutive executors: ``[a, b, c]`` → a→b, b→c."""
        chain = list(executors)
        if len(chain) < 2:
            raise WorkflowValidationError("add_chain needs at least two executors")
        for source, target in zip(chain, chain[1:]):
            self.add_edge(source, target)
        return self

    @staticmethod
    def _distinct(ids: list[str], what: str) -> list[str]:
        if not ids:
            raise WorkflowValidationError(f"{what} must not be empty")
        if len(set(ids)) != len(ids):
            raise WorkflowValidationError(f"{what} name an executor twice: {ids}")
        return ids

    # -- building -------------------------------------------------------------------------
    def build(self) -> Workflow:
        """Validate the graph and return a ``Workflow``; raises ``WorkflowValidationError``."""
        if self._start is None:
            raise WorkflowValidationError("no start executor: pass start_executor= to the builder")
        if self._duplicates:
            raise WorkflowValidationError(
                f"two different executors share the id(s) {', '.join(self._duplicates)}")
        if not isinstance(self.max_iterations, int) or self.max_iterations < 1:
            raise WorkflowValidationError(f"max_iterations must be a positive int, "
                                          f"got {self.max_iterations!r}")
        for executor in self._executors.values():
            if not executor.handler_specs() and not executor.response_handler_specs():
                raise WorkflowValidationError(
                    f"executor '{executor.id}' has no @handler methods")
        self._check_reachable()
        self._check_edge_types()
        self._register_annotated_types()
        return Workflow(
            name=self.name or self._start.id, description=self.description,
            executors=dict(self._executors), start_executor_id=self._start.id,
            edge_groups=list(self._groups), max_iterations=self.max_iterations,
            checkpoint_storage=self.checkpoint_storage)

    def _check_reachable(self) -> None:
        seen, frontier = {self._start.id}, [self._start.id]
        while frontier:
            current = frontier.pop()
            for group in self._groups:
                if current in group.sources:
                    for target in group.targets:
                        if target not in seen:
                            seen.add(target)
                            frontier.append(target)
        unreachable = [eid for eid in self._executors if eid not in seen]
        if unreachable:
            raise WorkflowValidationError(
                f"executor(s) {', '.join(unreachable)} cannot be reached from the start "
                f"executor '{self._start.id}'")

    def _check_edge_types(self) -> None:
        for group in self._groups:
            for source_id, target_id in group.edges:
                source, target = self._executors[source_id], self._executors[target_id]
                sent = source.send_types()
                if sent is None:
                    continue  # undeclared: checked at run time instead
                accepted = target.input_types
                if isinstance(group, FanInEdgeGroup):
                    sent = tuple(list[t] for t in sent)
                if not any(is_subtype(s, a) for s in sent for a in accepted):
                    raise WorkflowValidationError(
                        f"edge {source_id} -> {target_id}: '{source_id}' sends "
                        f"{' | '.join(type_name(t) for t in sent) or 'nothing (Never)'} but "
                        f"'{target_id}' handles only "
                        f"{', '.join(type_name(t) for t in accepted) or 'responses'}")

    def _register_annotated_types(self) -> None:
        annotations: list[Any] = []
        for executor in self._executors.values():
            for spec in executor.handler_specs():
                annotations += [spec.message_type, *(spec.send_types or ()), *(spec.yield_types or ())]
            for rspec in executor.response_handler_specs():
                annotations += [rspec.request_type, rspec.response_type,
                                *(rspec.send_types or ()), *(rspec.yield_types or ())]
        seen: set[type] = set()
        while annotations:
            for cls in iter_classes(annotations.pop()):
                if cls in seen or not registrable(cls):
                    continue
                seen.add(cls)
                if not is_registered(cls):
                    register_checkpoint_type(cls)
                if dataclasses.is_dataclass(cls):  # field types travel inside it
                    try:
                        annotations += list(typing.get_type_hints(cls).values())
                    except Exception:
                        pass  # unresolvable field annotations: register those by hand
