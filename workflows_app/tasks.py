"""django-q2 tasks: the functions workers run (enqueued by ``task_queue`` and schedules)."""

from __future__ import annotations

from . import services
from .worker import RunExecution


def execute_run(run_id: str) -> str:
    """Execute a run until it completes, fails, waits or hands over (see ``worker``)."""
    return RunExecution(run_id).execute()


def recover_runs() -> str:
    """Scheduled sweep: re-enqueue runs whose worker died or whose task was lost."""
    recovered = services.recover_stale_runs()
    return f"re-enqueued {len(recovered)} run(s)"


def prune_checkpoints() -> str:
    """Scheduled sweep (hourly): the checkpoint retention policy, see services."""
    report = services.prune_checkpoints()
    return (f"pruned {report.checkpoints} checkpoint(s) of {report.runs} run(s), "
            f"{report.bytes} bytes")
