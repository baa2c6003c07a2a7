"""The checkpoint retention policy (``services.prune_checkpoints``), its command and its
schedule, against real SQLite."""

import pytest
from django.core.management import call_command
from django_q.models import Schedule

from workflows_app import services
from workflows_app.models import Checkpoint, Run
from workflows_app.states import RunStatus

pytestmark = pytest.mark.django_db


def ids_of(run) -> list[str]:
    return list(Checkpoint.objects.filter(run=run).order_by("created_at")
                .values_list("checkpoint_id", flat=True))


def test_pruning_keeps_the_newest_and_what_they_are_stored_against(execute):
    run = execute(services.start_run("long-loop", {"rounds": 20}))
    before = ids_of(run)
    report = services.prune_checkpoints(keep=5)
    after = ids_of(run)
    assert set(before[-5:]) <= set(after)
    needed = set()
    for checkpoint_id in before[-5:]:  # each kept row's bases, down to the whole one
        needed |= {link.key for link in Checkpoint.objects.read_chain(checkpoint_id)[1]}
    assert set(after) == needed
    assert report.runs == 1 and report.checkpoints == len(before) - len(after) > 20
    assert report.bytes > 0
    # What is kept restores exactly as before: resume from the oldest of the newest five.
    services.resume_run(run.pk, before[-5])
    run = execute(run)
    assert (run.status, run.outputs) == (RunStatus.COMPLETED, [210])
    assert services.prune_checkpoints(keep=5).checkpoints > 0  # the new branch's elders


def test_pruning_spares_runs_in_flight_requests_and_rehydrate_sources(execute):
    waiting = execute(services.start_run("document-review", {"title": "W"}))
    cancelled = execute(services.start_run("document-review", {"title": "C"}))
    services.cancel_run(cancelled.pk)
    source = execute(services.start_run("long-loop", {"rounds": 6}))
    origin = ids_of(source)[2]
    services.rehydrate_run(source.pk, origin)
    waiting_ids, cancelled_ids = ids_of(waiting), ids_of(cancelled)

    services.prune_checkpoints(keep=1)
    assert ids_of(waiting) == waiting_ids  # not finished: untouched
    # Cancelled while its request was open: the checkpoints holding it stay.
    holding = set(Checkpoint.objects.filter(run=cancelled, pending_request_count__gt=0)
                  .values_list("checkpoint_id", flat=True))
    assert holding and holding <= set(ids_of(cancelled))
    assert origin in ids_of(source)  # a rehydrated run came from it
    Checkpoint.objects.read_chain(origin)  # and it still restores


def test_nothing_is_pruned_with_keep_zero_or_in_a_dry_run(execute):
    run = execute(services.start_run("long-loop", {"rounds": 5}))
    before = ids_of(run)
    assert services.prune_checkpoints(keep=0).checkpoints == 0
    dry = services.prune_checkpoints(keep=2, dry_run=True)
    assert dry.checkpoints > 0 and ids_of(run) == before
    with pytest.raises(services.InvalidInput, match="keep"):
        services.prune_checkpoints(keep=-1)


def test_the_command_and_the_schedule_run_the_sweep(execute, capsys):
    run = execute(services.start_run("long-loop", {"rounds": 10}))
    call_command("prune_checkpoints", "--keep", "3", "--dry-run")
    assert "would delete" in capsys.readouterr().out and len(ids_of(run)) == 21
    call_command("prune_checkpoints", "--keep", "3")
    out = capsys.readouterr().out
    assert out.startswith("deleted ") and len(ids_of(run)) < 21
    schedule = Schedule.objects.get(name="stepstone-prune-checkpoints")
    assert (schedule.func, schedule.schedule_type) == (
        "workflows_app.tasks.prune_checkpoints", Schedule.HOURLY)


def test_checkpoints_holding_a_request_still_open_are_kept(execute):
    run = execute(services.start_run("document-review", {"title": "Draft"}))
    services.respond(run.requests.get().pk, {"approved": False})  # revise: a second request
    run = execute(run)
    assert run.status == RunStatus.WAITING and run.requests.filter(status="open").count() == 1
    # Finished while its request is open (e.g. failed by hand in the database): the sweep
    # may prune the run but not the checkpoints that hold a request.
    Run.objects.filter(pk=run.pk).update(status=RunStatus.FAILED)
    holding = set(Checkpoint.objects.filter(run=run, pending_request_count__gt=0)
                  .values_list("checkpoint_id", flat=True))
    assert len(holding) >= 2  # around the first request and around the second
    assert services.prune_checkpoints(keep=1).checkpoints > 0
    assert holding <= set(ids_of(run))
    # Once no request is open, they are ordinary old checkpoints.
    run.requests.update(status="cancelled")
    services.prune_checkpoints(keep=1)
    assert not holding <= set(ids_of(run))
