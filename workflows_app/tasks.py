"""django-q2 tasks: the functions workers run, and how they are enqueued."""

from __future__ import annotations

from typing import Any

from django_q.tasks import async_task

from .execution import RunExecution


def execute_run(run_id: str) -> str:
    """Execute a run until it completes, fails, waits or hands over (see execution.py)."""
    return RunExecution(run_id).execute()


def enqueue_run(run_id: Any) -> None:
    async_task("workflows_app.tasks.execute_run", str(run_id),
               task_name=f"run {run_id}", group="runs")


def recover_runs() -> str:
    """Scheduled sweep: re-enqueue runs whose worker died or whose task was lost."""
    from . import services
    recovered = services.recover_stale_runs()
    return f"re-enqueued {len(recovered)} run(s)"


def prune_checkpoints() -> str:
    """Scheduled sweep (hourly): the checkpoint retention policy, see services."""
    from . import services
    report = services.prune_checkpoints()
    return (f"pruned {report.checkpoints} checkpoint(s) of {report.runs} run(s), "
            f"{report.bytes} bytes")
