"""The states of runs, checkpoints and requests, as ``TextChoices``; how a worker's task ended
(``Outcome``); and the kinds of operator actions the activity trail records."""

import enum

from django.db import models


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    WAITING = "waiting", "Waiting on requests"  # idle with pending requests
    COMPLETED = "completed", "Completed"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"

    @classmethod
    def active(cls) -> list[str]:
        """States in which a worker owns, or is about to own, the run."""
        return [cls.QUEUED, cls.RUNNING]

    @classmethod
    def finished(cls) -> list[str]:
        return [cls.COMPLETED, cls.FAILED, cls.CANCELLED]


class Outcome(enum.Enum):
    """How one worker task's part of a run ended (``lifecycle.end_task`` maps it to a status)."""

    COMPLETED = "completed"  # the run went idle: done
    WAITING = "waiting"  # idle with pending requests: waits (or is queued, if answered)
    FAILED = "failed"  # a handler, a checkpoint or the restore failed
    CANCELLED = "cancelled"  # stopped at a checkpoint because an operator cancelled it
    HANDED_OVER = "handed over"  # stopped at a checkpoint after its slice: queued again
    LEASE_LOST = "lease lost"  # another worker owns the run: this one wrote nothing more
    SKIPPED = "skipped"  # nothing to do: not queued, or another worker holds it

    def __str__(self) -> str:
        return self.value


class CheckpointKind(models.TextChoices):
    ENTRY = "entry", "Entry"  # superstep 0, holds the run's input
    SUPERSTEP = "superstep", "Superstep"  # end of a superstep
    RESPONSE = "response", "Response"  # responses delivered to pending requests
    EDITED = "edited", "Edited"  # an operator's edits of another checkpoint (edit-and-fork)


class RequestStatus(models.TextChoices):
    OPEN = "open", "Open"
    ANSWERED = "answered", "Answered"
    CANCELLED = "cancelled", "Cancelled"


class ActionKind(models.TextChoices):
    """What an operator (or the system, for scheduled sweeps) did."""

    START = "start", "Started"
    RESUME = "resume", "Resumed"
    REHYDRATE = "rehydrate", "Rehydrated"
    FORK = "fork", "Forked"  # a new run from an edited copy of a checkpoint
    CANCEL = "cancel", "Cancelled"
    ANSWER = "answer", "Answered"
    IMPORT = "import", "Imported"
    PRUNE = "prune", "Pruned"
