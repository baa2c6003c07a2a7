"""The states of runs, checkpoints and requests, as ``TextChoices``."""

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


class CheckpointKind(models.TextChoices):
    ENTRY = "entry", "Entry"  # superstep 0, holds the run's input
    SUPERSTEP = "superstep", "Superstep"  # end of a superstep
    RESPONSE = "response", "Response"  # responses delivered to pending requests


class RequestStatus(models.TextChoices):
    OPEN = "open", "Open"
    ANSWERED = "answered", "Answered"
    CANCELLED = "cancelled", "Cancelled"
