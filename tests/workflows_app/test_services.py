import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from workflows_app import services

pytestmark = pytest.mark.django_db


def test_operator_account_is_created_once_with_a_usable_password():
    first = services.ensure_operator_account()
    assert first.username == "operator" and first.password
    user = get_user_model().objects.get(username="operator")
    assert user.is_superuser and user.check_password(first.password)

    again = services.ensure_operator_account()
    assert again == services.OperatorAccount("operator", None)
    assert get_user_model().objects.count() == 1


def test_operator_name_taken_by_a_plain_user_is_refused_without_changes():
    get_user_model().objects.create_user("operator", password="x-unused-1")
    with pytest.raises(services.ServiceError, match="not a superuser"):
        services.ensure_operator_account()
    assert not get_user_model().objects.filter(is_superuser=True).exists()


@pytest.mark.django_db(databases="__all__")  # and the channel layer's, when embedded
def test_bootstrap_command_prints_the_login_once(capsys):
    call_command("bootstrap", url="http://127.0.0.1:9999/")
    out = capsys.readouterr().out
    assert "http://127.0.0.1:9999/" in out and "password:" in out
    call_command("bootstrap")
    assert "password:" not in capsys.readouterr().out


# --------------------------------------------------------------------------- runs
from workflows_app.models import Checkpoint, PendingRequest, Run  # noqa: E402
from workflows_app.states import RequestStatus, RunStatus  # noqa: E402


def _counts():
    return (Run.objects.count(), Checkpoint.objects.count(), PendingRequest.objects.count())


def test_start_run_validates_input_against_the_start_executor_type():
    before = _counts()
    with pytest.raises(services.InvalidInput, match="input.rounds"):
        services.start_run("long-loop", {"rounds": "many"})
    with pytest.raises(services.NotFound, match="no workflow named 'nope'"):
        services.start_run("nope", {})
    assert _counts() == before
    run = services.start_run("long-loop", {"rounds": "3"})
    assert run.status == RunStatus.QUEUED
    assert run.input["fields"]["rounds"] == 3  # stored typed, as the engine will receive it


def test_resume_refuses_a_running_run_and_a_checkpoint_of_another_run(execute):
    first = execute(services.start_run("long-loop", {"rounds": 2}))
    second = services.start_run("long-loop", {"rounds": 2})
    with pytest.raises(services.InvalidInput, match="belongs to run"):
        services.resume_run(second.pk, first.head_checkpoint_id)
    with pytest.raises(services.NotFound):
        services.resume_run(first.pk, "no-such-checkpoint")
    assert Run.objects.get(pk=second.pk).status == RunStatus.QUEUED
    waiting = execute(services.start_run("document-review", {"title": "T"}))
    services.respond(waiting.requests.get().pk, {"approved": True})
    with pytest.raises(services.Conflict, match="is queued"):
        services.resume_run(waiting.pk, waiting.head_checkpoint_id)
    assert Run.objects.get(pk=waiting.pk).head_checkpoint_id == waiting.head_checkpoint_id


def test_respond_checks_type_and_refuses_a_second_answer(execute, operator):
    run = execute(services.start_run("document-review", {"title": "T"}))
    request = run.requests.get()
    with pytest.raises(services.InvalidInput, match="response.approved"):
        services.respond(request.pk, {"approved": "perhaps"}, operator)
    assert PendingRequest.objects.get(pk=request.pk).status == RequestStatus.OPEN
    services.respond(request.pk, {"approved": True}, operator)
    with pytest.raises(services.NotFound):
        services.respond("not-a-request", {"approved": True}, operator)
    with pytest.raises(services.Conflict, match=r"answered by op"):
        services.respond(request.pk, {"approved": False}, operator)
    assert Run.objects.get(pk=run.pk).status == RunStatus.QUEUED


def test_rehydrate_refuses_a_checkpoint_written_by_another_graph(execute):
    run = execute(services.start_run("long-loop", {"rounds": 2}))
    Checkpoint.objects.filter(pk=run.head_checkpoint_id).update(graph_signature_hash="0" * 64)
    before = _counts()
    with pytest.raises(services.Conflict, match="changed since checkpoint"):
        services.rehydrate_run(run.pk, run.head_checkpoint_id)
    assert _counts() == before


def test_export_then_import_restores_requests_and_refuses_tampering(execute):
    run = execute(services.start_run("document-review", {"title": "Port"}))
    document = services.export_checkpoint(run.head_checkpoint_id)
    assert document["workflow"] == "document-review"

    tampered = {**document, "checkpoint": {**document["checkpoint"], "superstep": 99}}
    with pytest.raises(services.InvalidInput, match="does not match its hash"):
        services.import_checkpoint(tampered)
    with pytest.raises(services.InvalidInput, match="not a Stepstone checkpoint"):
        services.import_checkpoint({"format": "other"})
    # into the installation that wrote it: a new run, with a copy of the checkpoint
    again = services.import_checkpoint(document)
    assert again.pk != run.pk and again.status == RunStatus.WAITING
    assert again.head_checkpoint_id not in (None, run.head_checkpoint_id)

    # a fresh database: the run and its rows are gone
    request_id = run.requests.get().request_id
    Run.objects.all().delete()
    imported = services.import_checkpoint(document)
    assert imported.status == RunStatus.WAITING
    assert imported.requests.get().request_id == request_id
    services.respond(imported.requests.get().pk, {"approved": True})
    finished = execute(imported)
    assert finished.outputs == ["published 'Port' (revision 1)"]


@pytest.mark.django_db(transaction=True)  # a flush cannot run inside a test's transaction
def test_the_roles_exist_with_their_permissions_and_come_back_after_a_flush():
    from django.contrib.auth.models import Group

    from workflows_app.permissions import ROLES

    for name, codenames in ROLES.items():
        held = set(Group.objects.get(name=name).permissions.values_list("codename", flat=True))
        assert set(codenames) <= held, name
    Group.objects.all().delete()
    call_command("flush", "--no-input")  # post_migrate follows a flush, as after migrate
    assert set(Group.objects.values_list("name", flat=True)) == set(ROLES)


def test_the_recovery_sweep_requeues_exactly_the_runs_whose_worker_is_gone(monkeypatch,
                                                                            settings):
    from datetime import timedelta

    from django.utils import timezone

    settings.STEPSTONE = {**settings.STEPSTONE, "RECOVER_QUEUED_AFTER_SECONDS": 120}
    enqueued = []
    monkeypatch.setattr(services, "enqueue_run", enqueued.append)
    now = timezone.now()
    runs = {name: services.start_run("long-loop", {"rounds": 1}) for name in (
        "expired", "leased", "lost_task", "fresh_task", "claimed", "waiting", "stale_lease")}
    def set_row(name, **fields):
        Run.objects.filter(pk=runs[name].pk).update(**fields)
    set_row("expired", status=RunStatus.RUNNING, lease_owner="w",
            lease_expires_at=now - timedelta(seconds=1))
    set_row("leased", status=RunStatus.RUNNING, lease_owner="w",
            lease_expires_at=now + timedelta(seconds=30))
    set_row("lost_task", updated_at=now - timedelta(seconds=121))
    set_row("fresh_task", updated_at=now - timedelta(seconds=60))
    set_row("claimed", lease_owner="w", updated_at=now - timedelta(seconds=121))
    set_row("waiting", status=RunStatus.WAITING, updated_at=now - timedelta(seconds=999))
    set_row("stale_lease", status=RunStatus.WAITING, lease_expires_at=now - timedelta(hours=1))
    recovered = services.recover_stale_runs()
    assert sorted(map(str, recovered)) == sorted(str(runs[n].pk) for n in ("expired", "lost_task"))
    assert sorted(map(str, enqueued)) == sorted(map(str, recovered))


def test_refusals_name_the_missing_run_or_checkpoint(execute):
    run = execute(services.start_run("long-loop", {"rounds": 1}))
    missing = "00000000-0000-0000-0000-000000000000"
    with pytest.raises(services.NotFound) as refused:
        services.cancel_run(missing)
    assert str(refused.value) == f"run {missing} not found"
    for empty in ("", None):
        with pytest.raises(services.InvalidInput) as refused:
            services.resume_run(run.pk, empty)
        assert str(refused.value) == "checkpoint_id: a checkpoint id is required"
    with pytest.raises(services.NotFound) as refused:
        services.rehydrate_run(run.pk, "nope")
    assert str(refused.value) == "checkpoint nope not found"


def test_retention_keeps_the_configured_number_by_default_and_records_who_pruned(
        execute, settings, users):
    settings.STEPSTONE = {**settings.STEPSTONE, "RETAIN_CHECKPOINTS": 4}
    run = execute(services.start_run("long-loop", {"rounds": 5}))
    ids = list(run.checkpoints.order_by("created_at").values_list("pk", flat=True))
    report = services.prune_checkpoints(user=users.operator)
    kept = set(run.checkpoints.values_list("pk", flat=True))
    assert set(ids[-4:]) <= kept and report.checkpoints == len(ids) - len(kept) > 0
    action = run.actions.get(kind="prune")
    assert action.user == users.operator
    assert action.detail == {"checkpoints": report.checkpoints, "bytes": report.bytes,
                             "keep": 4}
    settings.STEPSTONE = {**settings.STEPSTONE, "RETAIN_CHECKPOINTS": 0}
    assert services.prune_checkpoints().checkpoints == 0  # 0 keeps everything


@pytest.mark.parametrize("value, problem", [
    ({"title": "a\x00b"}, "input: text must not contain NUL characters (\\u0000)"),
    ({"title": "a\ud800b"}, "input: text must not contain unpaired surrogates"),
    ({"title": "ok", "body": "deep \x00 inside"}, "input: text must not contain NUL"),
])
def test_text_no_database_can_store_is_refused_by_name(value, problem):
    before = _counts()
    with pytest.raises(services.InvalidInput) as refused:
        services.start_run("document-review", value)
    assert str(refused.value).startswith(problem)
    assert _counts() == before


def test_a_nul_inside_a_list_or_a_key_is_found_too(make_user):
    for value in (["fine", ["deeper", "x\x00"]], {"k\x00": 1}):
        with pytest.raises(services.InvalidInput, match="answer: text must not contain NUL"):
            services._storable(value, "answer")
    assert services._storable({"k": ["a", ("b", 1)]}, "answer") == {"k": ["a", ("b", 1)]}


def test_the_sweeps_are_scheduled_forever_at_their_intervals():
    from django_q.models import Schedule

    recover = Schedule.objects.get(name="stepstone-recover-runs")
    assert (recover.func, recover.schedule_type, recover.minutes, recover.repeats) == (
        "workflows_app.tasks.recover_runs", Schedule.MINUTES, 1, -1)
    prune = Schedule.objects.get(name="stepstone-prune-checkpoints")
    assert (prune.func, prune.schedule_type, prune.repeats) == (
        "workflows_app.tasks.prune_checkpoints", Schedule.HOURLY, -1)
    Schedule.objects.filter(name="stepstone-recover-runs").update(func="changed", repeats=3)
    Schedule.objects.filter(name="stepstone-prune-checkpoints").delete()
    services.ensure_recovery_schedule()  # set back, not added twice
    services.ensure_retention_schedule()  # made again
    assert Schedule.objects.filter(name="stepstone-recover-runs").count() == 1
    recover = Schedule.objects.get(name="stepstone-recover-runs")
    assert (recover.func, recover.repeats) == ("workflows_app.tasks.recover_runs", -1)
    prune = Schedule.objects.get(name="stepstone-prune-checkpoints")
    assert (prune.func, prune.schedule_type, prune.repeats) == (
        "workflows_app.tasks.prune_checkpoints", Schedule.HOURLY, -1)


def test_the_retention_report_adds_up_every_pruned_run(execute):
    runs = [execute(services.start_run("long-loop", {"rounds": 3})) for _ in range(2)]
    sizes = {run.pk: sum(run.checkpoints.values_list("size_bytes", flat=True)) for run in runs}
    counts = {run.pk: run.checkpoints.count() for run in runs}
    report = services.prune_checkpoints(keep=1)
    left = {run.pk: run.checkpoints.count() for run in runs}
    assert report.runs == 2
    assert report.checkpoints == sum(counts[pk] - left[pk] for pk in counts)
    kept_bytes = {run.pk: sum(run.checkpoints.values_list("size_bytes", flat=True))
                  for run in runs}
    assert report.bytes == sum(sizes[pk] - kept_bytes[pk] for pk in sizes)


def test_an_export_reads_its_run_and_workflow_with_the_checkpoint(execute,
                                                                  django_assert_num_queries):
    run = execute(services.start_run("long-loop", {"rounds": 1}))
    with django_assert_num_queries(2):  # the row with its run and workflow; its chain
        document = services.export_checkpoint(run.head_checkpoint_id)
    assert document["workflow"] == "long-loop"
