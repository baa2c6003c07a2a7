"""Recovery: a task again for every run whose worker died or whose task was lost.

A worker claims its task's run within milliseconds of starting the task and keeps the run's
lease fresh while it runs it. So a run that is *claimable* (queued, or running under an
expired lease) while a cluster has held a task for it longer than a lease has lost that
task's worker: its process or its whole cluster died, or (rarely) the cluster is too busy to
start it. django-q2's ORM broker would deliver such a task again only after ``retry``,
which must exceed the task timeout (minutes). ``sweep`` releases it at once instead, in its
place in the queue (``OrmQ.lock`` is the broker's own "not before"), so that any cluster
takes it; and it names the claimable runs no cluster holds a task for, to be enqueued anew:

- a run under an expired lease whose task is not held (its row was acknowledged by a
  duplicate, say);
- a queued run, or one recovered before, unchanged for ``RECOVER_QUEUED_AFTER_SECONDS``
  with no task held (its task was lost before any cluster took it).

A run given a task is marked (its expiry cleared, which a claim accepts, and ``updated_at``
set), so that later sweeps leave it alone unless it is still unclaimed long after. Every
write is conditional on what the sweep read (compare and set), so any number of processes
may sweep at once: each stuck task is released once, each run enqueued once.
``services.recover_stale_runs`` runs it, about every ``RECOVERY_SWEEP_SECONDS`` in each
cluster (from its worker processes, ``worker.process``) and every minute from a django-q2
schedule.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from django.db.models import Q
from django.utils import timezone
from django_q.conf import Conf
from django_q.models import OrmQ

from ..conf import stepstone_settings
from ..models import Run
from ..states import RunStatus

EXECUTE_RUN = "workflows_app.tasks.execute_run"  # the run task (``tasks.execute_run``)


@dataclass(frozen=True)
class HeldTask:
    """A run task some cluster took off the queue and has not acknowledged."""

    pk: int  # its ``OrmQ`` row
    lock: datetime  # when the broker would deliver it again: taken + ``retry``


def held_tasks(now: datetime) -> dict[uuid.UUID, list[HeldTask]]:
    """The run tasks clusters hold now (executing, waiting in a cluster's memory, or lost
    with it), by run id. Only held rows are decoded: a few per cluster."""
    held: dict[uuid.UUID, list[HeldTask]] = defaultdict(list)
    for row in OrmQ.objects.filter(lock__gt=now).only("pk", "lock", "payload"):
        task = row.task  # {"id": "*BadSignature"} and the like when it does not decode
        args = task.get("args") or ()
        if task.get("func") != EXECUTE_RUN or len(args) != 1:
            continue
        try:
            run_id = uuid.UUID(str(args[0]))
        except ValueError:
            continue
        held[run_id].append(HeldTask(row.pk, row.lock))
    return held


def sweep() -> tuple[list[Any], list[Any]]:
    """Release the tasks whose worker is gone; return (the runs whose task was released,
    the runs the caller must enqueue anew). See the module docstring."""
    now = timezone.now()
    lease = timedelta(seconds=stepstone_settings.LEASE_SECONDS)
    claimable = (Q(status=RunStatus.QUEUED, lease_owner="")
                 | Q(status=RunStatus.RUNNING, lease_expires_at__lt=now)
                 | Q(status=RunStatus.RUNNING, lease_expires_at=None))
    held = held_tasks(now)

    # Held longer than a lease (the broker set lock = taken + retry) and nobody claimed it.
    taken_before = now + timedelta(seconds=Conf.RETRY) - lease
    stuck = {run_id: [t for t in tasks if t.lock < taken_before]
             for run_id, tasks in held.items()}
    stuck = {run_id: tasks for run_id, tasks in stuck.items() if tasks}
    released = []
    if stuck:
        for run in Run.objects.filter(claimable, pk__in=list(stuck)).values_list(*_SEEN):
            # One row is enough: whichever cluster takes it claims the run.
            if any(OrmQ.objects.filter(pk=task.pk, lock=task.lock).update(lock=now)
                   for task in stuck[run[0]]):
                _mark_recovered(run, now)
                released.append(run[0])

    lost_before = now - timedelta(seconds=stepstone_settings.RECOVER_QUEUED_AFTER_SECONDS)
    without_task = Run.objects.filter(
        Q(status=RunStatus.RUNNING, lease_expires_at__lt=now)
        | (Q(status=RunStatus.QUEUED, lease_owner="")
           | Q(status=RunStatus.RUNNING, lease_expires_at=None)) & Q(updated_at__lt=lost_before)
    ).exclude(pk__in=list(held)).values_list(*_SEEN)
    orphaned = [run[0] for run in without_task if _mark_recovered(run, now)]
    return released, orphaned


_SEEN = ("pk", "status", "lease_expires_at", "updated_at")  # what _mark_recovered compares


def _mark_recovered(run: tuple, now: datetime) -> bool:
    """Record that the sweep gave ``run`` (as read: ``_SEEN``) a task, if it is unchanged
    since it was read: the expiry is cleared (a claim accepts none) and ``updated_at`` set,
    so later sweeps leave it alone unless it is still unclaimed long after. Returns whether
    this sweep won the run."""
    run_id, status, expires, updated = run
    return bool(Run.objects.filter(pk=run_id, status=status, lease_expires_at=expires,
                                   updated_at=updated)
                .update(lease_expires_at=None, updated_at=now))
