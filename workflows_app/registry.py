"""Workflow definitions registered in code.

A definition is a factory that returns a freshly built engine ``Workflow`` (a new instance
each call, because an instance holds its run's state). Register one with::

    @register_workflow("review", title="Document review")
    def build_review() -> Workflow: ...

Modules listed in the ``STEPSTONE_WORKFLOW_MODULES`` setting are imported at start-up
(``autodiscover``), and ``services.sync_workflows`` mirrors the registry into ``Workflow`` rows.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from typing import Callable

from .engine import Workflow


class UnknownWorkflow(LookupError):
    """No workflow definition is registered under that name."""


@dataclass(frozen=True)
class WorkflowDefinition:
    name: str
    title: str
    description: str
    factory: Callable[[], Workflow]

    def build(self) -> Workflow:
        """A new engine workflow; its ``name`` must be the registered name (checkpoints
        are filed under it)."""
        workflow = self.factory()
        if not isinstance(workflow, Workflow):
            raise TypeError(f"the factory of workflow '{self.name}' returned {workflow!r}, "
                            f"not a built Workflow")
        if workflow.name != self.name:
            raise ValueError(f"the factory of workflow '{self.name}' built a workflow named "
                             f"'{workflow.name}'; pass name='{self.name}' to WorkflowBuilder")
        return workflow


_definitions: dict[str, WorkflowDefinition] = {}


def register_workflow(name: str, *, title: str | None = None, description: str = ""):
    """Class the decorated zero-argument factory as the definition of workflow ``name``."""
    def decorator(factory: Callable[[], Workflow]) -> Callable[[], Workflow]:
        _definitions[name] = WorkflowDefinition(
            name, title or name.replace("-", " ").replace("_", " ").capitalize(),
            description or (factory.__doc__ or "").strip(), factory)
        return factory
    return decorator


def get_definition(name: str) -> WorkflowDefinition:
    try:
        return _definitions[name]
    except KeyError:
        raise UnknownWorkflow(f"no workflow named '{name}' is registered "
                              f"(registered: {', '.join(sorted(_definitions)) or 'none'})") from None


def all_definitions() -> list[WorkflowDefinition]:
    return [_definitions[name] for name in sorted(_definitions)]


_build_errors: dict[str, str] = {}


def autodiscover(modules: list[str]) -> None:
    """Import the modules that register workflows, and build each definition once.

    Building registers the types named in handler annotations for checkpoint decoding, so
    every process (web, worker, shell) can read any run's checkpoints and requests. A
    definition that fails to build is reported by the ``workflows_app.E001`` system check.
    """
    for module in modules:
        importlib.import_module(module)
    _build_errors.clear()
    for definition in all_definitions():
        try:
            definition.build()
        except Exception as error:
            _build_errors[definition.name] = f"{type(error).__name__}: {error}"


def build_errors() -> dict[str, str]:
    """Definitions whose factory failed at start-up, with the error."""
    return dict(_build_errors)
