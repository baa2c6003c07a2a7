"""The REST API never answers 500, whatever it is sent.

Two fuzzers, both bounded and reproducible (derandomized, no example database):

- schemathesis generates requests from our own OpenAPI schema (``/api/schema/``), valid and
  invalid, for every operation, and sends each twice: with the generated path parameters
  (mostly unknown ids, so 404s) and with the ids of seeded rows, so that random bodies reach
  the services;
- hypothesis posts arbitrary JSON to every POST endpoint of the seeded rows.

Any 4xx is fine; a 5xx or an unhandled exception fails. Each request runs in a savepoint that
is rolled back, so every example starts from the same seeded rows.
"""

from __future__ import annotations

import hashlib
import json
from contextlib import contextmanager
from types import SimpleNamespace

import pytest
import schemathesis
from django.core.handlers.wsgi import WSGIHandler
from django.core.signals import request_finished, request_started
from django.db import close_old_connections, transaction
from drf_spectacular.generators import SchemaGenerator
from drf_spectacular.renderers import OpenApiJsonRenderer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient
from schemathesis.checks import not_a_server_error

from workflows_app import services
from workflows_app.models import Checkpoint
from workflows_app.states import RunStatus

pytestmark = pytest.mark.django_db

FUZZ = settings(max_examples=25, deadline=None, derandomize=True, database=None,
                suppress_health_check=list(HealthCheck), print_blob=True)


@contextmanager
def rolled_back():
    """Run the block in a savepoint and undo whatever it wrote."""
    with transaction.atomic():
        yield
        transaction.set_rollback(True)


@pytest.fixture
def fuzz(django_user_model, execute):
    """A superuser's token, a document review waiting on its open request and a completed
    long loop (so that real ids exist)."""
    admin = django_user_model.objects.create_superuser("fuzzer", password=None)
    review = execute(services.start_run("document-review", {"title": "Fuzz"}))
    loop = execute(services.start_run("long-loop", {"rounds": 2}))
    assert review.status == RunStatus.WAITING and loop.status == RunStatus.COMPLETED
    return SimpleNamespace(
        headers={"Authorization": f"Token {Token.objects.create(user=admin).key}"},
        review=review, loop=loop, request=review.requests.get(),
        checkpoint=review.head_checkpoint_id,
        checkpoints=sorted(Checkpoint.objects.values_list("pk", flat=True)),
        export=services.export_checkpoint(loop.head_checkpoint_id))


@pytest.fixture
def wsgi_app():
    """Django as a WSGI application in the test's transaction: like Django's test client,
    keep the request signals from closing the connection (that would end the transaction)."""
    request_started.disconnect(close_old_connections)
    request_finished.disconnect(close_old_connections)
    try:
        yield WSGIHandler()
    finally:
        request_started.connect(close_old_connections)
        request_finished.connect(close_old_connections)


def _our_schema() -> dict:
    """The OpenAPI document ``/api/schema/`` serves, as JSON natives."""
    generated = SchemaGenerator().get_schema(request=None, public=True)
    return json.loads(OpenApiJsonRenderer().render(generated))


def _real_path_parameters(case, fuzz) -> dict | None:
    """The case's path parameters pointing at seeded rows (None if it has none)."""
    if not case.path_parameters:
        return None
    path = case.operation.path
    real = {"name": "document-review" if "runs" in path else "long-loop",
            "checkpoint_id": fuzz.checkpoint,
            "id": str(fuzz.request.pk if path.startswith("/api/requests/") else fuzz.review.pk)}
    return {key: real[key] for key in case.path_parameters}


schema = schemathesis.openapi.from_dict(_our_schema())


def test_the_fuzzed_schema_is_the_served_one(fuzz):
    served = APIClient().get("/api/schema/?format=json",
                             HTTP_AUTHORIZATION=fuzz.headers["Authorization"])
    assert served.json() == schema.raw_schema


@FUZZ
@schema.parametrize()
def test_schema_driven_requests_never_get_a_server_error(case, fuzz, wsgi_app):
    with rolled_back():
        response = case.call(app=wsgi_app, headers=fuzz.headers)
        case.validate_response(response, checks=[not_a_server_error], headers=fuzz.headers)
    real = _real_path_parameters(case, fuzz)
    if real is not None:
        case.path_parameters = real
        with rolled_back():
            response = case.call(app=wsgi_app, headers=fuzz.headers)
            case.validate_response(response, checks=[not_a_server_error], headers=fuzz.headers)


# --------------------------------------------------------------------------- raw JSON bodies
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=12)


def _fields(*names: str) -> st.SearchStrategy:
    """Objects that mostly use the expected field names, with any values."""
    return st.dictionaries(st.sampled_from(names) | st.text(max_size=8), JSON,
                           max_size=len(names) + 1)


def _object(required: dict, optional: dict | None = None) -> st.SearchStrategy:
    """Objects of the expected shape whose values are well typed or anything."""
    return st.fixed_dictionaries(
        {key: value | JSON for key, value in required.items()},
        optional={key: value | JSON for key, value in (optional or {}).items()})


def _rehashed(document: dict) -> dict:
    """``document`` with a content hash that matches its (edited) checkpoint."""
    body = json.dumps(document["checkpoint"], separators=(",", ":"))
    return {**document, "content_hash": hashlib.sha256(body.encode()).hexdigest()}


def _bodies(fuzz) -> dict[str, st.SearchStrategy]:
    export = fuzz.export
    edited_exports = st.builds(
        lambda changes, body: {**export, **changes,
                               "checkpoint": {**export["checkpoint"], **body}},
        _fields(*export), _fields(*export["checkpoint"]))
    checkpoint_ids = st.sampled_from(fuzz.checkpoints) | st.text(max_size=70)
    return {
        "/api/workflows/document-review/runs/": _object({"input": _object(
            {"title": st.text()}, {"body": st.text()})}),
        "/api/workflows/long-loop/runs/": _object({"input": _object({}, {
            "rounds": st.integers(), "fail_at": st.integers() | st.none(),
            "step_ms": st.integers()})}),
        "/api/workflows/map-reduce/runs/": _fields("input"),
        "/api/workflows/ticket-router/runs/": _object({"input": _object(
            {"subject": st.text()}, {"priority": st.sampled_from(["low", "normal", "high"])})}),
        f"/api/runs/{fuzz.review.pk}/resume/": _object({"checkpoint_id": checkpoint_ids}),
        f"/api/runs/{fuzz.loop.pk}/resume/": _object({"checkpoint_id": checkpoint_ids}),
        f"/api/runs/{fuzz.loop.pk}/rehydrate/": _object({"checkpoint_id": checkpoint_ids}),
        f"/api/runs/{fuzz.review.pk}/cancel/": JSON,
        "/api/checkpoints/import/": edited_exports.map(_rehashed) | edited_exports | JSON,
        f"/api/requests/{fuzz.request.pk}/respond/": _object({"response": _object(
            {"approved": st.booleans()}, {"comment": st.text()})}) | _fields("response"),
    }


def test_random_json_bodies_never_get_a_server_error(fuzz):
    client = APIClient(raise_request_exception=True)
    client.credentials(HTTP_AUTHORIZATION=fuzz.headers["Authorization"])
    bodies = _bodies(fuzz)

    @settings(FUZZ, max_examples=300)
    @given(url=st.sampled_from(sorted(bodies)), data=st.data())
    def post(url, data):
        body = data.draw(bodies[url], label="body")
        with rolled_back():
            response = client.post(url, data=json.dumps(body), content_type="application/json")
        assert response.status_code < 500, (url, body, response.content)
        if response.status_code >= 400:
            assert response.json(), (url, body)  # the refusal says why

    post()
