"""The run lifecycle: which status a run may move to from which, and one function per move.

Every change of a run's status happens here, whether an operator asked for it (through
``services``, which validates the request first) or a worker's task ended (``end_task``).
Each operator action is recorded with who did it (``OperatorAction``); runs that have work
to do are enqueued, and status changes announced to open pages, once the transaction
commits.

The moves (``TRANSITIONS`` holds them as data)::

    create   (new) ───────────▶ queued              started or rehydrated
             (new) ───────────▶ waiting | cancelled imported
    claim    queued ──────────▶ running             a worker takes it (or takes over an
                                                    expired lease: running ▶ running)
    end_task running ─────────▶ completed | waiting | failed | cancelled
                                | queued            handed over, or answered meanwhile
    answer   waiting ─────────▶ queued
    resume   waiting | completed | failed | cancelled ──▶ queued
    cancel   queued | waiting ─▶ cancelled          (running: its worker stops at the
                                                    next checkpoint, then end_task)
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from django.db import transaction
from django.db.models import F, Max, Min, Q
from django.utils import timezone

from . import live
from .conf import stepstone_settings
from .errors import Conflict
from .models import (Checkpoint, OperatorAction, PendingRequest, RegisteredWorkflow, Run,
                     RunBranch, RunEvent)
from .states import ActionKind, Outcome, RequestStatus, RunStatus
from .task_queue import enqueue_run

QUEUED, RUNNING, WAITING = RunStatus.QUEUED, RunStatus.RUNNING, RunStatus.WAITING
COMPLETED, FAILED, CANCELLED = RunStatus.COMPLETED, RunStatus.FAILED, RunStatus.CANCELLED

# Each transition (one function below) and the moves it may make: from which statuses
# (None: a run being created) to which. Nothing else changes a run's status.
TRANSITIONS: dict[str, tuple[frozenset[str | None], frozenset[str]]] = {
    # started or rehydrated (queued); imported (waiting on its requests, or stopped)
    "create": (frozenset({None}), frozenset({QUEUED, WAITING, CANCELLED})),
    # a worker takes it; running to running is taking over a run whose lease expired
    "claim": (frozenset({QUEUED, RUNNING}), frozenset({RUNNING})),
    # a worker's task ends (queued: handed over after its slice, or answered meanwhile)
    "end_task": (frozenset({RUNNING}), frozenset({COMPLETED, WAITING, QUEUED, FAILED,
                                                  CANCELLED})),
    # an operator continues it from a checkpoint (not while a worker has it or will)
    "resume": (frozenset({WAITING, COMPLETED, FAILED, CANCELLED}), frozenset({QUEUED})),
    # an operator cancels it (a running run is stopped by its worker, see ``cancel``)
    "cancel": (frozenset({QUEUED, WAITING}), frozenset({CANCELLED})),
    # an answer arrives for a run waiting on requests
    "answer": (frozenset({WAITING}), frozenset({QUEUED})),
}

# The status each way a worker's task can end leaves the run in (lease loss and skipped
# tasks leave it as it is: another worker owns it, or nobody claimed it).
OUTCOME_STATUS: dict[Outcome, str] = {
    Outcome.COMPLETED: COMPLETED,
    Outcome.WAITING: WAITING,
    Outcome.FAILED: FAILED,
    Outcome.CANCELLED: CANCELLED,
    Outcome.HANDED_OVER: QUEUED,
}


def allowed(transition: str, source: str | None, target: str) -> bool:
    sources, targets = TRANSITIONS[transition]
    return source in sources and target in targets


def _move(run: Run, transition: str, target: str, refusal: str, **fields: Any) -> None:
    """Move ``run`` (locked) to ``target`` with ``fields`` if ``transition`` allows it from
    its status, else refuse with ``refusal`` (changing nothing)."""
    if not allowed(transition, run.status, target):
        raise Conflict(refusal)
    fields.update(status=target, updated_at=timezone.now())
    Run.objects.filter(pk=run.pk).update(**fields)
    _announce(run.pk, target)


def _announce(run_id: Any, status: str) -> None:
    """Once the transaction commits: enqueue a run that has work to do (queued), and tell
    open pages its status."""
    if status == QUEUED:
        transaction.on_commit(lambda: enqueue_run(run_id))
    transaction.on_commit(lambda: live.publish_status(run_id, status))


def _person(user: Any) -> Any:
    """The acting user, or None for the system (a schedule, a command, a worker)."""
    return user if user is not None and getattr(user, "is_authenticated", False) else None


def record_action(kind: str, user: Any, *, run: Run | None = None, checkpoint_id: str = "",
                  request: PendingRequest | None = None,
                  detail: dict[str, Any] | None = None) -> OperatorAction:
    """Add ``kind`` by ``user`` (None: the system) to the activity trail."""
    person = _person(user)
    return OperatorAction.objects.create(
        kind=kind, user=person, username=person.get_username() if person else "",
        run=run, checkpoint_id=str(checkpoint_id or ""), request=request, detail=detail or {})


def _cancel_undelivered_requests(run_id: Any) -> int:
    """Cancel the requests the run has not taken an answer to (open, or answered and not
    delivered): the state that raised them is abandoned."""
    return PendingRequest.objects.filter(run_id=run_id).undelivered().update(
        status=RequestStatus.CANCELLED)


# --------------------------------------------------------------------------- operators
def create_run(workflow: RegisteredWorkflow, *, action: str, user: Any, input: Any = None,
               status: str = QUEUED, parent_run: Run | None = None,
               source_checkpoint: Checkpoint | None = None, current_superstep: int = 0,
               error: str = "", checkpoint_id: str = "",
               detail: dict[str, Any] | None = None) -> Run:
    """A new run (started, rehydrated or imported), recorded as ``action`` by ``user`` with
    the checkpoint it came from; queued runs are enqueued."""
    if not allowed("create", None, status):
        raise Conflict(f"a new run cannot start {status}")
    # A rehydrated run continues from the checkpoint it came from: that is its head (a
    # checkpoint of another run) until it writes its own.
    run = Run.objects.create(
        workflow=workflow, input=input, status=status, created_by=_person(user),
        parent_run=parent_run, source_checkpoint=source_checkpoint,
        head_checkpoint=source_checkpoint, current_superstep=current_superstep, error=error)
    record_action(action, user, run=run, detail=detail,
                  checkpoint_id=source_checkpoint.pk if source_checkpoint else checkpoint_id)
    _announce(run.pk, status)
    return run


def resume(run: Run, checkpoint: Checkpoint, user: Any) -> None:
    """Queue ``run`` (locked) to continue from ``checkpoint``: it becomes the run's head, so
    later work is abandoned (its checkpoints stay, as another branch) and the requests of
    the abandoned state are cancelled (the restored checkpoint re-opens its own). The run's
    error is cleared; the action keeps it."""
    previous_status, previous_error = run.status, run.error
    branch = run.branch + 1
    _move(run, "resume", QUEUED, f"run {run.pk} is {run.status}; wait for it or cancel it first",
          head_checkpoint=checkpoint, current_superstep=checkpoint.superstep, error="",
          finished_at=None, cancel_requested=False, branch=branch)
    cancelled = _cancel_undelivered_requests(run.pk)
    action = record_action(
        ActionKind.RESUME, user, run=run, checkpoint_id=checkpoint.pk,
        detail={"superstep": checkpoint.superstep, "from_status": previous_status,
                "cancelled_requests": cancelled, "error": previous_error, "branch": branch})
    _start_branch(run, branch, checkpoint, action)


def _start_branch(run: Run, number: int, checkpoint: Checkpoint, action: OperatorAction) -> None:
    """Record branch ``number`` of ``run``, continuing from ``checkpoint``: the line of the
    checkpoint's branch is kept up to the checkpoint (its events up to the superstep the
    checkpoint closed, its checkpoints up to it), the rest of that branch is abandoned."""
    events = RunEvent.objects.filter(run_id=run.pk)
    last_seq = events.aggregate(last=Max("seq"))["last"] or 0
    parent_events = events.filter(branch=checkpoint.branch)
    kept_seq = parent_events.filter(superstep__lte=checkpoint.superstep).aggregate(
        last=Max("seq"))["last"]
    if kept_seq is None:  # nothing of the parent's own before the checkpoint (its first)
        kept_seq = parent_events.aggregate(first=Min("seq"))["first"] or 1
        kept_seq -= 1
    RunBranch.objects.create(
        run=run, number=number, parent=checkpoint.branch, from_checkpoint_id=checkpoint.pk,
        from_superstep=checkpoint.superstep, kept_seq=kept_seq,
        kept_until=checkpoint.created_at, first_seq=last_seq, action=action)


def cancel(run: Run, user: Any) -> None:
    """Cancel ``run`` (locked): at once if no worker runs it (its undelivered requests are
    cancelled), else the worker stops it at its next checkpoint."""
    previous_status = run.status
    if run.status == RUNNING:  # its worker stops it at its next checkpoint
        Run.objects.filter(pk=run.pk).update(cancel_requested=True)
        cancelled = 0
    else:
        _move(run, "cancel", CANCELLED, f"run {run.pk} is already {run.status}",
              finished_at=timezone.now(), cancel_requested=True)
        cancelled = _cancel_undelivered_requests(run.pk)
    record_action(ActionKind.CANCEL, user, run=run,
                  detail={"from_status": previous_status, "cancelled_requests": cancelled})


def answer(request: PendingRequest, run: Run, response: Any, user: Any) -> None:
    """Record ``response`` (encoded) to the open ``request`` (both locked); a run waiting
    on requests is queued to deliver it, a running one takes it when its task ends."""
    PendingRequest.objects.filter(pk=request.pk).update(
        status=RequestStatus.ANSWERED, response=response, answered_by=_person(user),
        answered_at=timezone.now())
    record_action(ActionKind.ANSWER, user, run=run, request=request,
                  detail={"request_id": request.request_id, "response": response})
    if allowed("answer", run.status, QUEUED):
        _move(run, "answer", QUEUED, "")


# --------------------------------------------------------------------------- workers
def claim(run_id: Any, owner: str) -> Run | None:
    """Take the lease on a run that is queued, or running under an expired lease; None if
    another worker holds it or it has nothing to do."""
    now = timezone.now()
    expiry = now + timedelta(seconds=stepstone_settings.LEASE_SECONDS)
    expired = Q(lease_expires_at__lt=now) | Q(lease_expires_at=None)
    claimable = Q(status=QUEUED) | Q(status=RUNNING) & expired  # TRANSITIONS["claim"]
    taken = Run.objects.filter(claimable, pk=run_id).update(
        status=RUNNING, lease_owner=owner, lease_expires_at=expiry,
        attempts=F("attempts") + 1, updated_at=now)
    if not taken:
        return None
    Run.objects.filter(pk=run_id, started_at=None).update(started_at=now)
    return Run.objects.select_related("workflow").get(pk=run_id)


def end_task(run_id: Any, owner: str, outcome: Outcome, *, error: str = "",
             **fields: Any) -> str | None:
    """Move the run to where ``outcome`` leaves it and release ``owner``'s lease, with
    ``fields`` (e.g. the outputs); inside the worker's final transaction. Returns the new
    status, or None when ``owner`` no longer holds the run (it writes nothing then)."""
    now = timezone.now()
    target = OUTCOME_STATUS[outcome]
    if outcome is Outcome.WAITING and PendingRequest.objects.filter(
            run_id=run_id).answers_to_deliver().exists():
        target = QUEUED  # answered while it ran: deliver at once
    if target in RunStatus.finished():
        fields["finished_at"] = now
    if outcome is Outcome.FAILED:
        fields["error"] = error
    fields.update(status=target, lease_owner="", lease_expires_at=None, updated_at=now)
    if not allowed("end_task", RUNNING, target) or not Run.objects.filter(
            pk=run_id, lease_owner=owner, status=RUNNING).update(**fields):
        return None
    if outcome is Outcome.CANCELLED:
        _cancel_undelivered_requests(run_id)
    if target == QUEUED:  # the worker announces the status itself, with its events
        transaction.on_commit(lambda: enqueue_run(run_id))
    return target
