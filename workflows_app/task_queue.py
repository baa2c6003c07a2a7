"""Putting runs on django-q2's queue. Tasks are named by dotted path, so enqueueing never
imports the code that executes them (``tasks.py``)."""

from __future__ import annotations

from typing import Any

from django_q.tasks import async_task


def enqueue_run(run_id: Any) -> None:
    """Queue a task that executes the run (``tasks.execute_run``) in a worker."""
    async_task("workflows_app.tasks.execute_run", str(run_id),
               task_name=f"run {run_id}", group="runs")
