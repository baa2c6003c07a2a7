"""A run executed in-process exactly as a worker executes it, against real SQLite."""

import pytest

from workflows_app import services
from workflows_app.lifecycle import claim
from workflows_app.worker import RunExecution
from workflows_app.models import Checkpoint, PendingRequest, RunEvent
from workflows_app.states import CheckpointKind, RequestStatus, RunStatus

pytestmark = pytest.mark.django_db


def lineage(run):
    """Checkpoints from the head back to the first, following previous_id."""
    rows = {c.pk: c for c in Checkpoint.objects.all()}
    chain, current = [], rows.get(run.head_checkpoint_id)
    while current is not None:
        chain.append(current)
        current = rows.get(current.previous_id)
    return chain


def test_a_run_completes_with_outputs_events_and_a_checkpoint_per_superstep(execute):
    run = execute(services.start_run("long-loop", {"rounds": 5}))
    assert run.status == RunStatus.COMPLETED and run.outputs == [15]
    assert run.lease_owner == "" and run.finished_at is not None
    chain = lineage(run)
    assert [c.superstep for c in reversed(chain)] == list(range(0, run.current_superstep + 1))
    assert chain[-1].kind == CheckpointKind.ENTRY
    assert all(c.kind == CheckpointKind.SUPERSTEP for c in chain[:-1])
    seqs = list(run.events.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))
    completed = list(run.events.filter(type="superstep_completed").values_list("superstep", flat=True))
    assert completed == list(range(1, run.current_superstep + 1))
    assert run.events.last().data == {"state": "IDLE"}


def test_each_example_reaches_its_expected_end(execute):
    words = execute(services.start_run("map-reduce", "b a b\nc b a"))
    assert words.outputs == [{"b": 3, "a": 2, "c": 1}]
    routed = execute(services.start_run("ticket-router", {"subject": "Server down", "priority": "high"}))
    assert routed.outputs == ["urgent-desk takes 'Server down' (answer within 1 h)"]


def test_waiting_run_holds_no_lease_and_continues_when_answered(execute, operator):
    run = execute(services.start_run("document-review", {"title": "Q3"}))
    assert run.status == RunStatus.WAITING and run.lease_owner == ""
    request = run.requests.get()
    assert request.status == RequestStatus.OPEN
    assert request.response_schema["properties"]["approved"]["type"] == "boolean"

    services.respond(request.pk, {"approved": False, "comment": "tighter"}, operator)
    run = execute(run)
    assert run.status == RunStatus.WAITING
    second = run.requests.get(status=RequestStatus.OPEN)
    assert second.request_data["fields"]["revision"] == 2
    first = PendingRequest.objects.get(pk=request.pk)
    assert first.answered_by == operator and first.delivered

    services.respond(second.pk, {"approved": True}, operator)
    run = execute(run)
    assert run.status == RunStatus.COMPLETED
    assert run.outputs == ["published 'Q3' (revision 2)"]
    kinds = [c.kind for c in reversed(lineage(run))]
    assert kinds.count(CheckpointKind.RESPONSE) == 2


def test_a_failed_run_resumed_from_its_last_checkpoint_ends_like_an_uninterrupted_one(execute):
    clean = execute(services.start_run("long-loop", {"rounds": 12}))
    failing = execute(services.start_run("long-loop", {"rounds": 12, "fail_at": 7}))
    assert failing.status == RunStatus.FAILED and "told to fail at tick 7" in failing.error
    assert failing.events.filter(type="executor_failed", executor_id="counter").exists()
    head = failing.head_checkpoint
    services.resume_run(failing.pk, head.pk)
    resumed = execute(failing)
    assert resumed.status == RunStatus.COMPLETED
    assert resumed.outputs == clean.outputs == [78]
    chain = lineage(resumed)
    assert head in chain  # the new checkpoints chain to the one resumed from


def test_resume_from_an_early_checkpoint_replays_and_keeps_outputs_of_that_lineage(execute):
    run = execute(services.start_run("long-loop", {"rounds": 6}))
    entry = run.checkpoints.get(kind=CheckpointKind.ENTRY)
    services.resume_run(run.pk, entry.pk)
    again = execute(run)
    assert again.status == RunStatus.COMPLETED and again.outputs == [21]
    assert Checkpoint.objects.filter(previous_id=entry.pk).count() == 2  # two branches


def test_rehydrate_makes_a_linked_run_that_continues_from_the_checkpoint(execute):
    source = execute(services.start_run("long-loop", {"rounds": 8}))
    middle = source.checkpoints.get(superstep=6)
    child = execute(services.rehydrate_run(source.pk, middle.pk))
    assert child.parent_run == source and child.source_checkpoint == middle
    assert child.status == RunStatus.COMPLETED and child.outputs == [36]
    first = child.checkpoints.order_by("created_at").first()
    assert first.previous_id == middle.pk and first.superstep == 7


def test_a_second_delivery_of_the_task_runs_nothing(execute):
    run = execute(services.start_run("long-loop", {"rounds": 3}))
    events, checkpoints = run.events.count(), run.checkpoints.count()
    assert RunExecution(run.pk).execute().startswith("skipped")
    assert run.events.count() == events and run.checkpoints.count() == checkpoints


def test_only_one_worker_can_hold_a_run(execute):
    run = services.start_run("long-loop", {"rounds": 3})
    assert claim(run.pk, "worker-a") is not None
    assert claim(run.pk, "worker-b") is None
    assert RunExecution(run.pk, owner="worker-c").execute().startswith("skipped")


def test_cancel_of_a_waiting_run_cancels_its_requests(execute):
    run = execute(services.start_run("document-review", {"title": "X"}))
    services.cancel_run(run.pk)
    run.refresh_from_db()
    assert run.status == RunStatus.CANCELLED
    assert run.requests.get().status == RequestStatus.CANCELLED
    with pytest.raises(services.Conflict):
        services.cancel_run(run.pk)


def test_corrupted_checkpoint_fails_only_its_run_with_a_clear_error(execute):
    broken = execute(services.start_run("document-review", {"title": "A"}))
    healthy = execute(services.start_run("document-review", {"title": "B"}))
    Checkpoint.objects.filter(pk=broken.head_checkpoint_id).update(document=b'{"oops": 1}')
    services.respond(broken.requests.get().pk, {"approved": True})
    services.respond(healthy.requests.get().pk, {"approved": True})
    broken, healthy = execute(broken), execute(healthy)
    assert broken.status == RunStatus.FAILED
    assert broken.head_checkpoint_id in broken.error and "corrupt" in broken.error
    assert healthy.status == RunStatus.COMPLETED


def test_events_record_every_engine_event_once_in_order(execute):
    run = execute(services.start_run("map-reduce", "one two"))
    types = list(run.events.values_list("type", flat=True))
    assert types[0] == "started" and types[-1] == "status"
    assert types.count("superstep_started") == types.count("superstep_completed") == 3
    assert types.count("executor_invoked") == 1 + 4 + 1
    assert RunEvent.objects.filter(run=run).values("seq").distinct().count() == len(types)


@pytest.mark.parametrize("flush_seconds", [0, 60])
def test_every_checkpoint_is_committed_whether_alone_or_in_one_group(execute, settings,
                                                                       flush_seconds):
    settings.STEPSTONE = {**settings.STEPSTONE, "CHECKPOINT_FLUSH_SECONDS": flush_seconds}
    run = execute(services.start_run("long-loop", {"rounds": 6}))
    assert run.status == RunStatus.COMPLETED and run.outputs == [21]
    assert [c.superstep for c in reversed(lineage(run))] == list(range(0, 13))
    seqs = list(run.events.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


# --------------------------------------------------------------------------- stopping
def test_a_cancel_during_a_run_stops_it_at_its_next_checkpoint_without_a_failure(
        test_workflows, execute, settings):
    settings.STEPSTONE = {**settings.STEPSTONE, "CHECKPOINT_FLUSH_SECONDS": 0}
    run = execute(services.start_run("intruder", {"rounds": 10, "cancel_at": 3}))
    assert run.status == RunStatus.CANCELLED and run.finished_at is not None
    # Tick 3 runs in superstep 5: the commit of its checkpoint sees the cancel, and the
    # engine stops before superstep 6.
    assert run.current_superstep == 5 and run.outputs == [1, 2, 3]
    events = list(run.events.values_list("type", "data"))
    types = [kind for kind, _ in events]
    assert types[-2:] == ["stopped", "status"] and events[-1][1] == {"state": "STOPPED"}
    assert events[-2][1] == {"checkpoint_id": run.head_checkpoint_id,
                             "reason": "an operator cancelled the run"}
    assert "failed" not in types and "executor_failed" not in types
    assert types.count("superstep_completed") == 5
    seqs = list(run.events.values_list("seq", flat=True))
    assert seqs == list(range(1, len(seqs) + 1))


def test_a_task_slice_of_zero_hands_over_at_every_checkpoint_without_a_failure(execute,
                                                                               settings):
    settings.STEPSTONE = {**settings.STEPSTONE, "TASK_SLICE_SECONDS": 0}
    run = services.start_run("long-loop", {"rounds": 3})
    tasks = []
    while run.status == RunStatus.QUEUED:
        tasks.append(RunExecution(run.pk).execute())
        run.refresh_from_db()
    assert run.status == RunStatus.COMPLETED and run.outputs == [6]
    assert tasks[:-1] == ["handed over"] * (len(tasks) - 1) and tasks[-1] == "completed"
    types = list(run.events.values_list("type", flat=True))
    assert "failed" not in types and types.count("stopped") == len(tasks) - 1
    assert {e.data["reason"] for e in run.events.filter(type="stopped")} == {
        "the task's slice is used up: a new task continues the run"}
    assert [s for t, s in run.events.values_list("type", "superstep")
            if t == "superstep_completed"] == list(range(1, 7))
