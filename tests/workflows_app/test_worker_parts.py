"""The worker's pieces (``workflows_app/worker/``), each for its own job: the shape of event
rows, the record storage, group commit as the live messages show it, the heartbeat between
checkpoints, and the request log."""

import asyncio

import pytest
from django.db import DEFAULT_DB_ALIAS, connections

from workflows_app import services
from workflows_app.engine import (CheckpointInfo, ExecutorCompletedEvent, ExecutorFailedEvent,
                                  ExecutorInvokedEvent, RequestInfoEvent,
                                  SuperstepCompletedEvent, SuperstepStartedEvent,
                                  WorkflowFailedEvent, WorkflowOutputEvent, WorkflowRunState,
                                  WorkflowStartedEvent, WorkflowStatusEvent,
                                  WorkflowStoppedEvent)
from workflows_app.models import Checkpoint, PendingRequest, RegisteredWorkflow, Run
from workflows_app.states import RequestStatus, RunStatus
from workflows_app.worker import RunExecution
from workflows_app.worker.event_log import EventLog, error_text
from workflows_app.worker.request_log import RequestLog
from workflows_app.worker.run_record import RunRecordStorage

pytestmark = pytest.mark.django_db


class Unencodable:
    def __repr__(self) -> str:
        return "U" * 3000


# --------------------------------------------------------------------------- event rows
def test_each_engine_event_becomes_a_row_of_a_documented_shape():
    log = EventLog("run-1", last_seq=5)
    error = RuntimeError("it broke")
    events = [
        WorkflowStartedEvent(CheckpointInfo("c0", 0)),
        WorkflowStartedEvent(None),
        WorkflowStatusEvent(WorkflowRunState.IN_PROGRESS),
        SuperstepStartedEvent(1),
        ExecutorInvokedEvent("counter", {"n": 1}),
        WorkflowOutputEvent("counter", Unencodable()),
        RequestInfoEvent("r1", "reviewer", ["draft"], bool),
        RequestInfoEvent("r2", "reviewer", None, lambda: None),
        ExecutorFailedEvent("counter", error),
        ExecutorCompletedEvent("x" * 150),
        SuperstepCompletedEvent(1, CheckpointInfo("c1", 1)),
        SuperstepCompletedEvent(2, None),
        WorkflowStoppedEvent(CheckpointInfo("c1", 1), "because"),
        WorkflowFailedEvent(error, "counter"),
    ]
    rows = [log.record(event) for event in events]
    assert [r["seq"] for r in rows] == list(range(6, 6 + len(events)))
    assert all(r["run_id"] == "run-1" and r["created_at"] for r in rows)
    shape = [(r["type"], r["superstep"], r["executor_id"], r["data"]) for r in rows]
    assert shape[:8] == [
        ("started", None, "", {"checkpoint_id": "c0"}),
        ("started", None, "", {}),
        ("status", None, "", {"state": "IN_PROGRESS"}),
        ("superstep_started", 1, "", {}),
        ("executor_invoked", 1, "counter", {"n": 1}),
        ("output", 1, "counter", {"__repr__": "U" * 2000}),
        ("request_info", 1, "reviewer", {"request_id": "r1", "source_executor_id": "reviewer",
                                         "data": ["draft"], "response_type": "bool"}),
        ("request_info", 1, "reviewer", {"request_id": "r2", "source_executor_id": "reviewer",
                                         "data": None, "response_type": repr(
                                             events[7].response_type)}),
    ]
    assert shape[8:] == [
        ("executor_failed", 1, "counter", {"error": "RuntimeError: it broke"}),
        ("executor_completed", 1, "x" * 100, None),
        ("superstep_completed", 1, "", {"checkpoint_id": "c1"}),
        ("superstep_completed", 2, "", {}),
        # Events without a superstep of their own get the one last started.
        ("stopped", 1, "", {"checkpoint_id": "c1", "reason": "because"}),
        ("failed", 1, "counter", {"error": "RuntimeError: it broke"}),
    ]
    assert log.take() == rows and log.take() == []
    assert error_text(KeyError("k")) == "KeyError: 'k'"


def test_a_custom_event_type_is_cut_to_the_column():
    class Long(WorkflowStatusEvent):
        type = "t" * 50
    row = EventLog("r", 0).record(Long(WorkflowRunState.IDLE))
    assert row["type"] == "t" * 40


# --------------------------------------------------------------------------- record storage
def on_this_connection(coroutine):
    """Run ``coroutine`` on this thread's connection, as a worker's private loop does."""
    connection = connections[DEFAULT_DB_ALIAS]

    async def run():
        connections[DEFAULT_DB_ALIAS] = connection
        return await coroutine
    return asyncio.run(run())


def test_the_record_storage_loads_outputs_and_stages_rows_with_them(execute, monkeypatch):
    monkeypatch.setenv("DJANGO_ALLOW_ASYNC_UNSAFE", "true")  # as in a worker's private loop
    run = execute(services.start_run("long-loop", {"rounds": 2}))
    storage = RunRecordStorage(run.pk)
    assert storage.outputs == [] and storage.outputs_unsaved
    checkpoint = on_this_connection(storage.load(run.head_checkpoint_id))
    assert checkpoint.checkpoint_id == run.head_checkpoint_id
    assert storage.outputs == [3] and storage.outputs_unsaved
    storage.outputs_unsaved = False
    storage.add_output(4)
    assert storage.outputs == [3, 4] and storage.outputs_unsaved
    checkpoint.checkpoint_id, checkpoint.previous_checkpoint_id = "next", run.head_checkpoint_id
    assert on_this_connection(storage.save(checkpoint)) == "next"
    staged = storage.take_staged()
    assert [row.pk for row in staged] == ["next"] and storage.take_staged() == []
    assert staged[0].base_id is not None  # a delta against the run's own rows


# --------------------------------------------------------------------------- commits, live
class Recorder:
    """Stands in for the process's publisher: keeps what the worker would send."""

    def __init__(self) -> None:
        self.messages = []

    def send(self, messages) -> None:
        self.messages.extend(messages)

    def of_type(self, kind):
        """Messages of ``kind`` to the run's own group (status goes to the list's too)."""
        return [m for group, m in self.messages
                if m["type"] == kind and group.startswith("run-")]


def executed(run):
    execution = RunExecution(run.pk)
    execution.publisher = recorder = Recorder()
    result = execution.execute()
    return result, recorder, Run.objects.get(pk=run.pk)


@pytest.mark.parametrize("flush_seconds, commits", [(60, 0), (0, 11)])
def test_fast_supersteps_share_a_commit_unless_each_is_committed_alone(
        settings, flush_seconds, commits):
    settings.STEPSTONE = {**settings.STEPSTONE, "CHECKPOINT_FLUSH_SECONDS": flush_seconds}
    run = services.start_run("long-loop", {"rounds": 5})
    result, live, run = executed(run)
    assert result == "completed" and run.outputs == [15]
    batches = live.of_type("run.events")
    # One message per commit (the entry checkpoint and 10 supersteps, each alone or all
    # together at the end), then one with the task's end.
    assert len(batches) == commits + 1
    seqs = [e["seq"] for batch in batches for e in batch["events"]]
    assert seqs == list(range(1, run.events.count() + 1))
    statuses = [m["status"] for m in live.of_type("run.status")]
    assert statuses[0] == RunStatus.RUNNING and statuses[-1] == RunStatus.COMPLETED
    # Every message concerns this run (progress names runs by id; the requests hint none).
    about = set()
    for _, message in live.messages:
        if message["type"] == "runs.progress":
            about |= set(message["supersteps"])
        elif message["type"] != "requests.changed":
            about.add(message["run_id"])
    assert about == {str(run.pk)}


def test_a_run_of_an_unknown_workflow_fails_at_once_naming_it():
    ghost = RegisteredWorkflow.objects.create(name="ghost", title="Ghost",
                                              graph_signature_hash="x")
    run = Run.objects.create(workflow=ghost, input=None)
    result, live, run = executed(run)
    assert result.startswith("failed: UnknownWorkflow: no workflow named 'ghost'")
    assert run.status == RunStatus.FAILED and "no workflow named 'ghost'" in run.error
    assert run.finished_at is not None and run.lease_owner == ""
    assert [m["status"] for m in live.of_type("run.status")] == ["running", "failed"]


# --------------------------------------------------------------------------- heartbeat
def test_between_slow_checkpoints_the_heartbeat_commits_and_renews_the_lease(
        test_workflows, settings):
    settings.STEPSTONE = {**settings.STEPSTONE, "CHECKPOINT_FLUSH_SECONDS": 0.05,
                          "HEARTBEAT_SECONDS": 0.05, "LEASE_SECONDS": 30}
    run = services.start_run("intruder", {"rounds": 3, "step_ms": 300, "observe": True})
    result, _, run = executed(run)
    assert result == "completed"
    # During tick n (superstep 2n - 1) every earlier checkpoint is committed already: the
    # heartbeat committed what the fast echo superstep left waiting.
    assert [o["committed"] for o in run.outputs] == [1, 3, 5]
    assert all(o["lease_ahead"] for o in run.outputs)


def test_a_cancel_is_noticed_between_checkpoints_by_the_heartbeat(test_workflows, settings):
    # No commit falls inside the run (a minute's group), so only the heartbeat can notice.
    settings.STEPSTONE = {**settings.STEPSTONE, "CHECKPOINT_FLUSH_SECONDS": 60,
                          "HEARTBEAT_SECONDS": 0.05}
    run = services.start_run("intruder", {"rounds": 20, "cancel_at": 2, "step_ms": 200})
    result, _, run = executed(run)
    assert result == "cancelled" and run.status == RunStatus.CANCELLED
    assert run.outputs == [1, 2]  # stopped after tick 2's superstep (3), not at the end
    stopped = run.events.get(type="stopped")
    assert stopped.data["reason"] == "an operator cancelled the run"


def test_a_lease_lost_between_checkpoints_stops_the_task_writing_nothing(test_workflows,
                                                                          settings):
    settings.STEPSTONE = {**settings.STEPSTONE, "CHECKPOINT_FLUSH_SECONDS": 60,
                          "HEARTBEAT_SECONDS": 0.05}
    run = services.start_run("intruder", {"rounds": 20, "steal_at": 2, "step_ms": 200})
    result, live, run = executed(run)
    assert result.startswith("lease lost")
    assert run.lease_owner != "" and run.status == RunStatus.RUNNING
    assert not Checkpoint.objects.filter(run=run).exists() and not run.events.exists()
    assert live.of_type("run.events") == []


# --------------------------------------------------------------------------- requests
def test_delivery_marks_only_this_runs_request(execute):
    parent = execute(services.start_run("document-review", {"title": "T"}))
    child = execute(services.rehydrate_run(parent.pk, parent.head_checkpoint_id))
    mine, theirs = child.requests.get(), parent.requests.get()
    assert mine.request_id == theirs.request_id  # a rehydrated run re-raises the same id
    RequestLog(child.pk).save({}, [mine.request_id])
    assert PendingRequest.objects.get(pk=mine.pk).delivered
    assert not PendingRequest.objects.get(pk=theirs.pk).delivered


def test_a_request_raised_again_after_its_answer_was_taken_opens_again(execute):
    run = execute(services.start_run("document-review", {"title": "T"}))
    request = run.requests.get()
    services.respond(request.pk, {"approved": False})
    execute(run)  # delivers it; the reviser asks again with a new request
    request.refresh_from_db()
    assert (request.status, request.delivered) == (RequestStatus.ANSWERED, True)
    services.resume_run(run.pk, run.checkpoints.filter(pending_request_count=1)
                        .order_by("created_at").first().pk)
    run = execute(run)  # the first request's checkpoint raises it again
    request.refresh_from_db()
    assert (request.status, request.delivered, request.response) == (
        RequestStatus.OPEN, False, None)
