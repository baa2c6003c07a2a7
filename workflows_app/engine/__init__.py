"""Stepstone's workflow engine: supersteps, checkpoints, resume and rehydrate.

Pure Python (it never imports Django). See SPEC.md section 1 for the contract.
"""

from .builder import WorkflowBuilder
from .checkpoints import WorkflowCheckpoint
from .context import WorkflowContext
from .edges import Case, Default
from .edits import CheckpointEditError, edit_checkpoint
from .encoding import register_checkpoint_type
from .errors import (WorkflowCheckpointError, WorkflowConvergenceError, WorkflowError,
                     WorkflowRunError, WorkflowValidationError)
from .events import (CheckpointInfo, ExecutorCompletedEvent, ExecutorFailedEvent,
                     ExecutorInvokedEvent, RequestInfoEvent, SuperstepCompletedEvent,
                     SuperstepStartedEvent, WorkflowEvent, WorkflowFailedEvent,
                     WorkflowOutputEvent, WorkflowRunResult, WorkflowRunState,
                     WorkflowStartedEvent, WorkflowStatusEvent, WorkflowStoppedEvent,
                     WorkflowWarningEvent)
from .executors import Executor, FunctionExecutor, executor, handler, response_handler
from .storage import CheckpointStorage, FileCheckpointStorage, InMemoryCheckpointStorage
from .subworkflows import WorkflowExecutor
from .workflow import Workflow

__all__ = [
    "Executor", "FunctionExecutor", "handler", "response_handler", "executor",
    "WorkflowExecutor",
    "WorkflowBuilder", "Workflow", "WorkflowContext", "Case", "Default",
    "WorkflowEvent", "WorkflowRunState", "WorkflowRunResult", "CheckpointInfo",
    "WorkflowStartedEvent", "WorkflowStatusEvent", "SuperstepStartedEvent",
    "SuperstepCompletedEvent", "ExecutorInvokedEvent", "ExecutorCompletedEvent",
    "ExecutorFailedEvent", "WorkflowOutputEvent", "RequestInfoEvent", "WorkflowFailedEvent",
    "WorkflowStoppedEvent", "WorkflowWarningEvent",
    "edit_checkpoint", "CheckpointEditError",
    "WorkflowCheckpoint", "CheckpointStorage", "InMemoryCheckpointStorage",
    "FileCheckpointStorage", "register_checkpoint_type",
    "WorkflowError", "WorkflowCheckpointError", "WorkflowConvergenceError",
    "WorkflowValidationError", "WorkflowRunError",
]
