"""Edges: how a message sent by one executor reaches others.

Edges come in groups, each created by one ``WorkflowBuilder`` call. A group routes a sent
message to zero or more targets; only targets with a handler for the message's type receive
it. Conditions and selection functions are plain (synchronous) callables.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from .executors import Executor


def callable_name(func: Callable | None) -> str | None:
    """The stable name a condition is recorded under in the graph signature."""
    if func is None:
        return None
    module = getattr(func, "__module__", None) or ""
    name = getattr(func, "__qualname__", None) or type(func).__qualname__
    return f"{module}.{name}" if module else name


@dataclass(frozen=True)
class Case:
    """A branch of a switch-case group: messages for which ``condition(message)`` is true
    go to ``target`` (the first matching case wins)."""

    condition: Callable[[Any], bool]
    target: Executor


@dataclass(frozen=True)
class Default:
    """The branch of a switch-case group taken when no ``Case`` matches."""

    target: Executor


class EdgeGroup:
    """A set of edges created together. ``route`` picks the targets of one message."""

    kind = "edge"

    def __init__(self, sources: list[str], targets: list[str]) -> None:
        self.sources = sources
        self.targets = targets

    @property
    def edges(self) -> list[tuple[str, str]]:
        return [(s, t) for s in self.sources for t in self.targets]

    def route(self, data: Any) -> list[str]:
        """The targets ``data`` is meant for, before type filtering (override per kind)."""
        return list(self.targets)

    def conditions(self) -> list[str | None]:
        return []

    def describe(self) -> dict[str, Any]:
        described = {"kind": self.kind, "sources": list(self.sources), "targets": list(self.targets)}
        conditions = self.conditions()
        if any(c is not None for c in conditions):
            described["conditions"] = conditions
        return described


class DirectEdge(EdgeGroup):
    """One edge, optionally guarded by ``condition(message) -> bool``."""

    kind = "direct"

    def __init__(self, source: str, target: str, condition: Callable[[Any], bool] | None = None):
        super().__init__([source], [target])
        self.condition = condition

    def route(self, data: Any) -> list[str]:
        if self.condition is None or self.condition(data):
            return self.targets
        return []

    def conditions(self) -> list[str | None]:
        return [callable_name(self.condition)]


class FanOutEdgeGroup(EdgeGroup):
    """One source to many targets: every target, or those ``selection_func(message,
    target_ids)`` returns (a multi-selection group)."""

    kind = "fan_out"

    def __init__(self, source: str, targets: list[str],
                 selection_func: Callable[[Any, list[str]], list[str]] | None = None):
        super().__init__([source], targets)
        self.selection_func = selection_func
        if selection_func is not None:
            self.kind = "multi_selection"

    def route(self, data: Any) -> list[str]:
        if self.selection_func is None:
            return self.targets
        selected = self.selection_func(data, list(self.targets))
        unknown = [t for t in selected if t not in self.targets]
        if unknown:
            raise ValueError(
                f"selection function {callable_name(self.selection_func)} returned {unknown}, "
                f"which are not targets of this group ({self.targets})")
        return list(dict.fromkeys(selected))

    def conditions(self) -> list[str | None]:
        return [callable_name(self.selection_func)]


class SwitchCaseEdgeGroup(EdgeGroup):
    """One source; the message goes to the target of the first matching ``Case``, else to
    the ``Default`` target (or nowhere if there is none)."""

    kind = "switch_case"

    def __init__(self, source: str, cases: list[Case], default: Default | None):
        targets = [c.target.id for c in cases] + ([default.target.id] if default else [])
        super().__init__([source], list(dict.fromkeys(targets)))
        self.cases = [(c.condition, c.target.id) for c in cases]
        self.default = default.target.id if default else None

    def route(self, data: Any) -> list[str]:
        for condition, target in self.cases:
            if condition(data):
                return [target]
        return [self.default] if self.default else []

    def conditions(self) -> list[str | None]:
        # Order matters (first match wins), so the signature records it.
        return [f"{callable_name(c)}->{t}" for c, t in self.cases] + (
            [f"default->{self.default}"] if self.default else [])

    def describe(self) -> dict[str, Any]:
        """As every group, plus ``cases``: each branch in matching order as
        ``{"condition": name, "target": id}``, the default's condition being None. (Only
        ``conditions()`` enters the graph signature, so this adds nothing to its hash.)"""
        described = super().describe()
        described["cases"] = [{"condition": callable_name(c), "target": t}
                              for c, t in self.cases]
        if self.default:
            described["cases"].append({"condition": None, "target": self.default})
        return described


class FanInEdgeGroup(EdgeGroup):
    """Many sources to one target. Messages are buffered per source; once every source has
    sent at least one, the target receives them all as one list, in source order."""

    kind = "fan_in"

    def __init__(self, sources: list[str], target: str):
        super().__init__(sources, [target])

    @property
    def buffer_id(self) -> str:
        """The key of this group's buffer in checkpoints."""
        return f"fan_in:{','.join(self.sources)}->{self.targets[0]}"
