"""The run lifecycle: the transitions as data, refusals that change nothing, and the
activity trail that attributes every operator action."""

import pytest

from workflows_app import lifecycle, services
from workflows_app.models import OperatorAction, PendingRequest, Run
from workflows_app.states import ActionKind, Outcome, RequestStatus, RunStatus
from workflows_app.worker.request_log import RequestLog

pytestmark = pytest.mark.django_db

EVERY_STATUS = set(RunStatus.values)


def test_every_status_is_reached_and_left_and_operators_never_move_a_held_run():
    targets = {t for _, (_, ts) in lifecycle.TRANSITIONS.items() for t in ts}
    assert targets == EVERY_STATUS
    sources = {s for _, (ss, _) in lifecycle.TRANSITIONS.items() for s in ss}
    assert sources == EVERY_STATUS | {None}  # no status is a dead end: all can be resumed
    # An operator never moves a run a worker holds or is about to hold.
    for transition in ("resume", "cancel", "answer"):
        assert not lifecycle.TRANSITIONS[transition][0] & {RunStatus.RUNNING}
    assert RunStatus.QUEUED not in lifecycle.TRANSITIONS["resume"][0]
    assert set(lifecycle.OUTCOME_STATUS) == set(Outcome) - {Outcome.LEASE_LOST, Outcome.SKIPPED}


@pytest.mark.parametrize("status", [RunStatus.QUEUED, RunStatus.RUNNING])
def test_resume_of_a_run_a_worker_holds_is_refused_and_changes_nothing(execute, status):
    run = execute(services.start_run("long-loop", {"rounds": 2}))
    Run.objects.filter(pk=run.pk).update(status=status)
    actions = OperatorAction.objects.count()
    with pytest.raises(services.Conflict, match=f"is {status}; wait for it or cancel it"):
        services.resume_run(run.pk, run.checkpoints.get(superstep=0).pk)
    after = Run.objects.get(pk=run.pk)
    assert (after.status, after.head_checkpoint_id) == (status, run.head_checkpoint_id)
    assert OperatorAction.objects.count() == actions


def test_every_operator_action_is_recorded_with_who_did_it(execute, users):
    op, approver = users.operator, users.approver
    review = services.start_run("document-review", {"title": "T"}, op)
    review = execute(review)
    request = review.requests.get()
    services.respond(request.pk, {"approved": False, "comment": "again"}, approver)
    review = execute(review)
    entry = review.checkpoints.get(superstep=0)
    services.resume_run(review.pk, entry.pk, op)
    child = services.rehydrate_run(review.pk, entry.pk, op)
    services.cancel_run(child.pk, op)
    loop = execute(services.start_run("long-loop", {"rounds": 3}, op))
    services.prune_checkpoints(keep=1)

    trail = [(a.kind, a.username, a.run_id, a.checkpoint_id)
             for a in OperatorAction.objects.order_by("id")]
    assert trail[:6] == [
        (ActionKind.START, "operator", review.pk, ""),
        (ActionKind.ANSWER, "approver", review.pk, ""),
        (ActionKind.RESUME, "operator", review.pk, entry.pk),
        (ActionKind.REHYDRATE, "operator", child.pk, entry.pk),
        (ActionKind.CANCEL, "operator", child.pk, ""),
        (ActionKind.START, "operator", loop.pk, ""),
    ]
    answer = OperatorAction.objects.get(kind=ActionKind.ANSWER)
    assert answer.request_id == request.pk and answer.user == approver
    assert answer.detail == {"request_id": request.request_id,
                             "response": PendingRequest.objects.get(pk=request.pk).response}
    resume = OperatorAction.objects.get(kind=ActionKind.RESUME)
    assert resume.detail["cancelled_requests"] == 1 and resume.detail["from_status"] == "waiting"
    prunes = OperatorAction.objects.filter(kind=ActionKind.PRUNE)
    assert {a.run_id for a in prunes} == {loop.pk} and prunes.get().user is None
    assert prunes.get().detail["checkpoints"] > 0


def test_an_import_is_recorded_with_the_checkpoint_it_brought(execute, users):
    from workflows_app.models import Checkpoint
    review = execute(services.start_run("document-review", {"title": "T"}))
    document = services.export_checkpoint(review.head_checkpoint_id)
    Checkpoint.objects.filter(run=review).delete()  # as if it came from elsewhere
    Run.objects.filter(pk=review.pk).delete()
    imported = services.import_checkpoint(document, users.operator)
    action = imported.actions.get()
    assert (action.kind, action.user, action.checkpoint_id) == (
        ActionKind.IMPORT, users.operator, document["checkpoint"]["checkpoint_id"])


def test_a_task_that_ends_waiting_is_queued_again_when_an_answer_arrived_meanwhile(execute):
    run = execute(services.start_run("document-review", {"title": "T"}))
    request = run.requests.get()
    # The worker's task is still under way when the answer arrives: answered, not queued.
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_owner="w")
    services.respond(request.pk, {"approved": True})
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING
    assert lifecycle.end_task(run.pk, "someone-else", Outcome.WAITING) is None  # not theirs
    assert lifecycle.end_task(run.pk, "w", Outcome.WAITING) == RunStatus.QUEUED
    assert execute(run).status == RunStatus.COMPLETED


def test_a_restore_raising_a_request_again_keeps_an_answer_given_meanwhile(execute):
    run = execute(services.start_run("document-review", {"title": "T"}))
    request = run.requests.get()
    event = run.events.get(type="request_info")
    services.respond(request.pk, {"approved": True})
    raised = {request.request_id: (_RequestInfo(request), {"data": event.data})}
    RequestLog(run.pk).save(raised, [])  # a task restoring the head raises it again
    request.refresh_from_db()
    assert request.status == RequestStatus.ANSWERED and request.response is not None
    PendingRequest.objects.filter(pk=request.pk).update(status=RequestStatus.CANCELLED)
    RequestLog(run.pk).save(raised, [])  # a cancelled one opens again
    request.refresh_from_db()
    assert (request.status, request.response) == (RequestStatus.OPEN, None)


class _RequestInfo:
    """What ``RequestLog`` reads of a ``request_info`` event."""

    def __init__(self, request: PendingRequest) -> None:
        from workflows_app.engine.encoding import decode_type
        self.request_id = request.request_id
        self.source_executor_id = request.source_executor_id
        self.response_type = decode_type(request.response_type)


# --------------------------------------------------------------------------- each move
def test_a_start_queues_the_run_once_it_commits(after_commit, users):
    with after_commit.capture():
        run = services.start_run("long-loop", {"rounds": 2}, users.operator)
    assert after_commit.enqueued == [run.pk]
    assert after_commit.announced == [(run.pk, RunStatus.QUEUED)]
    assert run.created_by == users.operator and run.head_checkpoint_id is None
    assert run.current_superstep == 0


def test_a_resume_resets_the_run_to_its_checkpoint_and_queues_it(execute, after_commit,
                                                                  users):
    failed = execute(services.start_run("long-loop", {"rounds": 9, "fail_at": 4}))
    assert failed.error and failed.finished_at is not None
    Run.objects.filter(pk=failed.pk).update(cancel_requested=True)
    checkpoint = failed.checkpoints.get(superstep=3)
    before = Run.objects.get(pk=failed.pk).updated_at
    with after_commit.capture():
        resumed = services.resume_run(failed.pk, checkpoint.pk, users.operator)
    assert (resumed.status, resumed.head_checkpoint_id, resumed.current_superstep) == (
        RunStatus.QUEUED, checkpoint.pk, 3)
    assert (resumed.error, resumed.finished_at, resumed.cancel_requested) == ("", None, False)
    assert resumed.updated_at > before
    assert after_commit.enqueued == [failed.pk]
    assert after_commit.announced == [(failed.pk, RunStatus.QUEUED)]
    action = resumed.actions.get(kind=ActionKind.RESUME)
    assert action.detail == {"superstep": 3, "from_status": "failed", "cancelled_requests": 0,
                             "error": failed.error, "branch": 1}
    assert resumed.branch == 1 and resumed.branches.get().action == action
    assert failed.error.startswith("RuntimeError: told to fail at tick 4")


def test_a_cancel_of_a_queued_run_ends_it_at_once_and_queues_nothing(after_commit, users):
    run = services.start_run("document-review", {"title": "T"})
    with after_commit.capture():
        cancelled = services.cancel_run(run.pk, users.operator)
    assert (cancelled.status, cancelled.cancel_requested) == (RunStatus.CANCELLED, True)
    assert cancelled.finished_at is not None
    assert after_commit.enqueued == [] and after_commit.announced == [
        (run.pk, RunStatus.CANCELLED)]
    assert cancelled.actions.get(kind=ActionKind.CANCEL).detail == {
        "from_status": "queued", "cancelled_requests": 0}
    with pytest.raises(services.Conflict, match=f"run {run.pk} is already cancelled"):
        services.cancel_run(run.pk, users.operator)
    assert cancelled.actions.filter(kind=ActionKind.CANCEL).count() == 1


def test_a_cancel_of_a_waiting_run_cancels_its_requests_and_says_how_many(execute, users):
    run = execute(services.start_run("document-review", {"title": "T"}))
    cancelled = services.cancel_run(run.pk, users.operator)
    assert cancelled.requests.get().status == RequestStatus.CANCELLED
    assert cancelled.actions.get(kind=ActionKind.CANCEL).detail == {
        "from_status": "waiting", "cancelled_requests": 1}


def test_a_cancel_of_a_running_run_only_asks_its_worker(after_commit, users):
    run = services.start_run("long-loop", {"rounds": 2})
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_owner="w")
    with after_commit.capture():
        asked = services.cancel_run(run.pk, users.operator)
    assert (asked.status, asked.cancel_requested, asked.finished_at) == (
        RunStatus.RUNNING, True, None)
    assert after_commit.enqueued == [] and after_commit.announced == []
    assert asked.actions.get(kind=ActionKind.CANCEL).detail == {
        "from_status": "running", "cancelled_requests": 0}


def test_an_answer_queues_a_waiting_run_and_not_a_running_one(execute, after_commit, users):
    run = execute(services.start_run("document-review", {"title": "T"}))
    with after_commit.capture():
        answered = services.respond(run.requests.get().pk, {"approved": False}, users.approver)
    assert answered.answered_at is not None and answered.answered_by == users.approver
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED
    assert after_commit.enqueued == [run.pk]
    assert after_commit.announced == [(run.pk, RunStatus.QUEUED)]
    run = execute(run)
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_owner="w")
    after_commit.enqueued.clear()
    with after_commit.capture():
        services.respond(run.requests.get(status=RequestStatus.OPEN).pk, {"approved": True})
    assert Run.objects.get(pk=run.pk).status == RunStatus.RUNNING
    assert after_commit.enqueued == []


@pytest.mark.parametrize("outcome, status, finished, enqueued", [
    (Outcome.COMPLETED, RunStatus.COMPLETED, True, False),
    (Outcome.WAITING, RunStatus.WAITING, False, False),
    (Outcome.FAILED, RunStatus.FAILED, True, False),
    (Outcome.CANCELLED, RunStatus.CANCELLED, True, False),
    (Outcome.HANDED_OVER, RunStatus.QUEUED, False, True),
])
def test_end_task_moves_only_the_owners_running_run_and_releases_the_lease(
        after_commit, outcome, status, finished, enqueued):
    mine = services.start_run("long-loop", {"rounds": 2})
    same_owner = services.start_run("long-loop", {"rounds": 2})
    Run.objects.update(status=RunStatus.RUNNING, lease_owner="w", lease_expires_at=mine.created_at)
    with after_commit.capture():
        assert lifecycle.end_task(mine.pk, "w", outcome, error="boom", outputs=[1]) == status
    run = Run.objects.get(pk=mine.pk)
    assert (run.status, run.lease_owner, run.lease_expires_at, run.outputs) == (
        status, "", None, [1])
    assert (run.finished_at is not None) == finished
    assert run.error == ("boom" if outcome is Outcome.FAILED else "")
    assert after_commit.enqueued == ([mine.pk] if enqueued else [])
    other = Run.objects.get(pk=same_owner.pk)
    assert (other.status, other.lease_owner) == (RunStatus.RUNNING, "w")


def test_end_task_of_a_run_that_is_not_running_writes_nothing():
    run = services.start_run("long-loop", {"rounds": 2})
    Run.objects.filter(pk=run.pk).update(lease_owner="w")  # queued, yet named as its owner
    assert lifecycle.end_task(run.pk, "w", Outcome.COMPLETED) is None
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED


def test_a_task_cancelled_at_a_checkpoint_cancels_the_requests_still_open(execute):
    run = execute(services.start_run("document-review", {"title": "T"}))
    other = execute(services.start_run("document-review", {"title": "U"}))
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_owner="w")
    assert lifecycle.end_task(run.pk, "w", Outcome.CANCELLED) == RunStatus.CANCELLED
    assert run.requests.get().status == RequestStatus.CANCELLED
    assert other.requests.get().status == RequestStatus.OPEN


# --------------------------------------------------------------------------- claiming
def test_a_claim_takes_a_queued_run_or_an_expired_lease_and_counts_the_attempt():
    from datetime import timedelta

    from django.utils import timezone

    now = timezone.now()
    queued, expired, silent, held, other = (services.start_run("long-loop", {"rounds": 1})
                                            for _ in range(5))
    Run.objects.filter(pk=expired.pk).update(status=RunStatus.RUNNING, lease_owner="dead",
                                             lease_expires_at=now - timedelta(seconds=1),
                                             attempts=3, started_at=now - timedelta(hours=1))
    Run.objects.filter(pk=silent.pk).update(status=RunStatus.RUNNING, lease_owner="dead",
                                            lease_expires_at=None)
    Run.objects.filter(pk=held.pk).update(status=RunStatus.RUNNING, lease_owner="alive",
                                          lease_expires_at=now + timedelta(seconds=30))
    first = lifecycle.claim(queued.pk, "me")
    assert (first.status, first.lease_owner, first.attempts) == (RunStatus.RUNNING, "me", 1)
    assert first.lease_expires_at > now and first.started_at is not None
    assert first.updated_at > queued.updated_at and first.workflow.name == "long-loop"
    taken = lifecycle.claim(expired.pk, "me")
    assert (taken.lease_owner, taken.attempts) == ("me", 4)
    assert taken.started_at == now - timedelta(hours=1)  # started once, when first claimed
    assert lifecycle.claim(silent.pk, "me").lease_owner == "me"
    assert lifecycle.claim(held.pk, "me") is None
    assert Run.objects.get(pk=held.pk).lease_owner == "alive"
    assert Run.objects.get(pk=other.pk).started_at is None  # only the claimed run starts


def test_a_rehydrated_run_starts_at_its_checkpoint_recorded_with_its_source(execute, users):
    source = execute(services.start_run("long-loop", {"rounds": 3}))
    checkpoint = source.checkpoints.get(superstep=4)
    child = services.rehydrate_run(source.pk, checkpoint.pk, users.operator)
    assert (child.current_superstep, child.head_checkpoint_id, child.error) == (
        4, checkpoint.pk, "")
    action = child.actions.get()
    assert (action.kind, action.checkpoint_id, action.detail) == (
        ActionKind.REHYDRATE, checkpoint.pk, {"source_run": str(source.pk), "superstep": 4})


def test_an_anonymous_caller_is_recorded_as_the_system(execute):
    from django.contrib.auth.models import AnonymousUser

    run = services.start_run("long-loop", {"rounds": 1}, AnonymousUser())
    action = run.actions.get()
    assert (run.created_by, action.user, action.username) == (None, None, "")
    assert str(action) == "Started by the system"


def test_end_task_touches_the_row(execute):
    run = services.start_run("long-loop", {"rounds": 1})
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, lease_owner="w")
    before = Run.objects.get(pk=run.pk).updated_at
    lifecycle.end_task(run.pk, "w", Outcome.COMPLETED)
    assert Run.objects.get(pk=run.pk).updated_at > before


def test_an_imported_checkpoint_without_requests_waits_for_an_operator(execute, users):
    from workflows_app.models import Checkpoint

    loop = execute(services.start_run("long-loop", {"rounds": 2}))
    document = services.export_checkpoint(loop.checkpoints.get(superstep=2).pk)
    Checkpoint.objects.filter(run=loop).delete()
    loop.delete()
    imported = services.import_checkpoint(document, users.operator)
    assert (imported.status, imported.current_superstep) == (RunStatus.CANCELLED, 2)
    assert imported.error == "imported checkpoint: resume or rehydrate it to continue"
    assert imported.actions.get().username == "operator"
