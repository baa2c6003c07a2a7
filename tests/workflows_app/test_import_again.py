"""Importing a checkpoint into the installation that exported it (or importing one twice):
a new run holding a copy under a fresh id, its lineage kept; a stored id with other content
is refused and nothing is written."""

import copy
import hashlib
import json

import pytest
from rest_framework.test import APIClient

from workflows_app import services
from workflows_app.models import Checkpoint, OperatorAction, PendingRequest, Run
from workflows_app.states import ActionKind, RequestStatus, RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _quiet(quiet_channels):
    """Rows are checked here, not live updates."""


def _rows():
    return (Run.objects.count(), Checkpoint.objects.count(), PendingRequest.objects.count(),
            OperatorAction.objects.count())


def _rehash(document):
    body = json.dumps(document["checkpoint"], separators=(",", ":"))
    document["content_hash"] = hashlib.sha256(body.encode()).hexdigest()
    return document


def _without_identity(body):
    """A checkpoint document less what a copy changes: its id and its metadata."""
    return {k: v for k, v in body.items() if k not in ("checkpoint_id", "metadata")}


def test_a_stored_checkpoint_is_imported_as_a_copy_in_a_new_run(execute, users):
    review = execute(services.start_run("document-review", {"title": "Again"}))
    original = review.head_checkpoint
    document = services.export_checkpoint(original.pk)
    rows_of_the_original = list(Checkpoint.objects.filter(run=review).values_list(
        "checkpoint_id", "content_hash"))

    imported = services.import_checkpoint(document, users.operator)

    assert imported.pk != review.pk and imported.created_by == users.operator
    assert (imported.status, imported.current_superstep) == (RunStatus.WAITING,
                                                             original.superstep)
    stored = imported.head_checkpoint
    assert stored.run_id == imported.pk and stored.pk != original.pk
    body = stored.decoded()
    assert body["checkpoint_id"] == stored.pk
    assert body["metadata"] == {**original.decoded()["metadata"], "imported_from": original.pk}
    assert _without_identity(body) == _without_identity(original.decoded())
    # its lineage: the same previous checkpoint as the original
    assert stored.previous_id == original.previous_id is not None
    assert body["previous_checkpoint_id"] == original.previous_id
    action = imported.actions.get()
    assert (action.kind, action.user, action.checkpoint_id) == (
        ActionKind.IMPORT, users.operator, original.pk)
    assert action.detail == {"stored_as": stored.pk, "source_run": str(review.pk)}
    # the original run and its rows are untouched
    assert list(Checkpoint.objects.filter(run=review).values_list(
        "checkpoint_id", "content_hash")) == rows_of_the_original
    assert review.requests.get().status == RequestStatus.OPEN
    assert imported.requests.get().request_id == review.requests.get().request_id


def test_the_copy_runs_on_its_own_and_finishes_like_the_original(execute):
    review = execute(services.start_run("document-review", {"title": "Twin"}))
    imported = services.import_checkpoint(services.export_checkpoint(review.head_checkpoint_id))
    for run in (review, imported):
        services.respond(run.requests.get().pk, {"approved": True})
    assert execute(imported).outputs == execute(review).outputs == [
        "published 'Twin' (revision 1)"]


def test_a_copy_without_requests_is_resumed_from_its_own_checkpoint(execute):
    loop = execute(services.start_run("long-loop", {"rounds": 3}))
    second = loop.checkpoints.get(superstep=2)
    imported = services.import_checkpoint(services.export_checkpoint(second.pk))
    assert imported.status == RunStatus.CANCELLED
    resumed = services.resume_run(imported.pk, imported.head_checkpoint_id)
    assert resumed.status == RunStatus.QUEUED
    finished = execute(resumed)
    assert finished.status == RunStatus.COMPLETED and finished.outputs == loop.outputs
    assert Checkpoint.objects.filter(run=loop).count() == loop.checkpoints.count()


def test_importing_the_same_export_twice_makes_two_runs_with_two_copies(execute):
    loop = execute(services.start_run("long-loop", {"rounds": 2}))
    document = services.export_checkpoint(loop.head_checkpoint_id)
    first = services.import_checkpoint(document)
    second = services.import_checkpoint(document)
    ids = {loop.head_checkpoint_id, first.head_checkpoint_id, second.head_checkpoint_id}
    assert len(ids) == 3 and first.pk != second.pk


def test_a_copy_exported_again_imports_again(execute):
    loop = execute(services.start_run("long-loop", {"rounds": 2}))
    copied = services.import_checkpoint(services.export_checkpoint(loop.head_checkpoint_id))
    again = services.import_checkpoint(services.export_checkpoint(copied.head_checkpoint_id))
    assert again.head_checkpoint.decoded()["metadata"]["imported_from"] == \
        copied.head_checkpoint_id


def test_a_stored_id_with_other_content_is_refused_and_nothing_is_written(execute):
    loop = execute(services.start_run("long-loop", {"rounds": 2}))
    document = services.export_checkpoint(loop.head_checkpoint_id)
    altered = copy.deepcopy(document)
    altered["checkpoint"]["executor_states"]["counter"]["total"] = 1000
    before = _rows()
    with pytest.raises(services.Conflict) as refused:
        services.import_checkpoint(_rehash(altered))
    assert str(refused.value) == (
        f"checkpoint {loop.head_checkpoint_id} is already stored here (run {loop.pk}) with "
        f"different content: this document reuses its id for another checkpoint")
    assert _rows() == before


def test_a_stored_checkpoint_that_cannot_be_read_is_not_compared_but_refused(execute):
    loop = execute(services.start_run("long-loop", {"rounds": 2}))
    document = services.export_checkpoint(loop.head_checkpoint_id)
    Checkpoint.objects.filter(pk=loop.head_checkpoint_id).update(document=b"garbage")
    before = _rows()
    with pytest.raises(services.Conflict, match="already stored here .* but cannot be read to "
                                                "compare it with this document: "):
        services.import_checkpoint(document)
    assert _rows() == before


# --------------------------------------------------------------------------- the API
def _client(user):
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_the_api_imports_a_stored_checkpoint_as_a_new_run(execute, users):
    review = execute(services.start_run("document-review", {"title": "API"}))
    client = _client(users.operator)
    document = client.get(f"/api/checkpoints/{review.head_checkpoint_id}/export/").json()
    answer = client.post("/api/checkpoints/import/", document, format="json")
    assert answer.status_code == 201, answer.content
    run = Run.objects.get(pk=answer.json()["id"])
    assert run.pk != review.pk and run.status == RunStatus.WAITING
    assert run.head_checkpoint_id not in (None, review.head_checkpoint_id)
    assert run.actions.get().kind == ActionKind.IMPORT

    altered = copy.deepcopy(document)
    altered["checkpoint"]["superstep"] += 1
    before = _rows()
    refused = client.post("/api/checkpoints/import/", _rehash(altered), format="json")
    assert refused.status_code == 409
    assert "already stored here" in refused.json()["detail"]
    assert "with different content" in refused.json()["detail"]
    assert _rows() == before


def test_the_api_import_takes_json_only(users):
    answer = _client(users.operator).post("/api/checkpoints/import/", {"format": "x"},
                                          format="multipart")
    assert answer.status_code == 415


def test_the_browsable_api_offers_the_export_document_not_the_checkpoint_model(users):
    client = APIClient()
    client.force_login(users.operator)
    page = client.get("/api/checkpoints/import/", HTTP_ACCEPT="text/html").content.decode()
    form = page[page.index('id="id__content"'):]
    form = form[:form.index("</textarea>")]
    for name in ("format", "version", "workflow", "graph_signature_hash", "content_hash",
                 "checkpoint"):
        assert f"&quot;{name}&quot;" in form
    for model_field in ("size_bytes", "json_bytes", "pending_request_count", "created_at",
                        "document"):
        assert f'name="{model_field}"' not in page and f"&quot;{model_field}&quot;" not in page
