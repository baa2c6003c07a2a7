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
    with pytest.raises(services.Conflict, match="already stored here"):
        services.import_checkpoint(document)

    # a fresh database: the run and its rows are gone
    request_id = run.requests.get().request_id
    Run.objects.all().delete()
    imported = services.import_checkpoint(document)
    assert imported.status == RunStatus.WAITING
    assert imported.requests.get().request_id == request_id
    services.respond(imported.requests.get().pk, {"approved": True})
    finished = execute(imported)
    assert finished.outputs == ["published 'Port' (revision 1)"]
