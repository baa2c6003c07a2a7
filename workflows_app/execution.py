"""Executing a run inside a django-q2 worker.

``RunExecution.execute`` is the body of the run task. It takes the run's lease (one writer per
run, ever), builds a fresh engine workflow from the registry, and drives it from the run's
input, its newest checkpoint, or the checkpoint an operator chose. Checkpoints are committed
together with the events emitted before them, the outputs so far and a renewed lease, in one
transaction (fast supersteps share one, see ``persist``): after a crash the run continues
from its newest committed checkpoint and nothing recorded is lost or written twice. The task
stops when the run completes, fails, waits on requests, is cancelled, or has run for a slice
(then it re-enqueues itself).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from datetime import timedelta
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.models import F, Max, Q
from django.utils import timezone

from . import live, registry
from .conf import stepstone_settings
from .engine import WorkflowCheckpoint, WorkflowEvent, WorkflowRunState
from .engine.encoding import decode_value
from .events import error_text, event_record
from .models import Checkpoint, PendingRequest, Run, RunEvent
from .schemas import json_schema
from .states import RequestStatus, RunStatus
from .store import (CheckpointWriter, DatabaseCheckpointStorage, insert_rows, read_chain,
                    update_where)

logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker owns the run now; this one must stop without writing."""


class _StopAfterCheckpoint(Exception):
    """Raised from ``save`` once the checkpoint is committed, to end this task's slice of
    the run there (a cancel request, or the task slice used up)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@contextlib.contextmanager
def _private_event_loop_may_block():
    """Let this task's ORM calls run on its own event loop.

    Django refuses ORM calls from a thread running an event loop, to protect loops shared by
    many requests. The loop here is private to one task and the ORM is called only between
    supersteps, when no handler runs, so blocking it is exactly what is wanted; hopping to
    another thread for each checkpoint would cost more than the write itself.
    """
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"
    try:
        yield
    finally:
        if previous is None:
            del os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"]
        else:
            os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


def worker_identity() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


def claim(run_id: Any, owner: str) -> Run | None:
    """Take the lease on a run that is queued, or running under an expired lease."""
    now = timezone.now()
    expiry = now + timedelta(seconds=stepstone_settings.LEASE_SECONDS)
    claimable = Q(status=RunStatus.QUEUED) | Q(
        status=RunStatus.RUNNING) & (Q(lease_expires_at__lt=now) | Q(lease_expires_at=None))
    taken = Run.objects.filter(claimable, pk=run_id).update(
        status=RunStatus.RUNNING, lease_owner=owner, lease_expires_at=expiry,
        attempts=F("attempts") + 1, updated_at=now)
    if not taken:
        return None
    run = Run.objects.select_related("workflow").get(pk=run_id)
    if run.started_at is None:
        Run.objects.filter(pk=run_id, lease_owner=owner).update(started_at=now)
    return run


class RunExecution:
    """One task's execution of one run (see the module docstring)."""

    def __init__(self, run_id: Any, owner: str | None = None) -> None:
        self.run_id = run_id
        self.owner = owner or worker_identity()
        self.started = time.monotonic()
        self.buffer: list[dict] = []  # recorded RunEvent rows not yet saved
        self.seq = 0
        self.persisted_seq = 0
        self.superstep: int | None = None
        self.outputs: list[Any] = []  # encoded outputs of the run along its lineage
        self.writer = CheckpointWriter(run_id)
        self.restored: tuple[str, dict] | None = None  # (id, document) read by _plan
        self.outputs_dirty = True  # outputs differ from the run row's (e.g. after a resume)
        self.step_outputs: list[Any] = []  # outputs of the superstep in progress
        self.persisted_completions: set[int] = set()
        self.requests: dict[str, dict] = {}  # request_info events not yet saved
        self.delivering: list[str] = []  # answered requests this execution delivers
        self.batch = _Batch()  # checkpoints saved by the engine, not yet committed
        self.stop_reason: str | None = None
        self.engine_task: asyncio.Task | None = None
        self.publisher = live.process_publisher()

    # -- entry point ------------------------------------------------------------------
    def execute(self) -> str:
        run = claim(self.run_id, self.owner)
        if run is None:
            return "skipped: the run is not queued, or another worker holds its lease"
        self.publisher.send(live.status_message(self.run_id, RunStatus.RUNNING))
        try:
            # The newest seq, read off the unique (run, seq) index: no scan of the history.
            last = RunEvent.objects.filter(run_id=self.run_id).aggregate(last=Max("seq"))["last"]
            self.seq = self.persisted_seq = last or 0
            plan = self._plan(run)
        except Exception as error:  # unknown workflow, unreadable checkpoint...
            self.publisher.send(self._finalize("failed", error))
            return f"failed: {error}"
        try:
            with _private_event_loop_may_block():
                return asyncio.run(self._drive(plan, connections[DEFAULT_DB_ALIAS]))
        except LeaseLost:
            return "stopped: lease lost to another worker"

    def _plan(self, run: Run) -> dict[str, Any]:
        # Building the workflow registers its message types, which decoding needs.
        plan: dict[str, Any] = {"workflow": registry.get_definition(run.workflow.name).build()}
        checkpoint_id = run.restore_from_id or run.head_checkpoint_id
        if checkpoint_id is None:
            plan["message"] = decode_value(run.input)
            return plan
        plan["checkpoint_id"] = checkpoint_id
        # One read of the checkpoint (its deltas applied) serves the engine's restore, the
        # run's outputs at that point and the writer's next deltas.
        owner, links = read_chain(str(checkpoint_id))
        record = links[-1].record
        self.writer.continue_from(owner, links)
        self.restored = (str(checkpoint_id), record["checkpoint"])
        self.outputs = list(record.get("outputs", []))
        answered = list(PendingRequest.objects.filter(
            run=run, status=RequestStatus.ANSWERED, delivered=False))
        pending = record["checkpoint"].get("pending_requests", {})
        # Only answers to requests this checkpoint still waits on can be delivered from it.
        responses = {r.request_id: decode_value(r.response) for r in answered
                     if r.request_id in pending}
        if responses:
            plan["responses"] = responses
            self.delivering = list(responses)
        return plan

    async def _drive(self, plan: dict[str, Any], connection: Any) -> str:
        # Inside an event loop Django would open a new connection per task; keep using this
        # thread's own (its transaction state, and no connection left open afterwards).
        connections[DEFAULT_DB_ALIAS] = connection
        workflow = plan["workflow"]
        kwargs = {k: plan[k] for k in ("message", "checkpoint_id", "responses") if k in plan}
        recorder = _Recorder(self)
        heartbeat = asyncio.ensure_future(self._heartbeat())
        try:
            # Inside the try: run() refuses bad arguments before any coroutine exists.
            self.engine_task = asyncio.ensure_future(
                workflow.run(**kwargs, checkpoint_storage=recorder, on_event=self._on_event))
            await self.engine_task
            kind, detail = "finished", workflow.state
        except _StopAfterCheckpoint as stop:
            kind, detail = stop.reason, None
        except asyncio.CancelledError:
            if self.stop_reason is None:
                raise
            kind, detail = self.stop_reason, None
        except (LeaseLost, DatabaseError):
            raise  # not the run's fault: leave it to redelivery or the recovery sweep
        except Exception as error:
            kind, detail = "failed", error
        finally:
            heartbeat.cancel()
        if kind == "lease_lost":
            raise LeaseLost()
        if kind in ("cancelled", "sliced"):
            # Events after the last checkpoint belong to a superstep that did not complete
            # (or to the engine's reaction to being stopped): they never happened.
            self.buffer = []
            self.seq = self.persisted_seq
            if kind == "cancelled":
                self.buffer.append(self._record({"type": "status", "superstep": None,
                                                 "executor_id": "",
                                                 "data": {"state": "CANCELLED"}}))
        self.publisher.send(self._finalize(kind, detail))
        return f"{kind}: {detail}" if detail is not None else kind

    # -- events -------------------------------------------------------------------------
    def _record(self, record: dict[str, Any]) -> dict[str, Any]:
        """A ``RunEvent`` row, as a dict of its columns (``insert_rows`` takes those)."""
        self.seq += 1
        superstep = record["superstep"] if record["superstep"] is not None else self.superstep
        return {"run_id": self.run_id, "seq": self.seq, "type": record["type"][:40],
                "superstep": superstep, "executor_id": record["executor_id"][:100],
                "data": record["data"], "created_at": timezone.now()}

    def _on_event(self, event: WorkflowEvent) -> None:
        kind = event.type
        if kind == "superstep_started":
            self.superstep = event.superstep
            self.step_outputs = []
        elif kind == "superstep_completed" and event.superstep in self.persisted_completions:
            return  # already saved with its checkpoint
        record = event_record(event)
        if kind == "output":
            self.outputs.append(record["data"])
            self.step_outputs.append(record["data"])
        elif kind == "request_info":
            self.requests[event.request_id] = {"event": event, "record": record}
        self.buffer.append(self._record(record))

    # -- persistence ------------------------------------------------------------------------
    def persist(self, checkpoint: WorkflowCheckpoint) -> list:
        """Stage a checkpoint with the events recorded since the previous one, and commit the
        staged batch when it is due; return the live messages announcing what was committed.

        Group commit: fast supersteps are committed together, at most ``FLUSH_SECONDS``
        apart (and always before the run waits, stops or ends), because a commit costs more
        than a fast superstep. A crash loses at most that window, which the next worker
        re-runs from the last committed checkpoint, exactly as it re-runs an unfinished
        superstep. Set ``FLUSH_SECONDS`` to 0 to commit every checkpoint on its own.
        """
        row = self.writer.row(checkpoint, self.outputs)  # encodes: a bad value fails the run
        row.outputs = self.step_outputs if checkpoint.kind == "superstep" else []
        self.step_outputs = []
        if checkpoint.kind == "superstep":
            # The engine emits superstep_completed after save(); record it here so that the
            # event and its checkpoint are committed (or lost) together.
            self.buffer.append(self._record({
                "type": "superstep_completed", "superstep": checkpoint.superstep,
                "executor_id": "", "data": {"checkpoint_id": checkpoint.checkpoint_id}}))
            self.persisted_completions.add(checkpoint.superstep)
        self.batch.add(row, self.buffer, self.requests, self.delivering, bool(row.outputs))
        self.buffer, self.requests, self.delivering = [], {}, []
        self.persisted_seq = self.seq
        if time.monotonic() - self.started > stepstone_settings.TASK_SLICE_SECONDS:
            self.stop_reason = "sliced"
        due = (checkpoint.kind != "superstep" or self.stop_reason is not None
               or self.batch.age() >= stepstone_settings.CHECKPOINT_FLUSH_SECONDS)
        return self.flush() if due else []

    def flush(self) -> list:
        """Commit the staged batch in one transaction, fenced by the lease; notice a cancel
        request. Returns the live messages announcing what was committed."""
        if not self.batch:
            return []
        with transaction.atomic():
            cancel = self._write_batch()
        if cancel:
            self.stop_reason = "cancelled"
        events, self.batch = self.batch.events, _Batch()
        return live.events_message(self.run_id, events)

    def _write_batch(self) -> bool:
        """Write the batch (inside the caller's transaction); return whether the run was
        asked to cancel. Raises ``LeaseLost`` if another worker owns the run."""
        batch = self.batch
        head = batch.rows[-1]
        now = timezone.now()
        fields = {"head_checkpoint": head.pk, "current_superstep": head.superstep,
                  "restore_from": None, "updated_at": now,
                  "lease_expires_at": now + timedelta(seconds=stepstone_settings.LEASE_SECONDS)}
        if batch.outputs_changed or self.outputs_dirty:
            fields["outputs"] = self.outputs
        # Fenced by the lease: a worker that lost the run writes nothing.
        mine = {"id": self.run_id, "lease_owner": self.owner, "status": RunStatus.RUNNING}
        cancel = False
        if not update_where(Run, {**mine, "cancel_requested": False}, fields):
            # Rare path: find out whether the run was cancelled or taken over.
            if not update_where(Run, mine, fields):
                raise LeaseLost()
            cancel = True
        insert_rows(Checkpoint, batch.rows)
        insert_rows(RunEvent, batch.events)
        self._save_requests(batch.requests)
        if batch.delivering:
            PendingRequest.objects.filter(run_id=self.run_id, request_id__in=batch.delivering
                                          ).update(delivered=True)
        self.outputs_dirty = False
        return cancel

    def _save_requests(self, requests: dict[str, dict]) -> None:
        for request_id, item in requests.items():
            event = item["event"]
            record = item["record"]["data"]
            fields = {"source_executor_id": event.source_executor_id,
                      "request_data": record["data"], "response_type": record["response_type"],
                      "response_schema": json_schema(event.response_type),
                      "status": RequestStatus.OPEN, "response": None, "delivered": False,
                      "answered_by": None, "answered_at": None}
            # A restored checkpoint re-emits its requests: reopen them if an earlier
            # resume had cancelled them.
            PendingRequest.objects.update_or_create(run_id=self.run_id, request_id=request_id,
                                                    defaults=fields)

    def _finalize(self, kind: str, detail: Any) -> list:
        """Record the end of this task's part of the run and hand the run on; return the
        live messages announcing it."""
        now = timezone.now()
        enqueue_again = False
        with transaction.atomic():
            run = Run.objects.filter(pk=self.run_id, lease_owner=self.owner).first()
            if run is None:
                raise LeaseLost()
            committed = list(self.batch.events)
            if self.batch:
                self._write_batch()
                self.batch = _Batch()
                run.restore_from_id = None  # a checkpoint was written after the restore
            insert_rows(RunEvent, self.buffer)
            self._save_requests(self.requests)
            self.requests = {}
            fields: dict[str, Any] = {"lease_owner": "", "lease_expires_at": None,
                                      "updated_at": now, "outputs": self.outputs}
            if kind == "finished" and run.restore_from_id is not None:
                # No checkpoint was written (persist clears restore_from): the restored one,
                # e.g. with only pending requests, is where the run continues from now.
                fields["head_checkpoint_id"] = run.restore_from_id
                fields["current_superstep"] = Checkpoint.objects.filter(
                    pk=run.restore_from_id).values_list("superstep", flat=True).first() or 0
            if kind == "finished" and detail is WorkflowRunState.IDLE:
                fields.update(status=RunStatus.COMPLETED, finished_at=now, restore_from=None)
            elif kind == "finished":
                answered = PendingRequest.objects.filter(
                    run_id=self.run_id, status=RequestStatus.ANSWERED, delivered=False).exists()
                fields.update(status=RunStatus.QUEUED if answered else RunStatus.WAITING,
                              restore_from=None)
                enqueue_again = answered
            elif kind == "failed":
                fields.update(status=RunStatus.FAILED, finished_at=now,
                              error=error_text(detail) if isinstance(detail, BaseException)
                              else str(detail))
            elif kind == "cancelled":
                fields.update(status=RunStatus.CANCELLED, finished_at=now)
                PendingRequest.objects.filter(
                    run_id=self.run_id, status__in=[RequestStatus.OPEN, RequestStatus.ANSWERED],
                    delivered=False).update(status=RequestStatus.CANCELLED)
            else:  # sliced: continue in a fresh task
                fields.update(status=RunStatus.QUEUED)
                enqueue_again = True
            Run.objects.filter(pk=self.run_id).update(**fields)
            events = committed + self.buffer
            self.buffer = []
            if enqueue_again:
                from .tasks import enqueue_run
                transaction.on_commit(lambda: enqueue_run(self.run_id))
        return (live.events_message(self.run_id, events)
                + live.status_message(self.run_id, fields.get("status", run.status)))

    # -- lease heartbeat --------------------------------------------------------------------
    async def _heartbeat(self) -> None:
        """Commit a batch left waiting by a slow superstep; renew the lease during long
        supersteps; stop the engine on cancel or lease loss."""
        flush_every = stepstone_settings.CHECKPOINT_FLUSH_SECONDS
        renewed = time.monotonic()
        while True:
            await asyncio.sleep(min(flush_every, stepstone_settings.HEARTBEAT_SECONDS)
                                if flush_every > 0 else stepstone_settings.HEARTBEAT_SECONDS)
            state = "ok"
            try:
                if self.batch and self.batch.age() >= flush_every:
                    self.publisher.send(self.flush())
                    renewed = time.monotonic()
                    state = self.stop_reason or "ok"
                elif time.monotonic() - renewed >= stepstone_settings.HEARTBEAT_SECONDS:
                    state = self._renew()
                    renewed = time.monotonic()
            except LeaseLost:
                state = "lease_lost"
            if state != "ok" and self.engine_task is not None:
                self.stop_reason = state
                self.engine_task.cancel()
                return

    def _renew(self) -> str:
        now = timezone.now()
        renewed = Run.objects.filter(pk=self.run_id, lease_owner=self.owner).update(
            lease_expires_at=now + timedelta(seconds=stepstone_settings.LEASE_SECONDS))
        if not renewed:
            return "lease_lost"
        cancel = Run.objects.filter(pk=self.run_id).values_list("cancel_requested", flat=True).first()
        return "cancelled" if cancel else "ok"


class _Batch:
    """Checkpoints (with their events, new requests and delivered answers) staged for one
    commit."""

    def __init__(self) -> None:
        self.rows: list[Checkpoint] = []
        self.events: list[dict] = []
        self.requests: dict[str, dict] = {}
        self.delivering: list[str] = []
        self.outputs_changed = False
        self.started: float | None = None

    def __bool__(self) -> bool:
        return bool(self.rows)

    def add(self, row: Checkpoint, events: list[dict], requests: dict[str, dict],
            delivering: list[str], outputs_changed: bool) -> None:
        if self.started is None:
            self.started = time.monotonic()
        self.rows.append(row)
        self.events.extend(events)
        self.requests.update(requests)
        self.delivering.extend(delivering)
        self.outputs_changed = self.outputs_changed or outputs_changed

    def age(self) -> float:
        return 0.0 if self.started is None else time.monotonic() - self.started


class _Recorder(DatabaseCheckpointStorage):
    """The storage the engine writes through during a worker's execution. It calls the ORM
    directly: the task's event loop is private (see ``_private_event_loop_may_block``)."""

    def __init__(self, execution: RunExecution) -> None:
        self.run_id = execution.run_id
        self.writer = execution.writer  # the rows it saves are the execution's
        self.execution = execution

    async def load(self, checkpoint_id: str) -> WorkflowCheckpoint:
        restored = self.execution.restored
        if restored is not None and restored[0] == checkpoint_id:
            return WorkflowCheckpoint.from_dict(restored[1])  # read by _plan already
        return self._load(checkpoint_id)

    async def save(self, checkpoint: WorkflowCheckpoint) -> str:
        self.execution.publisher.send(self.execution.persist(checkpoint))
        if self.execution.stop_reason is not None:
            # The checkpoint is saved; end this task's part of the run right here.
            raise _StopAfterCheckpoint(self.execution.stop_reason)
        return checkpoint.checkpoint_id

