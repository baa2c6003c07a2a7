"""The REST API (SPEC §2): every route, token and session authentication, the dashboard's
roles refused with 403, and bad input / conflicts answered with 400, 404 or 409 and a message
that names the problem -- with nothing written by a refused request.

Runs execute in this process through the ``execute`` fixture (as a worker would); nothing is
enqueued, since a test's transaction never commits.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
from django.contrib.staticfiles import finders
from rest_framework.authtoken.models import Token
from rest_framework.pagination import PageNumberPagination
from rest_framework.test import APIClient

from workflows_app import services
from workflows_app.models import Checkpoint, PendingRequest, Run, RunEvent
from workflows_app.states import RequestStatus, RunStatus

pytestmark = pytest.mark.django_db

from tests.conftest import PASSWORD


# --------------------------------------------------------------------------- helpers
def _client(user=None) -> APIClient:
    """A client authenticated with ``user``'s token (anonymous without a user)."""
    client = APIClient()
    if user is not None:
        token, _ = Token.objects.get_or_create(user=user)
        client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _state() -> dict:
    """Every row count and the fields a refused action could have touched."""
    return {
        "counts": {model.__name__: model.objects.count()
                   for model in (Run, Checkpoint, PendingRequest, RunEvent)},
        "runs": list(Run.objects.order_by("pk").values_list(
            "pk", "status", "source_checkpoint_id", "head_checkpoint_id",
            "cancel_requested", "error", "finished_at", "updated_at")),
        "requests": list(PendingRequest.objects.order_by("pk").values_list(
            "pk", "status", "response", "answered_by_id", "answered_at")),
    }


@pytest.fixture
def unchanged(django_capture_on_commit_callbacks):
    """``with unchanged(): ...``: the block writes no row and enqueues no task."""
    @contextmanager
    def check():
        before = _state()
        with django_capture_on_commit_callbacks() as callbacks:
            yield
        assert _state() == before
        assert callbacks == [], "a refused request left work to do at commit"
    return check


def _refused(response, status: int, *words: str) -> None:
    """``response`` has ``status`` and its body names each of ``words``."""
    assert response.status_code == status, response.content
    body = response.content.decode()
    for word in words:
        assert word in body, f"{word!r} not in {body}"


def _rehash(document: dict) -> dict:
    """A hand-edited export whose content hash was recomputed to match."""
    body = json.dumps(document["checkpoint"], separators=(",", ":"))
    document["content_hash"] = hashlib.sha256(body.encode()).hexdigest()
    return document


@pytest.fixture
def seeded(execute):
    """A document review waiting on its open request, and a completed long loop."""
    review = execute(services.start_run("document-review", {"title": "Spec"}))
    loop = execute(services.start_run("long-loop", {"rounds": 3}))
    assert review.status == RunStatus.WAITING and loop.status == RunStatus.COMPLETED
    checkpoints = list(loop.checkpoints.order_by("created_at"))
    assert len(checkpoints) >= 3
    return SimpleNamespace(review=review, request=review.requests.get(), loop=loop,
                           checkpoints=checkpoints)


# --------------------------------------------------------------------------- workflows
def test_workflows_are_listed_with_graph_and_input_schema(users):
    client = _client(users.viewer)
    listed = client.get("/api/workflows/")
    assert listed.status_code == 200
    names = [w["name"] for w in listed.json()["results"]]
    assert {"document-review", "long-loop", "map-reduce", "ticket-router"} <= set(names)

    detail = client.get("/api/workflows/long-loop/").json()
    assert detail["graph"] and len(detail["graph_signature_hash"]) == 64
    loop_input = next(t for t in detail["input_schema"]["anyOf"] if t["title"] == "LoopInput")
    assert {"rounds", "fail_at", "step_ms"} <= set(loop_input["properties"])
    _refused(client.get("/api/workflows/nope/"), 404)


def test_start_run_creates_a_queued_run_with_typed_input(users, django_capture_on_commit_callbacks):
    client = _client(users.operator)
    with django_capture_on_commit_callbacks() as callbacks:
        created = client.post("/api/workflows/long-loop/runs/", {"input": {"rounds": "4"}},
                              format="json")
    assert created.status_code == 201, created.content
    run = Run.objects.get(pk=created.json()["id"])
    assert created.json()["status"] == run.status == RunStatus.QUEUED
    assert created.json()["workflow"] == "long-loop" and created.json()["created_by"] == "operator"
    assert run.input["fields"]["rounds"] == 4  # coerced to the start executor's type
    assert callbacks, "the run was not enqueued at commit"


# --------------------------------------------------------------------------- runs
def test_runs_are_paginated_newest_first_and_filtered(users, seeded, monkeypatch):
    monkeypatch.setattr(PageNumberPagination, "page_size", 2)
    queued = services.start_run("map-reduce", "a b a")
    client = _client(users.viewer)

    first = client.get("/api/runs/").json()
    assert first["count"] == 3 and len(first["results"]) == 2 and first["previous"] is None
    assert first["results"][0]["id"] == str(queued.pk)  # newest first
    second = client.get(first["next"]).json()
    assert len(second["results"]) == 1 and second["next"] is None
    ids = [r["id"] for r in first["results"] + second["results"]]
    assert sorted(ids) == sorted(str(r.pk) for r in (queued, seeded.review, seeded.loop))
    _refused(client.get("/api/runs/?page=9"), 404, "Invalid page")

    def ids_of(query):
        return [r["id"] for r in client.get(f"/api/runs/?{query}").json()["results"]]

    assert ids_of("status=completed") == [str(seeded.loop.pk)]
    assert ids_of("status=waiting") == [str(seeded.review.pk)]
    assert ids_of("workflow=map-reduce") == [str(queued.pk)]
    assert ids_of("workflow=long-loop&status=completed") == [str(seeded.loop.pk)]
    assert ids_of("workflow=long-loop&status=waiting") == []
    assert ids_of("status=nonsense") == []


def test_run_detail_and_unknown_or_malformed_run_ids(users, seeded):
    client = _client(users.viewer)
    detail = client.get(f"/api/runs/{seeded.loop.pk}/").json()
    assert detail["status"] == "completed" and detail["outputs"] == [6]
    assert detail["head_checkpoint"] == seeded.checkpoints[-1].pk
    _refused(client.get("/api/runs/00000000-0000-0000-0000-000000000000/"), 404)
    _refused(client.get("/api/runs/not-a-uuid/"), 404)


def test_events_after_a_seq_come_in_order(users, seeded):
    client = _client(users.viewer)
    every = client.get(f"/api/runs/{seeded.loop.pk}/events/").json()
    seqs = [e["seq"] for e in every]
    assert seqs == list(range(1, len(seqs) + 1)) == sorted(
        RunEvent.objects.filter(run=seeded.loop).values_list("seq", flat=True))
    middle = seqs[len(seqs) // 2]
    later = client.get(f"/api/runs/{seeded.loop.pk}/events/?after={middle}").json()
    assert [e["seq"] for e in later] == seqs[middle:]
    assert client.get(f"/api/runs/{seeded.loop.pk}/events/?after={seqs[-1]}").json() == []
    _refused(client.get(f"/api/runs/{seeded.loop.pk}/events/?after=last"), 400, "after")


def test_checkpoints_of_a_run_oldest_first(users, seeded):
    listed = _client(users.viewer).get(f"/api/runs/{seeded.loop.pk}/checkpoints/").json()
    assert [c["checkpoint_id"] for c in listed["results"]] == [c.pk for c in seeded.checkpoints]
    assert {c["run"] for c in listed["results"]} == {str(seeded.loop.pk)}
    assert listed["results"][0]["kind"] == "entry"


def test_resume_restarts_a_finished_run_from_its_checkpoint(users, seeded, execute):
    client = _client(users.operator)
    entry = seeded.checkpoints[0]
    resumed = client.post(f"/api/runs/{seeded.loop.pk}/resume/", {"checkpoint_id": entry.pk},
                          format="json")
    assert resumed.status_code == 200, resumed.content
    assert resumed.json()["status"] == "queued"
    run = Run.objects.get(pk=seeded.loop.pk)
    assert run.head_checkpoint_id == entry.pk and run.finished_at is None
    assert execute(run).outputs == [6]


def test_rehydrate_creates_a_new_linked_run(users, seeded, execute):
    client = _client(users.operator)
    source = seeded.checkpoints[1]
    before = _state()
    created = client.post(f"/api/runs/{seeded.loop.pk}/rehydrate/",
                          {"checkpoint_id": source.pk}, format="json")
    assert created.status_code == 201, created.content
    body = created.json()
    assert body["id"] != str(seeded.loop.pk) and body["status"] == "queued"
    assert body["parent_run"] == str(seeded.loop.pk) and body["source_checkpoint"] == source.pk
    assert Run.objects.count() == before["counts"]["Run"] + 1
    assert Run.objects.get(pk=seeded.loop.pk).status == RunStatus.COMPLETED  # untouched
    assert execute(Run.objects.get(pk=body["id"])).outputs == [6]


def test_cancel_stops_a_waiting_run_and_its_requests(users, seeded):
    cancelled = _client(users.operator).post(f"/api/runs/{seeded.review.pk}/cancel/")
    assert cancelled.status_code == 200, cancelled.content
    assert cancelled.json()["status"] == "cancelled"
    assert PendingRequest.objects.get(pk=seeded.request.pk).status == RequestStatus.CANCELLED


# --------------------------------------------------------------------------- checkpoints
def test_checkpoint_detail_is_decoded(users, seeded):
    head = seeded.checkpoints[-1]
    detail = _client(users.viewer).get(f"/api/checkpoints/{head.pk}/").json()
    assert detail["checkpoint_id"] == head.pk and detail["run"] == str(seeded.loop.pk)
    assert detail["document"] == head.decoded()
    assert set(detail["document"]["executor_states"]) == {"ticker", "counter"}


def test_checkpoint_diff_to_the_previous_one(users, seeded):
    client = _client(users.viewer)
    first, second = seeded.checkpoints[0], seeded.checkpoints[1]
    diff = client.get(f"/api/checkpoints/{second.pk}/diff/").json()
    assert diff["checkpoint_id"] == second.pk and diff["previous_checkpoint_id"] == first.pk
    assert {"path": "superstep", "change": "changed", "before": first.superstep,
            "after": second.superstep} in diff["changes"]
    initial = client.get(f"/api/checkpoints/{first.pk}/diff/").json()
    assert initial["previous_checkpoint_id"] is None
    assert all(change["change"] == "added" for change in initial["changes"])


def test_export_then_import_round_trip(users, portable, execute):
    assert portable["format"] == services.EXPORT_FORMAT
    assert portable["workflow"] == "document-review"
    client = _client(users.admin)
    imported = client.post("/api/checkpoints/import/", portable, format="json")
    assert imported.status_code == 201, imported.content
    run = Run.objects.get(pk=imported.json()["id"])
    assert run.status == RunStatus.WAITING
    assert run.head_checkpoint_id == portable["checkpoint"]["checkpoint_id"]
    exported = client.get(f"/api/checkpoints/{run.head_checkpoint_id}/export/").json()
    assert exported["content_hash"] == portable["content_hash"]
    assert exported["checkpoint"] == portable["checkpoint"]

    request = client.get("/api/requests/?status=open").json()["results"][0]
    assert request["run"] == str(run.pk)
    answered = client.post(f"/api/requests/{request['id']}/respond/",
                           {"response": {"approved": True}}, format="json")
    assert answered.status_code == 200, answered.content
    assert execute(run).outputs == ["published 'Elsewhere' (revision 1)"]


def test_unknown_checkpoints_are_404(users):
    client = _client(users.viewer)
    for suffix in ("", "diff/", "export/"):
        _refused(client.get(f"/api/checkpoints/no-such-checkpoint/{suffix}"), 404)


# --------------------------------------------------------------------------- requests
def test_open_requests_are_listed_and_answered(users, seeded, execute):
    client = _client(users.approver)
    services.start_run("long-loop", {"rounds": 1})  # no requests
    opened = client.get("/api/requests/?status=open").json()["results"]
    assert [r["id"] for r in opened] == [str(seeded.request.pk)]
    assert opened[0]["response_schema"]["properties"]["approved"]["type"] == "boolean"
    assert client.get("/api/requests/?status=answered").json()["results"] == []

    answered = client.post(f"/api/requests/{seeded.request.pk}/respond/",
                           {"response": {"approved": False, "comment": "shorter"}}, format="json")
    assert answered.status_code == 200, answered.content
    assert answered.json()["status"] == "answered" and answered.json()["answered_by"] == "approver"
    assert client.get("/api/requests/?status=open").json()["results"] == []
    assert Run.objects.get(pk=seeded.review.pk).status == RunStatus.QUEUED
    # rejected: the draft is revised and asked again
    assert execute(seeded.review).status == RunStatus.WAITING
    assert PendingRequest.objects.filter(run=seeded.review, status="open").count() == 1


# --------------------------------------------------------------------------- schema and docs
SPEC_PATHS = {
    "/api/workflows/": {"get"}, "/api/workflows/{name}/": {"get"},
    "/api/workflows/{name}/runs/": {"post"}, "/api/runs/": {"get"}, "/api/runs/{id}/": {"get"},
    "/api/runs/{id}/events/": {"get"}, "/api/runs/{id}/checkpoints/": {"get"},
    "/api/runs/{id}/resume/": {"post"}, "/api/runs/{id}/rehydrate/": {"post"},
    "/api/runs/{id}/cancel/": {"post"}, "/api/checkpoints/{checkpoint_id}/": {"get"},
    "/api/checkpoints/{checkpoint_id}/diff/": {"get"},
    "/api/checkpoints/{checkpoint_id}/export/": {"get"}, "/api/checkpoints/import/": {"post"},
    "/api/requests/": {"get"}, "/api/requests/{id}/respond/": {"post"},
}


def test_openapi_schema_describes_every_route(users):
    client = _client(users.viewer)
    yaml = client.get("/api/schema/")
    assert yaml.status_code == 200 and yaml.content.startswith(b"openapi: 3.")
    schema = client.get("/api/schema/?format=json").json()
    assert schema["openapi"].startswith("3.")
    for path, methods in SPEC_PATHS.items():
        assert methods <= set(schema["paths"].get(path, {})), path
    assert "tokenAuth" in schema["components"]["securitySchemes"]
    start = schema["paths"]["/api/workflows/{name}/runs/"]["post"]
    assert "201" in start["responses"]
    run_params = {p["name"] for p in schema["paths"]["/api/runs/"]["get"]["parameters"]}
    assert {"status", "workflow", "page"} <= run_params


def test_docs_page_uses_only_our_own_static_files(users):
    client = _client(users.viewer)
    page = client.get("/api/docs/")
    assert page.status_code == 200
    html = page.content.decode()
    assert not re.search(r"https?://", html), "the docs page loads something from the network"
    assert "/api/schema/" in html
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert any(a.endswith(".js") for a in assets) and any(a.endswith(".css") for a in assets)
    for asset in assets:
        assert asset.startswith("/static/"), asset
        assert finders.find(asset.removeprefix("/static/")), asset
        served = APIClient().get(asset)
        try:
            assert served.status_code == 200, asset
            assert b"".join(served.streaming_content), asset
        finally:
            served.close()


# --------------------------------------------------------------------------- authentication
def test_unauthenticated_requests_get_401(seeded, unchanged):
    client = _client()
    for url in ("/api/workflows/", "/api/runs/", f"/api/runs/{seeded.loop.pk}/",
                "/api/requests/?status=open", f"/api/checkpoints/{seeded.checkpoints[0].pk}/"):
        answer = client.get(url)
        _refused(answer, 401, "credentials were not provided")
        assert answer["WWW-Authenticate"] == "Token"
    with unchanged():
        _refused(client.post("/api/workflows/long-loop/runs/", {"input": {}}, format="json"), 401)
        _refused(client.post(f"/api/requests/{seeded.request.pk}/respond/",
                             {"response": {"approved": True}}, format="json"), 401)
        _refused(client.post(f"/api/runs/{seeded.review.pk}/cancel/"), 401)


def test_token_authentication(users, unchanged):
    assert _client(users.viewer).get("/api/runs/").status_code == 200
    bad = APIClient()
    bad.credentials(HTTP_AUTHORIZATION="Token not-a-key")
    _refused(bad.get("/api/runs/"), 401, "Invalid token")
    with unchanged():
        _refused(bad.post("/api/workflows/long-loop/runs/", {"input": {}}, format="json"), 401)


def test_session_authentication_needs_the_csrf_token_to_write(users, unchanged):
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username="operator", password=PASSWORD)
    assert client.get("/api/runs/").status_code == 200
    with unchanged():
        _refused(client.post("/api/workflows/long-loop/runs/", {"input": {}}, format="json"),
                 403, "CSRF")
    client.get("/login/")  # sets the CSRF cookie, as the dashboard does
    created = client.post("/api/workflows/long-loop/runs/", {"input": {"rounds": 1}},
                          format="json", HTTP_X_CSRFTOKEN=client.cookies["csrftoken"].value)
    assert created.status_code == 201, created.content


# The dashboard's roles: who may do what (status of the answer; 403 = refused).
ACTIONS = ("list", "start", "resume", "rehydrate", "import", "respond", "cancel")
ALLOWED = {"list": 200, "start": 201, "resume": 200, "rehydrate": 201, "cancel": 200,
           "import": 201, "respond": 200}
ROLES = {
    "nobody": set(),
    "viewer": {"list"},
    "operator": {"list", "start", "resume", "rehydrate", "cancel", "import"},
    "approver": {"list", "respond"},
    "admin": set(ACTIONS),
}


def _call(client, action: str, seeded, portable):
    if action == "list":
        return client.get("/api/runs/")
    if action == "start":
        return client.post("/api/workflows/document-review/runs/", {"input": {"title": "T"}},
                           format="json")
    if action == "resume":
        return client.post(f"/api/runs/{seeded.loop.pk}/resume/",
                           {"checkpoint_id": seeded.checkpoints[0].pk}, format="json")
    if action == "rehydrate":
        return client.post(f"/api/runs/{seeded.loop.pk}/rehydrate/",
                           {"checkpoint_id": seeded.checkpoints[0].pk}, format="json")
    if action == "cancel":
        return client.post(f"/api/runs/{seeded.review.pk}/cancel/")
    if action == "import":
        return client.post("/api/checkpoints/import/", portable, format="json")
    assert action == "respond"
    return client.post(f"/api/requests/{seeded.request.pk}/respond/",
                       {"response": {"approved": True}}, format="json")


@pytest.mark.parametrize("role", ROLES)
def test_roles_match_the_dashboard(role, users, seeded, portable, unchanged):
    client = _client(getattr(users, role))
    for action in ACTIONS:
        if action in ROLES[role]:
            answer = _call(client, action, seeded, portable)
            assert answer.status_code == ALLOWED[action], (role, action, answer.content)
        else:
            with unchanged():
                answer = _call(client, action, seeded, portable)
            _refused(answer, 403, "may not")


# --------------------------------------------------------------------------- bad input
@pytest.mark.parametrize("action", ["start", "resume", "rehydrate", "import", "respond"])
def test_malformed_json_is_400(action, users, seeded, unchanged):
    urls = {"start": "/api/workflows/long-loop/runs/",
            "resume": f"/api/runs/{seeded.loop.pk}/resume/",
            "rehydrate": f"/api/runs/{seeded.loop.pk}/rehydrate/",
            "import": "/api/checkpoints/import/",
            "respond": f"/api/requests/{seeded.request.pk}/respond/"}
    with unchanged():
        answer = _client(users.admin).post(urls[action], data='{"input": {"rounds": 2',
                                           content_type="application/json")
    _refused(answer, 400, "JSON parse error")


def test_start_refusals_name_the_problem(users, unchanged):
    client = _client(users.operator)
    with unchanged():
        _refused(client.post("/api/workflows/nope/runs/", {"input": {}}, format="json"),
                 404, "no workflow named 'nope'")
        _refused(client.post("/api/workflows/long-loop/runs/", {"input": {"rounds": "many"}},
                             format="json"), 400, "input.rounds")
        _refused(client.post("/api/workflows/document-review/runs/", {"input": {"body": "x"}},
                             format="json"), 400, "input.title")
        _refused(client.post("/api/workflows/map-reduce/runs/", {"input": {"text": 1}},
                             format="json"), 400, "input")
        _refused(client.post("/api/workflows/long-loop/runs/", {"rounds": 2}, format="json"),
                 400, '"input"', "required")
        _refused(client.post("/api/workflows/long-loop/runs/", {"input": None}, format="json"),
                 400, '"input"', "null")


def test_resume_and_rehydrate_refusals_name_the_problem(users, seeded, unchanged):
    client = _client(users.operator)
    other = seeded.review.head_checkpoint_id
    for action in ("resume", "rehydrate"):
        url = f"/api/runs/{seeded.loop.pk}/{action}/"
        with unchanged():
            _refused(client.post(url, {"checkpoint_id": "no-such-checkpoint"}, format="json"),
                     404, "checkpoint no-such-checkpoint not found")
            _refused(client.post(url, {"checkpoint_id": other}, format="json"),
                     400, "checkpoint_id", f"belongs to run {seeded.review.pk}")
            _refused(client.post(url, {}, format="json"), 400, "checkpoint_id", "required")
            _refused(client.post(url, {"checkpoint_id": ["a"]}, format="json"),
                     400, "checkpoint_id")
            _refused(client.post(f"/api/runs/00000000-0000-0000-0000-000000000000/{action}/",
                                 {"checkpoint_id": other}, format="json"), 404)


def test_respond_refusals_name_the_problem(users, seeded, unchanged):
    client = _client(users.approver)
    url = f"/api/requests/{seeded.request.pk}/respond/"
    with unchanged():
        _refused(client.post(url, {"response": {"approved": "perhaps"}}, format="json"),
                 400, "response.approved")
        _refused(client.post(url, {"response": "yes"}, format="json"), 400, "response")
        _refused(client.post(url, {"answer": True}, format="json"), 400, '"response"', "required")
        _refused(client.post("/api/requests/00000000-0000-0000-0000-000000000000/respond/",
                             {"response": {"approved": True}}, format="json"), 404)
        _refused(client.post("/api/requests/not-a-uuid/respond/",
                             {"response": {"approved": True}}, format="json"), 404)


def test_foreign_and_tampered_documents_are_refused(users, portable, unchanged):
    client = _client(users.operator)

    def post(document):
        return client.post("/api/checkpoints/import/", document, format="json")

    tampered = copy.deepcopy(portable)
    tampered["checkpoint"]["superstep"] += 1
    renamed = _rehash(copy.deepcopy(portable))
    renamed["workflow"] = "nope"
    with unchanged():
        _refused(post({"title": "my notes"}), 400, '"format"', '"checkpoint"', "required")
        _refused(post({**portable, "format": "other.tool"}),
                 400, "not a Stepstone checkpoint export")
        _refused(post({**portable, "version": 2}), 400, "version", "unsupported")
        _refused(post({**portable, "checkpoint": []}), 400, "checkpoint")
        _refused(post(tampered), 400, "content_hash", "altered")
        _refused(post(renamed), 404, "no workflow named 'nope'")


@pytest.mark.parametrize("field, value, words", [
    ("superstep", -1, ("checkpoint.superstep",)),
    ("superstep", 10**30, ("checkpoint.superstep",)),
    ("timestamp", "yesterday", ("checkpoint.timestamp", "yesterday")),
    ("timestamp", "2026-01-01T10:00:00", ("checkpoint.timestamp", "time zone")),
    ("checkpoint_id", "", ("checkpoint.checkpoint_id",)),
    ("checkpoint_id", "x" * 65, ("checkpoint.checkpoint_id", "64")),
    ("metadata", {"kind": "sideways"}, ("checkpoint.metadata.kind",)),
    ("messages", [{"no": "target"}], ("checkpoint", "target_id")),
])
def test_hand_edited_documents_with_a_matching_hash_are_400(field, value, words, users, portable,
                                                            unchanged):
    """Regression: a negative or huge superstep and an unparsable timestamp were 500s (CHECK
    constraint, integer overflow, ValueError); a naive timestamp, an empty or too long id and an
    unknown kind were stored (an unaddressable checkpoint, values PostgreSQL would refuse)."""
    document = copy.deepcopy(portable)
    document["checkpoint"][field] = value
    with unchanged():
        answer = _client(users.operator).post("/api/checkpoints/import/", _rehash(document),
                                              format="json")
    _refused(answer, 400, *words)


def test_hand_edited_request_ids_must_fit_the_requests_table(users, portable, unchanged):
    document = copy.deepcopy(portable)
    requests = document["checkpoint"]["pending_requests"]
    (record,) = requests.values()
    requests.clear()
    requests["r" * 101] = {**record, "request_id": "r" * 101}
    with unchanged():
        answer = _client(users.operator).post("/api/checkpoints/import/", _rehash(document),
                                              format="json")
    _refused(answer, 400, "checkpoint.pending_requests")


@pytest.mark.parametrize("field, value", [
    ("checkpoint_id", "c" * 64), ("superstep", 0), ("superstep", 2**31 - 1),
    ("metadata", {"graph": "kept"}),  # no kind: a superstep checkpoint
])
def test_hand_edited_documents_at_the_limits_are_imported(field, value, users, portable):
    document = copy.deepcopy(portable)
    document["checkpoint"][field] = value
    answer = _client(users.operator).post("/api/checkpoints/import/", _rehash(document),
                                          format="json")
    assert answer.status_code == 201, answer.content
    stored = Checkpoint.objects.get(run_id=answer.json()["id"])
    assert stored.kind == (document["checkpoint"]["metadata"].get("kind") or "superstep")
    if field != "metadata":
        assert getattr(stored, field if field != "checkpoint_id" else "pk") == value


@pytest.mark.parametrize("field, value, words", [
    ("superstep", 2**31, ("checkpoint.superstep: must be between 0 and 2147483647, got "
                          "2147483648",)),
    ("metadata", {"kind": "sideways"}, ("checkpoint.metadata.kind: must be one of entry, "
                                        "superstep, response",)),
])
def test_hand_edited_documents_just_past_the_limits_are_refused_by_name(field, value, words,
                                                                       users, portable):
    document = copy.deepcopy(portable)
    document["checkpoint"][field] = value
    answer = _client(users.operator).post("/api/checkpoints/import/", _rehash(document),
                                          format="json")
    _refused(answer, 400, *words)


@pytest.mark.parametrize("request_id, executor_id, accepted", [
    ("r" * 100, "reviewer", True), ("r" * 101, "reviewer", False),
    ("r1", "e" * 100, True), ("r1", "e" * 101, False), ("", "reviewer", False)])
def test_request_and_executor_ids_are_held_to_the_column(request_id, executor_id, accepted,
                                                          users, portable):
    document = copy.deepcopy(portable)
    requests = document["checkpoint"]["pending_requests"]
    (record,) = requests.values()
    requests.clear()
    requests[request_id] = {**record, "request_id": request_id,
                            "source_executor_id": executor_id}
    answer = _client(users.operator).post("/api/checkpoints/import/", _rehash(document),
                                          format="json")
    if accepted:
        assert answer.status_code == 201, answer.content
    else:
        _refused(answer, 400, "checkpoint.pending_requests: request ids and executor ids must "
                              "have 1 to 100 characters")


def test_a_corrupt_checkpoint_is_409_naming_the_row_on_every_read(users, seeded):
    head = seeded.loop.head_checkpoint_id
    Checkpoint.objects.filter(pk=head).update(document=b"garbage")
    client = _client(users.viewer)
    for url in (f"/api/checkpoints/{head}/", f"/api/checkpoints/{head}/diff/",
                f"/api/checkpoints/{head}/export/"):
        _refused(client.get(url), 409, f"checkpoint {head} is corrupt: its content does not "
                                        f"match its hash")
    _refused(client.get(f"/api/checkpoints/{head}/export/"), 409,
             f"checkpoint {head} cannot be exported: ")


def test_lists_read_what_they_show_in_a_bounded_number_of_queries(
        users, execute, django_assert_max_num_queries):
    for title in ("A", "B", "C", "D"):  # answered requests, each by a user the list names
        run = execute(services.start_run("document-review", {"title": title}, users.operator))
        services.respond(run.requests.get().pk, {"approved": True}, users.approver)
    client = _client(users.viewer)
    with django_assert_max_num_queries(5):  # not one more per row
        assert len(client.get("/api/requests/").json()["results"]) == 4
    with django_assert_max_num_queries(5):
        assert len(client.get("/api/runs/").json()["results"]) == 4


# --------------------------------------------------------------------------- conflicts
def test_resume_while_queued_or_running_is_409(users, seeded, unchanged):
    client = _client(users.operator)
    url = f"/api/runs/{seeded.loop.pk}/resume/"
    body = {"checkpoint_id": seeded.checkpoints[0].pk}
    for status in (RunStatus.QUEUED, RunStatus.RUNNING):
        Run.objects.filter(pk=seeded.loop.pk).update(status=status)
        with unchanged():
            _refused(client.post(url, body, format="json"), 409, f"is {status}")
    assert Run.objects.get(pk=seeded.loop.pk).head_checkpoint_id == seeded.loop.head_checkpoint_id


def test_answering_an_answered_request_is_409(users, seeded, unchanged):
    client = _client(users.approver)
    url = f"/api/requests/{seeded.request.pk}/respond/"
    assert client.post(url, {"response": {"approved": True}}, format="json").status_code == 200
    with unchanged():
        _refused(client.post(url, {"response": {"approved": False}}, format="json"),
                 409, "is answered by approver")
    assert PendingRequest.objects.get(pk=seeded.request.pk).response["fields"]["approved"] is True


def test_restoring_into_a_changed_graph_is_409(users, seeded, unchanged):
    checkpoint = seeded.checkpoints[1]
    Checkpoint.objects.filter(pk=checkpoint.pk).update(graph_signature_hash="0" * 64)
    client = _client(users.operator)
    for action in ("rehydrate", "resume"):
        with unchanged():
            _refused(client.post(f"/api/runs/{seeded.loop.pk}/{action}/",
                                 {"checkpoint_id": checkpoint.pk}, format="json"),
                     409, "changed since checkpoint", "graph signature differs")


def test_import_conflicts_are_409(users, seeded, unchanged):
    client = _client(users.operator)
    stored = client.get(f"/api/checkpoints/{seeded.review.head_checkpoint_id}/export/").json()
    other_graph = copy.deepcopy(stored)
    other_graph["checkpoint"]["graph_signature_hash"] = "0" * 64
    other_graph["checkpoint"]["checkpoint_id"] = "from-another-graph"
    other_content = copy.deepcopy(stored)  # a stored checkpoint's id, for other content
    other_content["checkpoint"]["superstep"] += 1
    with unchanged():
        _refused(client.post("/api/checkpoints/import/", _rehash(other_content), format="json"),
                 409, "already stored here", "with different content")
        _refused(client.post("/api/checkpoints/import/", _rehash(other_graph), format="json"),
                 409, "different graph")


def test_cancelling_a_finished_run_is_409(users, seeded, unchanged):
    with unchanged():
        _refused(_client(users.operator).post(f"/api/runs/{seeded.loop.pk}/cancel/"),
                 409, "already completed")
