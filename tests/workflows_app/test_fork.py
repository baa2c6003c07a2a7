"""Edit-and-fork through the service: ``services.fork_checkpoint`` stores an edited copy of
a checkpoint as the first checkpoint of a new run, records who changed what, and the new run
executes the edited state in the Django store."""

from __future__ import annotations

import pytest

from workflows_app import services
from workflows_app.models import Checkpoint, OperatorAction, PendingRequest, Run
from workflows_app.states import ActionKind, CheckpointKind, RunStatus

pytestmark = pytest.mark.django_db

TICK_2 = {"n": 2, "rounds": 3, "fail_at": None, "step_ms": 0}


def _counts() -> tuple[int, ...]:
    return (Run.objects.count(), Checkpoint.objects.count(), OperatorAction.objects.count(),
            PendingRequest.objects.count())


@pytest.fixture
def loop(execute):
    """A completed long-loop of 3 rounds (output 1+2+3 = 6) and its checkpoint at superstep 2:
    the counter's total is 1 and Tick(1) waits for the ticker."""
    run = execute(services.start_run("long-loop", {"rounds": 3}))
    assert run.outputs == [6]
    return run, run.checkpoints.get(superstep=2)


def test_a_fork_runs_the_edited_state_as_a_new_run(loop, execute, operator):
    run, source = loop
    fork = services.fork_checkpoint(source.pk, [
        {"op": "set_executor_state", "executor_id": "counter", "key": "total", "value": 100},
    ], user=operator)

    assert fork.pk != run.pk and fork.status == RunStatus.QUEUED
    assert fork.parent_run_id == run.pk and fork.source_checkpoint_id == source.pk
    edited = fork.head_checkpoint
    assert edited.run_id == fork.pk and edited.kind == CheckpointKind.EDITED
    assert edited.previous_id == source.pk and edited.superstep == source.superstep
    assert edited.graph_signature_hash == source.graph_signature_hash
    document = edited.decoded()
    assert document["executor_states"]["counter"]["total"] == 100
    assert document["metadata"]["edit"]["author"] == "op"

    action = OperatorAction.objects.get(run=fork)
    assert action.kind == ActionKind.FORK and action.username == "op"
    assert action.checkpoint_id == source.pk
    assert action.detail["edited_checkpoint"] == edited.pk
    assert action.detail["changes"] == [
        {"path": "executor_states.counter.total", "before": 1, "after": 100}]

    done = execute(fork)
    assert done.status == RunStatus.COMPLETED and done.outputs == [105]  # 100 + 2 + 3
    assert execute(Run.objects.get(pk=run.pk)).outputs == [6]  # the source run is untouched
    assert source.decoded()["executor_states"]["counter"]["total"] == 1


def test_a_typed_message_edited_as_plain_json_is_delivered_as_its_type(loop, execute):
    _, source = loop
    fork = services.fork_checkpoint(source.pk, [
        {"op": "replace_message", "index": 0, "data": TICK_2}])
    # the ticker gets Tick(2) and sends Tick(3): the counter adds 3 to its 1
    assert execute(fork).outputs == [4]
    assert fork.head_checkpoint.decoded()["metadata"]["edit"]["author"] is None


def test_a_removed_message_leaves_nothing_to_run(loop, execute):
    _, source = loop
    fork = services.fork_checkpoint(source.pk, [{"op": "remove_message", "index": 0}])
    done = execute(fork)
    assert done.status == RunStatus.COMPLETED and done.outputs == []


@pytest.mark.parametrize("edits, problem", [
    ([], "a non-empty list of edits"),
    ({"op": "remove_message"}, "a non-empty list of edits"),
    ([{"op": "drop_table"}], r"edits\[0\].op: must be one of"),
    ([{"op": "remove_message"}], r"edits\[0\].index: required"),
    ([{"op": "remove_message", "index": "0"}], r"edits\[0\].index: must be an integer"),
    ([{"op": "remove_message", "index": 0, "extra": 1}], "unknown fields for remove_message"),
    ([{"op": "set_executor_state", "executor_id": "ghost", "key": "total", "value": 1}],
     "there is no executor 'ghost'"),
    ([{"op": "set_executor_state", "executor_id": "counter", "key": "nope", "value": 1}],
     "executor 'counter' state has no key 'nope'"),
    ([{"op": "set_shared_state", "key": "nope", "value": 1}], "shared state has no key 'nope'"),
    ([{"op": "remove_message", "index": 5}], "there is no pending message 5"),
    ([{"op": "replace_message", "index": 0, "data": {"n": "two"}}], r"edits\[0\].data"),
    ([{"op": "replace_message", "index": 0, "data": 3}], r"edits\[0\].data"),
    ([{"op": "set_shared_state", "key": "x\x00", "value": 1}], "NUL"),
])
def test_refused_edits_change_nothing_and_say_what_is_wrong(loop, edits, problem):
    _, source = loop
    before = _counts()
    with pytest.raises(services.InvalidInput, match=problem):
        services.fork_checkpoint(source.pk, edits)
    assert _counts() == before


def test_a_missing_checkpoint_or_a_changed_graph_is_refused(loop):
    _, source = loop
    with pytest.raises(services.NotFound):
        services.fork_checkpoint("no-such-checkpoint", [{"op": "remove_message", "index": 0}])
    Checkpoint.objects.filter(pk=source.pk).update(graph_signature_hash="0" * 64)
    before = _counts()
    with pytest.raises(services.Conflict, match="changed since checkpoint"):
        services.fork_checkpoint(source.pk, [{"op": "remove_message", "index": 0}])
    assert _counts() == before


def test_a_fork_of_a_fork_chains_its_lineage(loop, execute):
    _, source = loop
    first = services.fork_checkpoint(source.pk, [
        {"op": "set_executor_state", "executor_id": "counter", "key": "total", "value": 10}])
    second = services.fork_checkpoint(first.head_checkpoint_id, [
        {"op": "replace_executor_state", "executor_id": "counter",
         "state": {"total": 20, "seen": [1]}}])
    assert second.head_checkpoint.previous_id == first.head_checkpoint_id
    assert execute(second).outputs == [25]


# --------------------------------------------------------------------------- the API
def _client(user):
    from rest_framework.test import APIClient
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_api_forks_a_checkpoint_into_a_new_run(loop, users, execute):
    run, source = loop
    edits = [{"op": "set_executor_state", "executor_id": "counter", "key": "total", "value": 50}]
    created = _client(users.operator).post(f"/api/checkpoints/{source.pk}/fork/",
                                           {"edits": edits}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["status"] == "queued" and body["parent_run"] == str(run.pk)
    assert body["source_checkpoint"] == source.pk
    assert execute(Run.objects.get(pk=body["id"])).outputs == [55]


@pytest.mark.parametrize("who, body, status, says", [
    ("viewer", {"edits": [{"op": "remove_message", "index": 0}]}, 403, ""),
    ("operator", {}, 400, "edits"),
    ("operator", {"edits": []}, 400, "edits"),
    ("operator", {"edits": [{"op": "set_shared_state", "key": "nope", "value": 1}]}, 400,
     "shared state has no key 'nope'"),
])
def test_the_api_refuses_forks_and_changes_nothing(loop, users, who, body, status, says):
    _, source = loop
    before = _counts()
    answer = _client(getattr(users, who)).post(f"/api/checkpoints/{source.pk}/fork/", body,
                                               format="json")
    assert answer.status_code == status, answer.content
    assert says in answer.content.decode()
    assert _counts() == before


def test_the_api_says_404_and_409(loop, users):
    _, source = loop
    client = _client(users.operator)
    edits = {"edits": [{"op": "remove_message", "index": 0}]}
    assert client.post("/api/checkpoints/nope/fork/", edits, format="json").status_code == 404
    Checkpoint.objects.filter(pk=source.pk).update(graph_signature_hash="0" * 64)
    answer = client.post(f"/api/checkpoints/{source.pk}/fork/", edits, format="json")
    assert answer.status_code == 409 and "changed since" in answer.json()["detail"]


# --------------------------------------------------------------------------- the admin
def test_the_read_only_admin_links_a_checkpoint_to_its_edit_and_fork_page(loop, admin_client):
    from django.urls import reverse
    _, source = loop
    fork_page = reverse("dashboard:checkpoint-fork", args=[source.pk])
    page = admin_client.get(reverse("admin:workflows_app_checkpoint_change", args=[source.pk]))
    assert page.status_code == 200 and fork_page in page.content.decode()
    before = _counts()
    chosen = admin_client.post(reverse("admin:workflows_app_checkpoint_changelist"),
                               {"action": "fork_from", "_selected_action": [source.pk]})
    assert chosen.status_code == 302 and chosen["Location"] == fork_page
    assert _counts() == before  # the page forks, once the operator has edited


def test_a_fork_of_a_waiting_checkpoint_waits_on_its_own_copy_of_the_requests(execute, operator):
    review = execute(services.start_run("document-review", {"title": "Plan"}))
    assert review.status == RunStatus.WAITING
    fork = execute(services.fork_checkpoint(review.head_checkpoint_id, [
        {"op": "set_shared_state", "key": "draft-1", "value": "An edited draft."}], operator))
    assert fork.status == RunStatus.WAITING
    assert fork.head_checkpoint.decoded()["shared_state"] == {"draft-1": "An edited draft."}
    (request,) = fork.requests.open()
    services.respond(request.pk, {"approved": True}, operator)
    assert execute(fork).status == RunStatus.COMPLETED
    assert Run.objects.get(pk=review.pk).status == RunStatus.WAITING  # the source still waits
    assert review.requests.open().count() == 1


def test_the_openapi_schema_describes_the_fork_route(users):
    schema = _client(users.viewer).get("/api/schema/?format=json").json()
    fork = schema["paths"]["/api/checkpoints/{checkpoint_id}/fork/"]["post"]
    assert "201" in fork["responses"]
    body = fork["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    assert body.endswith("/ForkInput")


def test_an_enum_is_taken_by_the_name_pages_show_or_by_its_value():
    import enum

    class Light(enum.Enum):
        RED = "red"
        GREEN = 2

    assert services._typed("GREEN", Light.RED, "value") is Light.GREEN
    assert services._typed(2, Light.RED, "value") is Light.GREEN
    with pytest.raises(services.InvalidValue, match="must be one of"):
        services._typed("BLUE", Light.RED, "value")
