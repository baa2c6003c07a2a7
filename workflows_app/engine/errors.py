"""The engine's exceptions: one small hierarchy, rooted at ``WorkflowError``."""

from __future__ import annotations


class WorkflowError(Exception):
    """Base class of every error the engine raises on purpose."""


class WorkflowValidationError(WorkflowError):
    """The graph given to ``WorkflowBuilder.build()`` is not a valid workflow."""


class WorkflowConvergenceError(WorkflowError):
    """The run reached ``max_iterations`` supersteps with messages still pending."""


class WorkflowCheckpointError(WorkflowError):
    """A checkpoint cannot be written, found, decoded or restored into this workflow."""


class WorkflowRunError(WorkflowError):
    """A ``run()`` call is not valid for the workflow's current state (bad arguments,
    unknown request ids, wrong response types, a run already in progress)."""

