"""django-q2 tasks: the functions workers run (enqueued by ``task_queue`` and schedules)."""

from __future__ import annotations

from . import services
from .worker import RunExecution, shutdown


def execute_run(run_id: str) -> str:
    """Execute a run until it completes, fails, waits or hands over (see ``worker``); a
    SIGTERM to the worker meanwhile ends its process only once the run is handed over."""
    with shutdown.executing():
        return RunExecution(run_id).execute()


def recover_runs() -> str:
    """Scheduled sweep (every minute; each worker process also sweeps every second or so):
    a task again for the runs whose worker died or whose task was lost."""
    recovered = services.recover_stale_runs()
    return f"recovered {len(recovered)} run(s)"


def prune_checkpoints() -> str:
    """Scheduled sweep (hourly): the checkpoint retention policy, see services."""
    report = services.prune_checkpoints()
    return (f"pruned {report.checkpoints} checkpoint(s) of {report.runs} run(s), "
            f"{report.bytes} bytes")
