"""A worker task's part of a run: claim it, drive the engine, finish.

``RunExecution.execute`` is the body of the run task (``tasks.execute_run``). It claims the
run's lease, builds a fresh engine workflow from the registry and runs it from the run's
input or from its head checkpoint (delivering the answers given since). Each checkpoint is committed
together with the events recorded up to it, the requests it holds, the outputs so far and a
renewed lease (``commits``): after a crash the run continues from its newest committed
checkpoint and nothing recorded is lost or written twice.

A task ends when the run completes, fails or waits on requests; or it stops the engine
(``Workflow.request_stop``) at the next checkpoint when an operator cancels the run, when
the task has run for its slice, or when its worker process is told to stop (``shutdown``);
then the run is queued for a fresh task. A superstep that outlasts a stop's grace is
abandoned: nothing uncommitted is written and the run is queued from its last committed
checkpoint, as after a crash but without waiting for the lease to expire. A task that loses
its lease to another worker cancels the engine at once and writes nothing more.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from typing import Any

from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections, transaction
from django.db.models import Max

from .. import lifecycle, live, registry
from ..conf import stepstone_settings
from ..engine import Workflow, WorkflowEvent, WorkflowRunState
from ..engine.encoding import decode_value
from ..models import Run, RunEvent
from ..states import Outcome, RunStatus
from .commits import GroupCommit
from .event_log import EventLog, error_text
from .lease import Lease, LeaseKeeper, LeaseLost
from .request_log import RequestLog, answers_to_deliver
from .run_record import RunRecordStorage
from .shutdown import stop_requested, stop_requested_for

logger = logging.getLogger(__name__)

STOP_FOR_SLICE = "the task's slice is used up: a new task continues the run"
STOP_FOR_CANCEL = "an operator cancelled the run"
STOP_FOR_SHUTDOWN = "the worker is stopping: a new task continues the run"


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


class RunExecution:
    """One task's execution of one run (see the module docstring)."""

    def __init__(self, run_id: Any, owner: str | None = None) -> None:
        self.run_id = run_id
        self.lease = Lease(run_id, owner or worker_identity())
        self.started = time.monotonic()
        self.storage = RunRecordStorage(run_id)
        self.requests = RequestLog(run_id)
        self.batch = GroupCommit()
        self.events: EventLog | None = None  # numbered once the run's history is read
        self.workflow: Workflow | None = None
        self.stop_outcome: Outcome | None = None  # why this task asked the engine to stop
        self.lease_lost = False
        self.abandoned = False  # the stop's grace ran out during a superstep
        self.engine_task: asyncio.Task | None = None
        self.publisher = live.process_publisher()

    # -- the task --------------------------------------------------------------------------
    def execute(self) -> str:
        """Execute the run until this task's part of it ends; say how it ended."""
        run = lifecycle.claim(self.run_id, self.lease.owner)
        if run is None:
            return f"{Outcome.SKIPPED}: the run is not queued, or another worker holds it"
        self.publisher.send(live.status_message(self.run_id, RunStatus.RUNNING))
        # The newest seq, read off the unique (run, seq) index: no scan of the history.
        last = RunEvent.objects.filter(run_id=self.run_id).aggregate(last=Max("seq"))["last"]
        self.events = EventLog(self.run_id, last or 0, branch=run.branch)
        self.storage.writer.branch = run.branch
        try:
            try:
                arguments = self._run_arguments(run)
            except Exception as error:  # an unknown workflow, an undecodable input...
                return self._finish(Outcome.FAILED, error)
            with _private_event_loop_may_block():
                outcome, error = asyncio.run(
                    self._drive(arguments, connections[DEFAULT_DB_ALIAS]))
            return self._finish(outcome, error)
        except LeaseLost:
            return f"{Outcome.LEASE_LOST}: another worker holds the run now"

    def _run_arguments(self, run: Run) -> dict[str, Any]:
        """What ``Workflow.run`` is called with: the input, or the head checkpoint and the
        answers to deliver. Building the workflow registers its types, which decoding needs."""
        self.workflow = registry.get_definition(run.workflow.name).build()
        if run.head_checkpoint_id is None:
            return {"message": decode_value(run.input)}
        arguments: dict[str, Any] = {"checkpoint_id": str(run.head_checkpoint_id)}
        answers = answers_to_deliver(run.pk)
        if answers:
            arguments["responses"] = answers
            self.requests.note_delivering(list(answers))
        return arguments

    async def _drive(self, arguments: dict[str, Any], connection: Any
                     ) -> tuple[Outcome, BaseException | None]:
        # Inside an event loop Django would open a new connection per task; keep using this
        # thread's own (its transaction state, and no connection left open afterwards).
        connections[DEFAULT_DB_ALIAS] = connection
        heartbeat = asyncio.ensure_future(self._heartbeat())
        loop = asyncio.get_running_loop()
        keeper = LeaseKeeper(
            self.lease,
            on_cancel=lambda: loop.call_soon_threadsafe(self._stop, Outcome.CANCELLED),
            on_lost=lambda: loop.call_soon_threadsafe(self._abort)).start()
        try:
            self.engine_task = asyncio.ensure_future(self.workflow.run(
                **arguments, checkpoint_storage=self.storage, on_event=self._on_event))
            await self.engine_task
        except asyncio.CancelledError:
            if self.lease_lost:
                raise LeaseLost() from None
            if self.abandoned:
                return Outcome.HANDED_OVER, None
            raise
        except (LeaseLost, DatabaseError):
            raise  # not the run's fault: redelivery or the recovery sweep takes it on
        except Exception as error:
            return Outcome.FAILED, error
        finally:
            heartbeat.cancel()
            keeper.stop()
        state = self.workflow.state
        if state is WorkflowRunState.STOPPED:
            return self.stop_outcome, None
        return (Outcome.WAITING if state is WorkflowRunState.IDLE_WITH_PENDING_REQUESTS
                else Outcome.COMPLETED), None

    def _finish(self, outcome: Outcome, error: BaseException | None) -> str:
        """Commit what is left and move the run to where ``outcome`` leaves it, in one
        transaction; announce it. An abandoned superstep commits nothing: the run goes on
        from its last committed checkpoint, which the events and outputs committed match."""
        if self.abandoned:
            self.batch = GroupCommit()
        else:
            self._stage()
        committed = list(self.batch.events)
        with transaction.atomic():
            if self.batch:
                self.batch.write(self.lease, self.storage, self.requests)
            status = lifecycle.end_task(self.run_id, self.lease.owner, outcome,
                                        error=error_text(error) if error is not None else "")
            if status is None:
                raise LeaseLost()
        self.publisher.send(live.events_message(self.run_id, committed)
                            + live.status_message(self.run_id, status))
        return f"{outcome}: {error_text(error)}" if error is not None else str(outcome)

    # -- engine events -------------------------------------------------------------------
    def _on_event(self, event: WorkflowEvent) -> None:
        row = self.events.record(event)
        kind = event.type
        if kind == "output":
            self.storage.add_output(row["data"])
        elif kind == "request_info":
            self.requests.note_raised(event, row)
        elif kind in ("superstep_completed", "started") and event.checkpoint is not None:
            self._stage()  # the checkpoint with the events up to the one announcing it
            self._after_checkpoint()

    def _stage(self) -> None:
        self.batch.add(self.storage.take_staged(), self.events.take(), self.requests.take())

    def _after_checkpoint(self) -> None:
        """Hand the run over if the slice is used up; commit if a commit is due."""
        if self.lease_lost:
            return
        if stop_requested():
            self._stop(Outcome.HANDED_OVER, STOP_FOR_SHUTDOWN)
        elif time.monotonic() - self.started > stepstone_settings.TASK_SLICE_SECONDS:
            self._stop(Outcome.HANDED_OVER, STOP_FOR_SLICE)
        if self.batch.age() >= stepstone_settings.CHECKPOINT_FLUSH_SECONDS \
                or self.stop_outcome is not None:
            self._commit()

    def _commit(self) -> None:
        """Commit the staged batch; stop the engine on a cancel, abort it on a lost lease."""
        events = self.batch.events
        try:
            with transaction.atomic():
                cancel = self.batch.write(self.lease, self.storage, self.requests)
        except LeaseLost:
            self._abort()
            return
        self.batch = GroupCommit()
        self.publisher.send(live.events_message(self.run_id, events))
        if cancel:
            self._stop(Outcome.CANCELLED)

    def _stop(self, outcome: Outcome, reason: str = STOP_FOR_CANCEL) -> None:
        """Ask the engine to stop at its next superstep boundary, saying ``reason`` (a
        cancel outranks a hand-over, and the first reason given stands)."""
        if self.stop_outcome is Outcome.CANCELLED or (
                self.stop_outcome is outcome and outcome is Outcome.HANDED_OVER):
            return
        self.stop_outcome = outcome
        self.workflow.request_stop(STOP_FOR_CANCEL if outcome is Outcome.CANCELLED
                                   else reason)

    def _abort(self) -> None:
        """Another worker owns the run: cancel the engine now; nothing more is written."""
        self.lease_lost = True
        if self.engine_task is not None:
            self.engine_task.cancel()

    def _abandon(self) -> None:
        """The worker must stop and the superstep under way has not ended within the grace:
        cancel the engine; ``_finish`` queues the run from its last committed checkpoint."""
        if self.abandoned or self.lease_lost or self.engine_task is None:
            return
        self.abandoned = True
        self.engine_task.cancel()

    # -- between checkpoints ---------------------------------------------------------------
    async def _heartbeat(self) -> None:
        """Commit a batch a slow superstep left waiting; renew the lease during long
        supersteps; notice a cancel request or a lost lease."""
        flush_every = stepstone_settings.CHECKPOINT_FLUSH_SECONDS
        beat = stepstone_settings.HEARTBEAT_SECONDS
        while not self.lease_lost:
            await asyncio.sleep(min(flush_every, beat) if flush_every > 0 else beat)
            if stop_requested_for() > stepstone_settings.STOP_GRACE_SECONDS:
                self._abandon()
                return
            if self.batch and self.batch.age() >= flush_every:
                self._commit()
            elif time.monotonic() - self.lease.renewed >= beat:  # no commit renewed it
                try:
                    with transaction.atomic():
                        cancel = self.lease.renew()
                except LeaseLost:
                    self._abort()
                    return
                if cancel:
                    self._stop(Outcome.CANCELLED)
