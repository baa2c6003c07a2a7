"""Guards for the seams a refactor of the worker could break without other tests noticing:
the lease fence, outputs carried across restores, requests of an abandoned state, the order
retention deletes in, and the content hash checked on every read."""

import pytest

from workflows_app import services
from workflows_app.engine import WorkflowCheckpointError
from workflows_app.models import Checkpoint, Run
from workflows_app.row_bytes import encode, pack
from workflows_app.states import RequestStatus, RunStatus
from workflows_app.worker import RunExecution

from .workflows import OTHER_WORKER

pytestmark = pytest.mark.django_db


def test_a_worker_whose_lease_was_taken_over_writes_nothing_more(test_workflows, settings):
    # Each checkpoint committed on its own, so the takeover falls between two commits.
    settings.STEPSTONE = {**settings.STEPSTONE, "CHECKPOINT_FLUSH_SECONDS": 0}
    run = services.start_run("intruder", {"rounds": 10, "steal_at": 3})
    result = RunExecution(run.pk).execute()
    run.refresh_from_db()
    assert "lease" in result
    # Tick 3 runs in superstep 5: its checkpoint, and everything after, belongs to the
    # worker that took the run over, not to this one.
    assert max(Checkpoint.objects.filter(run=run).values_list("superstep", flat=True)) == 4
    assert (run.status, run.lease_owner, run.current_superstep) == (
        RunStatus.RUNNING, OTHER_WORKER, 4)
    assert run.outputs == [1, 2]
    assert not run.events.filter(superstep__gte=5, type="superstep_completed").exists()


def test_resume_carries_the_outputs_of_the_lineage_it_restores(test_workflows, execute):
    run = execute(services.start_run("emitter", {"rounds": 6}))
    assert run.outputs == [1, 2, 3, 4, 5, 6]
    middle = run.checkpoints.get(superstep=6)  # after ticks 1..3
    assert Checkpoint.objects.read_record(middle.pk)["outputs"] == [1, 2, 3]
    services.resume_run(run.pk, middle.pk)
    again = execute(run)
    assert again.status == RunStatus.COMPLETED and again.outputs == [1, 2, 3, 4, 5, 6]


def test_rehydrate_carries_the_outputs_of_its_source_checkpoint(test_workflows, execute):
    run = execute(services.start_run("emitter", {"rounds": 5}))
    middle = run.checkpoints.get(superstep=4)  # after ticks 1 and 2
    child = execute(services.rehydrate_run(run.pk, middle.pk))
    assert child.status == RunStatus.COMPLETED and child.outputs == [1, 2, 3, 4, 5]


def test_a_run_handed_over_slice_by_slice_keeps_every_output(test_workflows, execute, settings):
    settings.STEPSTONE = {**settings.STEPSTONE, "TASK_SLICE_SECONDS": 0}
    run = services.start_run("emitter", {"rounds": 4})
    tasks = 0
    while run.status in (RunStatus.QUEUED, RunStatus.RUNNING) and tasks < 50:
        run = execute(run)
        tasks += 1
    assert tasks > 4  # one superstep a task
    assert run.status == RunStatus.COMPLETED and run.outputs == [1, 2, 3, 4]
    completed = list(run.events.filter(type="superstep_completed")
                     .values_list("superstep", flat=True))
    assert completed == list(range(1, 8))  # each superstep reported once


def test_resume_from_before_a_request_cancels_the_abandoned_request(execute):
    run = execute(services.start_run("document-review", {"title": "Q"}))
    abandoned = run.requests.get()
    entry = run.checkpoints.get(superstep=0)
    services.resume_run(run.pk, entry.pk)
    abandoned.refresh_from_db()
    assert abandoned.status == RequestStatus.CANCELLED
    with pytest.raises(services.Conflict):
        services.respond(abandoned.pk, {"approved": True})
    run = execute(run)
    assert run.status == RunStatus.WAITING
    assert run.requests.filter(status=RequestStatus.OPEN).count() == 1
    assert run.requests.get(status=RequestStatus.OPEN).pk != abandoned.pk


def test_retention_prunes_more_than_one_batch_of_rows(execute):
    run = execute(services.start_run("long-loop", {"rounds": 300}))  # 601 checkpoints
    ids = list(Checkpoint.objects.filter(run=run).order_by("created_at")
               .values_list("checkpoint_id", flat=True))
    report = services.prune_checkpoints(keep=3)
    assert report.checkpoints > 500
    left = set(Checkpoint.objects.filter(run=run).values_list("checkpoint_id", flat=True))
    assert set(ids[-3:]) <= left and len(left) == len(ids) - report.checkpoints
    assert Checkpoint.objects.read_record(ids[-1])["outputs"] == [45150]


def test_a_row_whose_bytes_differ_from_its_hash_is_refused_even_if_they_decode(execute):
    run = execute(services.start_run("long-loop", {"rounds": 2}))
    entry = run.checkpoints.get(superstep=0)
    record = Checkpoint.objects.read_record(entry.pk)
    record["checkpoint"]["superstep"] = 7  # well-formed, but not what was written
    Checkpoint.objects.filter(pk=entry.pk).update(document=pack(encode(record)))
    with pytest.raises(WorkflowCheckpointError, match="does not match its hash"):
        Checkpoint.objects.read_record(entry.pk)
    for later in run.checkpoints.exclude(pk=entry.pk):  # every row stored against it
        with pytest.raises(WorkflowCheckpointError, match="does not match its hash"):
            Checkpoint.objects.read_record(later.pk)
