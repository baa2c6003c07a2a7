"""What Stepstone accepts at most, and that nothing stored can break a page (issue 14).

- JSON nested deeper than ``limits.MAX_JSON_DEPTH`` is refused with a 400 on every JSON
  POST of the API, even from an account without a role (the session's CSRF check parses
  the body before permissions are checked), and on every way in of an import.
- Bodies larger than the limit get the API's ``detail`` (413) or the error page, never
  Django's bare 400 with a traceback logged; an export larger than Django's default
  2.5 MB imports.
- Imports get the checks every other input gets: an unpaired surrogate or a NUL anywhere
  in the document is refused by its path, nothing created.
- Values stored before those checks (or written by a workflow's own code) are shown by
  every page, the API and the exports, never a 500.
- The shipped workflows' inputs have ranges, refused by name beyond them and carried by
  the start form's fields.
"""

from __future__ import annotations

import copy
import hashlib
import html
import io
import json
import logging
import re
from types import SimpleNamespace

import pytest
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from django.db import connection
from django.test import Client
from django.urls import reverse
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.conftest import PASSWORD
from workflows_app import limits, services
from workflows_app.engine import WorkflowConvergenceError
from workflows_app.examples import MAX_ROUNDS, LoopInput, build_long_loop
from workflows_app.models import Checkpoint, OperatorAction, PendingRequest, Run, RunEvent

pytestmark = pytest.mark.django_db

DEPTH = limits.MAX_JSON_DEPTH
LONE = "\ud800"  # an unpaired surrogate: Python holds it, UTF-8 cannot encode it


# --------------------------------------------------------------------------- helpers
def _token_client(user) -> APIClient:
    client = APIClient()
    token, _ = Token.objects.get_or_create(user=user)
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    return client


def _session_client(user) -> APIClient:
    """A browser-like client: logged in with its password, sending the CSRF token."""
    client = APIClient(enforce_csrf_checks=True)
    assert client.login(username=user.username, password=PASSWORD)
    client.get("/login/")  # sets the CSRF cookie, as every dashboard page does
    client.defaults["HTTP_X_CSRFTOKEN"] = client.cookies["csrftoken"].value
    return client


def _nested(depth: int, leaf=0):
    """A list nested ``depth`` levels deep (``[[...[leaf]...]]``), built without recursion."""
    value = leaf
    for _ in range(depth):
        value = [value]
    return value


def _nested_text(depth: int) -> str:
    return "[" * depth + "0" + "]" * depth


def _counts() -> dict:
    return {model.__name__: model.objects.count()
            for model in (Run, Checkpoint, PendingRequest, RunEvent, OperatorAction)}


def _rehash(document: dict) -> dict:
    """A hand-edited export whose content hash was recomputed to match."""
    body = json.dumps(document["checkpoint"], separators=(",", ":"))
    document["content_hash"] = hashlib.sha256(body.encode()).hexdigest()
    return document


def _refused(answer, status: int, *words: str) -> None:
    assert answer.status_code == status, answer.content[:500]
    text = html.unescape(answer.content.decode())
    for word in words:
        assert word in text, f"{word!r} not in {text[:2000]}"


@pytest.fixture
def seeded(execute):
    """A document review waiting on its request, and a completed long loop."""
    review = execute(services.start_run("document-review", {"title": "Spec"}))
    loop = execute(services.start_run("long-loop", {"rounds": 2}))
    return SimpleNamespace(review=review, request=review.requests.get(), loop=loop,
                           checkpoint=loop.checkpoints.order_by("created_at").first())


@pytest.fixture
def export(portable):
    """An export of a waiting document review whose rows are gone (``portable``)."""
    return portable


def _request_id(document: dict) -> str:
    return next(iter(document["checkpoint"]["pending_requests"]))


def _with_title(document: dict, title: str) -> dict:
    """The export with its pending request's title replaced (hash recomputed)."""
    edited = copy.deepcopy(document)
    request = edited["checkpoint"]["pending_requests"][_request_id(edited)]
    request["data"]["fields"]["title"] = title
    return _rehash(edited)


def _with_shared(document: dict, value) -> dict:
    edited = copy.deepcopy(document)
    edited["checkpoint"]["shared_state"]["probe"] = value
    return _rehash(edited)


# --------------------------------------------------------------------------- deep JSON
def _json_posts(seeded) -> dict[str, str]:
    """Every JSON POST of the API."""
    return {"start": "/api/workflows/long-loop/runs/",
            "resume": f"/api/runs/{seeded.loop.pk}/resume/",
            "rehydrate": f"/api/runs/{seeded.loop.pk}/rehydrate/",
            "cancel": f"/api/runs/{seeded.review.pk}/cancel/",
            "import": "/api/checkpoints/import/",
            "respond": f"/api/requests/{seeded.request.pk}/respond/"}


@pytest.mark.parametrize("depth", [DEPTH + 1, 1_000, 100_000])
def test_deeply_nested_json_is_a_400_on_every_post_even_without_a_role(depth, users, seeded):
    body = '{"input": %s}' % _nested_text(depth - 1)  # the object around it is one level
    before = _counts()
    for client in (_session_client(users.nobody), _token_client(users.admin)):
        for action, url in _json_posts(seeded).items():
            if action == "cancel" and client is not None and "HTTP_AUTHORIZATION" in \
                    client._credentials:
                continue  # reads no body: the session's CSRF check is what parses it
            answer = client.post(url, data=body, content_type="application/json")
            _refused(answer, 400, "JSON parse error",
                     f"nests more than {DEPTH} levels of objects and arrays")
            assert answer.json().keys() == {"detail"}, action
    assert _counts() == before
    assert Run.objects.get(pk=seeded.review.pk).status == seeded.review.status


def test_json_at_the_depth_limit_is_read(users):
    # The body is the limit's levels deep: read, then refused by the input's type.
    body = {"input": _nested(DEPTH - 1)}
    assert limits.nesting_depth(body) == DEPTH
    answer = _token_client(users.admin).post("/api/workflows/map-reduce/runs/", body,
                                             format="json")
    _refused(answer, 400, "input: must be text")


def test_services_refuse_values_nested_beyond_the_limit_by_path():
    before = _counts()
    with pytest.raises(services.InvalidInput) as refused:
        services.start_run("map-reduce", {"text": _nested(DEPTH)})  # the object: one more
    assert str(refused.value).startswith(
        f"input: the value nests more than {DEPTH} levels of objects and arrays (at "
        f"input.text[0][0]")
    with pytest.raises(services.InvalidInput, match="nests more than"):
        services.start_run("map-reduce", _nested(100_000))  # no recursion reaches it
    assert _counts() == before
    assert services._storable(_nested(DEPTH), "input") is not None  # at the limit


@pytest.mark.parametrize("depth", [DEPTH + 1, 1_000, 100_000])
def test_deeply_nested_json_in_a_form_is_refused_on_the_form(depth, users, client):
    client.force_login(users.operator)
    url = reverse("dashboard:start-run", args=["long-loop"])
    answer = client.post(url, {"input-json": _nested_text(depth), "input-as-json": "on",
                               "rounds": "3", "fail_at": "", "step_ms": "0"}, follow=True)
    assert answer.status_code == 200
    assert f"the JSON nests more than {DEPTH} levels of objects and arrays" in \
        html.unescape(answer.content.decode())
    assert Run.objects.count() == 0
    # A field entered as JSON (a list, an object) is held to the limit as well.
    from django import forms

    from dashboard.forms import _field
    field = _field({"type": "array"}, {}, required=True, label="items")
    assert field.clean(_nested_text(DEPTH - 1)) == _nested(DEPTH - 1)
    with pytest.raises(forms.ValidationError, match="is not valid JSON"):
        field.clean(_nested_text(depth))


# --------------------------------------------------------------------------- imports
def _import_everywhere(text: str, users, tmp_path, client) -> dict[str, str]:
    """Import the export ``text`` through the API, the page and the command; what each
    says (each must refuse it)."""
    said = {}
    answer = _token_client(users.admin).post("/api/checkpoints/import/", text,
                                             content_type="application/json")
    assert answer.status_code == 400, answer.content
    said["api"] = answer.json()["detail"]
    client.force_login(users.operator)
    upload = SimpleUploadedFile("cp.json", text.encode(), "application/json")
    answer = client.post(reverse("dashboard:checkpoint-import"), {"file": upload})
    assert answer.status_code == 400
    said["page"] = html.unescape(answer.content.decode())
    path = tmp_path / "cp.json"
    path.write_text(text)
    with pytest.raises(CommandError) as refused:
        call_command("import_checkpoint", str(path), stdout=io.StringIO())
    said["command"] = str(refused.value)
    return said


@pytest.mark.parametrize("where, edit, path", [
    ("request", lambda d: _with_title(d, f"draft {LONE}"),
     "checkpoint.pending_requests.{rid}.data.fields.title"),
    ("shared state", lambda d: _with_shared(d, {"notes": ["ok", f"x{LONE}"]}),
     "checkpoint.shared_state.probe.notes[1]"),
    ("a key", lambda d: _with_shared(d, {f"k{LONE}": 1}),
     "a key of checkpoint.shared_state.probe"),
])
def test_imports_refuse_unpaired_surrogates_by_path_and_create_nothing(
        where, edit, path, export, users, tmp_path, client):
    document = edit(export)
    expected = ("checkpoint: text must not contain unpaired surrogates (at "
                + path.format(rid=_request_id(export)) + ")")
    before = _counts()
    said = _import_everywhere(json.dumps(document), users, tmp_path, client)
    assert said["api"] == expected
    assert said["command"] == expected
    assert f"cannot be imported: {expected}. Nothing was created." in said["page"]
    assert _counts() == before


def test_imports_refuse_nul_characters_by_path(export, users):
    answer = _token_client(users.admin).post(
        "/api/checkpoints/import/", json.dumps(_with_shared(export, "a\x00b")),
        content_type="application/json")
    assert answer.status_code == 400
    assert answer.json()["detail"] == ("checkpoint: text must not contain NUL characters "
                                       "(\\u0000) (at checkpoint.shared_state.probe)")


def _deep_export_text(document: dict, depth: int) -> str:
    """The export with a value ``depth`` levels deep in its shared state, written as text
    (json.dumps of such a value would itself run out of stack), its hash matching."""
    deep = _nested_text(depth)
    edited = copy.deepcopy(document)
    edited["checkpoint"]["shared_state"]["probe"] = "DEEP"
    body = json.dumps(edited["checkpoint"], separators=(",", ":")).replace('"DEEP"', deep)
    edited["content_hash"] = hashlib.sha256(body.encode()).hexdigest()
    return json.dumps(edited).replace('"DEEP"', deep)


def test_imports_nested_beyond_the_limit_are_refused_everywhere(export, users, tmp_path,
                                                                   client):
    before = _counts()
    said = _import_everywhere(_deep_export_text(export, 900), users, tmp_path, client)
    assert said["api"] == ("JSON parse error - the body nests more than "
                           f"{DEPTH} levels of objects and arrays")
    assert f"it nests more than {DEPTH} levels of objects and arrays" in said["page"]
    assert f"the JSON nests more than {DEPTH} levels" in said["command"]
    # A caller of the service (no parser in front) is refused by path as well.
    with pytest.raises(services.InvalidInput) as refused:
        services.import_checkpoint(_with_shared(export, _nested(500)))
    assert str(refused.value).startswith(
        f"checkpoint: the value nests more than {DEPTH} levels of objects and arrays (at "
        f"checkpoint.shared_state.probe[0]")
    assert _counts() == before


def test_an_export_at_the_depth_limit_imports_and_every_page_shows_it(export, users, client):
    # document > checkpoint > shared_state > probe: the list fills the levels that remain
    document = _with_shared(export, _nested(DEPTH - 3))
    assert limits.nesting_depth(document) == DEPTH
    answer = _token_client(users.admin).post("/api/checkpoints/import/", document,
                                             format="json")
    assert answer.status_code == 201, answer.content
    run = Run.objects.get(pk=answer.json()["id"])
    assert limits.nesting_depth(document) == DEPTH
    client.force_login(users.admin)
    for url in (f"/runs/{run.pk}/", f"/checkpoints/{run.head_checkpoint_id}/",
                f"/api/checkpoints/{run.head_checkpoint_id}/",
                f"/api/checkpoints/{run.head_checkpoint_id}/export/"):
        assert client.get(url).status_code == 200, url
    exported = client.get(f"/checkpoints/{run.head_checkpoint_id}/export/")
    assert json.loads(exported.content)["checkpoint"]["shared_state"]["probe"] == \
        document["checkpoint"]["shared_state"]["probe"]


# --------------------------------------------------------------------------- stored values
@pytest.fixture
def unchecked_imports(monkeypatch):
    """Imports as they were before they were checked: values no page can encode get in
    (as they may still be in a database, or be written by a workflow's own code)."""
    monkeypatch.setattr(services, "_storable", lambda value, what, **options: value)
    return monkeypatch  # .undo(): imports are checked again


def _pages_of(run: Run) -> list[str]:
    checkpoint = run.head_checkpoint_id
    return [f"/runs/{run.pk}/", f"/runs/{run.pk}/parts/requests/", "/requests/",
            "/requests/list/", f"/checkpoints/{checkpoint}/",
            f"/checkpoints/{checkpoint}/export/", "/api/requests/", f"/api/runs/{run.pk}/",
            f"/api/checkpoints/{checkpoint}/", f"/api/checkpoints/{checkpoint}/diff/",
            f"/api/checkpoints/{checkpoint}/export/", "/api/requests/?format=api",
            f"/api/checkpoints/{checkpoint}/?format=api",
            reverse("admin:workflows_app_checkpoint_change", args=[checkpoint]),
            reverse("admin:workflows_app_run_change", args=[run.pk]),
            reverse("admin:workflows_app_pendingrequest_change", args=[run.requests.get().pk])]


@pytest.mark.parametrize("edit, shown", [
    pytest.param(lambda d: _with_title(d, f"draft {LONE}"), "draft \N{REPLACEMENT CHARACTER}",
                 id="request",
                 marks=pytest.mark.skipif("connection.vendor != 'sqlite'",
                                          reason="PostgreSQL's jsonb never stored one")),
    pytest.param(lambda d: _with_shared(d, {"note": f"x{LONE}y", f"k{LONE}": [1]}),
                 "x\N{REPLACEMENT CHARACTER}y", id="shared state"),
])
def test_values_no_page_can_encode_are_shown_everywhere(edit, shown, unchecked_imports, export,
                                                        users, client):
    document = edit(export)
    run = services.import_checkpoint(document)
    client.force_login(users.admin)
    for url in _pages_of(run):
        answer = client.get(url)
        assert answer.status_code == 200, (url, answer.content[:300])
        answer.content.decode("utf-8")
    # People read the value with U+FFFD in place of what no page can encode...
    for url in (f"/checkpoints/{run.head_checkpoint_id}/",
                reverse("admin:workflows_app_checkpoint_change", args=[run.head_checkpoint_id])):
        assert shown in client.get(url).content.decode(), url
    # ...the API gives it exactly (escaped), and exports stay exact, so they say what is
    # wrong when imported again.
    unchecked_imports.undo()
    assert b"\\ud800" in client.get(f"/api/checkpoints/{run.head_checkpoint_id}/").content
    for url in (f"/checkpoints/{run.head_checkpoint_id}/export/",
                f"/api/checkpoints/{run.head_checkpoint_id}/export/"):
        exported = client.get(url).content
        assert exported.isascii() and b"\\ud800" in exported
        assert json.loads(exported)["checkpoint"] == document["checkpoint"]
        again = _token_client(users.admin).post("/api/checkpoints/import/", exported,
                                                content_type="application/json")
        _refused(again, 400, "checkpoint: text must not contain unpaired surrogates (at ")


def test_the_export_command_writes_any_stored_checkpoint(unchecked_imports, export, tmp_path):
    run = services.import_checkpoint(_with_shared(export, f"x{LONE}"))
    out = tmp_path / "cp.json"
    call_command("export_checkpoint", str(run.head_checkpoint_id), output=str(out))
    assert json.loads(out.read_text("utf-8"))["checkpoint"]["shared_state"]["probe"] == \
        f"x{LONE}"


def test_a_page_shows_deep_values_to_the_limit_and_says_so(unchecked_imports, export, users,
                                                           client):
    # About as deep as the engine can decode a checkpoint (a workflow's own code may build
    # such a state); pages show its first levels and a note where they stop.
    run = services.import_checkpoint(_with_shared(export, _nested(450, "bottom")))
    client.force_login(users.admin)
    page = client.get(f"/checkpoints/{run.head_checkpoint_id}/")
    assert page.status_code == 200
    assert f"nested more than {DEPTH} levels deep: not shown" in page.content.decode()
    for url in (f"/api/checkpoints/{run.head_checkpoint_id}/",
                f"/api/checkpoints/{run.head_checkpoint_id}/export/"):
        assert client.get(url).status_code == 200, url


# --------------------------------------------------------------------------- routes
def test_events_addresses_with_bad_positions_never_fail(users, seeded, client):
    client.force_login(users.admin)
    run = seeded.loop
    # The dashboard has no events route: the address is a run action's, which takes POSTs.
    assert client.get(f"/runs/{run.pk}/events/?after=abc").status_code == 405
    assert client.post(f"/runs/{run.pk}/events/?after=abc").status_code == 404
    for after in ("abc", "-1", "9" * 5_000, "1e3"):
        assert client.get(f"/runs/{run.pk}/?after={after}").status_code == 200, after
        _refused(client.get(f"/api/runs/{run.pk}/events/?after={after}"), 400,
                 "after: must be a non-negative integer seq")


# --------------------------------------------------------------------------- sizes
def test_the_limits_agree():
    from django.conf import settings

    from dashboard.views import checkpoints

    assert settings.DATA_UPLOAD_MAX_MEMORY_SIZE == limits.MAX_DOCUMENT_BYTES == \
        checkpoints.MAX_IMPORT_BYTES == 20 * 1024 * 1024


def test_an_export_larger_than_djangos_default_imports_through_the_api(export, users):
    document = _with_shared(export, "x" * 3_000_000)  # Django's default limit: 2.5 MB
    answer = _token_client(users.admin).post("/api/checkpoints/import/", document,
                                             format="json")
    assert answer.status_code == 201, answer.content[:300]


@pytest.fixture
def small_limit(settings):
    settings.DATA_UPLOAD_MAX_MEMORY_SIZE = 1_000
    return 1_000


def test_an_api_body_over_the_limit_is_413_naming_it(small_limit, users, caplog):
    before = _counts()
    answer = _token_client(users.admin).post(
        "/api/workflows/document-review/runs/", {"input": {"title": "x" * 2_000}},
        format="json")
    _refused(answer, 413, "a request body (a checkpoint export too) may be at most 1,000 "
                          "bytes")
    assert re.match(r"the request body is 1\.9\d KiB \(2,\d{3} bytes\); ",
                    answer.json()["detail"])
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert _counts() == before


def test_a_body_found_too_large_only_when_read_is_413_too(small_limit, users):
    from workflows_app.api.exceptions import handle_exception

    answer = handle_exception(RequestDataTooBig("too big"), {})
    assert answer.status_code == 413
    assert answer.data == {"detail": "the request body is too large; a request body (a "
                                     "checkpoint export too) may be at most 1,000 bytes"}
    # A multipart body may exceed the limit by its files, not by its fields: its fields are
    # refused when DRF reads them.
    client = _token_client(users.admin)
    answer = client.post("/api/workflows/map-reduce/runs/", {"input": "x" * 1_500},
                         format="multipart")
    _refused(answer, 413, "may be at most 1,000 bytes")


@pytest.mark.parametrize("encoding", ["urlencoded", "multipart"])
def test_a_page_body_over_the_limit_gets_the_error_page(encoding, small_limit, users, client,
                                                        caplog):
    client.force_login(users.operator)
    url = reverse("dashboard:start-run", args=["document-review"])
    if encoding == "urlencoded":  # refused by its declared length, before it is read
        answer = client.post(url, "title=" + "x" * 2_000,
                             content_type="application/x-www-form-urlencoded")
        said = "Nothing was read or changed: the request body is 1.96 KiB"
    else:  # may be larger by its files, so its fields are counted as they are read
        answer = client.post(url, {"title": "x" * 2_000})
        said = "Nothing was read or changed: the request body is too large"
    _refused(answer, 413, "Too large", said, "may be at most 1,000 bytes")
    assert "Log out operator" in answer.content.decode()  # the site's page, not a bare one
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
    assert Run.objects.count() == 0


def test_an_import_upload_over_the_limit_is_refused_before_it_is_read(users, client):
    client.force_login(users.operator)
    huge = SimpleUploadedFile("cp.json", b" " * (limits.MAX_DOCUMENT_BYTES + 100 * 1024))
    answer = client.post(reverse("dashboard:checkpoint-import"), {"file": huge})
    _refused(answer, 413, "Too large")


def test_a_bad_request_page_stands_on_its_own(client):
    answer = Client(HTTP_HOST="not-a-host.example").get("/runs/")  # DisallowedHost: 400
    _refused(answer, 400, "This request could not be read", "Back to the runs")


def test_the_readme_states_the_limits():
    from tests.installation import ROOT

    readme = (ROOT / "README.md").read_text()
    assert "20 MiB" in readme and f"{DEPTH} levels" in readme
    assert re.search(r"rounds.{0,40}1.{0,10}5,000", readme)


# --------------------------------------------------------------------------- ranges
@pytest.mark.parametrize("value, problem", [
    ({"rounds": 2**64}, "input.rounds: must be at most 5000"),
    ({"rounds": 0}, "input.rounds: must be at least 1"),
    ({"rounds": 5, "fail_at": 5_001}, "input.fail_at: must be at most 5000"),
    ({"rounds": 5, "step_ms": -1}, "input.step_ms: must be at least 0"),
    ({"rounds": 5, "step_ms": 60_001}, "input.step_ms: must be at most 60000"),
])
def test_long_loop_inputs_out_of_range_are_refused_by_name(value, problem, users):
    before = _counts()
    answer = _token_client(users.operator).post("/api/workflows/long-loop/runs/",
                                                {"input": value}, format="json")
    assert answer.status_code == 400 and answer.json() == {"detail": problem}
    assert _counts() == before


@pytest.mark.parametrize("workflow, value, problem", [
    ("document-review", {"title": ""}, "input.title: must have at least 1 characters"),
    ("document-review", {"title": "t" * 201}, "input.title: must have at most 200 characters"),
    ("document-review", {"title": "t", "body": "b" * 100_001},
     "input.body: must have at most 100000 characters"),
    ("ticket-router", {"subject": "s" * 201}, "input.subject: must have at most 200 characters"),
])
def test_other_inputs_have_ranges_too(workflow, value, problem):
    with pytest.raises(services.InvalidInput) as refused:
        services.start_run(workflow, value)
    assert str(refused.value) == problem


def test_answers_have_ranges(seeded):
    with pytest.raises(services.InvalidInput) as refused:
        services.respond(seeded.request.pk, {"approved": False, "comment": "c" * 10_001})
    assert str(refused.value) == "response.comment: must have at most 10000 characters"


def test_the_largest_number_of_rounds_fits_the_workflows_iterations():
    import asyncio

    result = asyncio.run(build_long_loop().run(LoopInput(rounds=MAX_ROUNDS)))
    assert result.get_outputs() == [MAX_ROUNDS * (MAX_ROUNDS + 1) // 2]
    with pytest.raises(WorkflowConvergenceError):  # one more would not finish
        asyncio.run(build_long_loop().run(LoopInput(rounds=MAX_ROUNDS + 1)))


def test_the_start_form_carries_the_ranges(users, client):
    client.force_login(users.operator)
    page = client.get(reverse("dashboard:start-run", args=["long-loop"])).content.decode()
    rounds = re.search(r'<input[^>]*name="rounds"[^>]*>', page).group(0)
    assert 'min="1"' in rounds and 'max="5000"' in rounds
    fail_at = re.search(r'<input[^>]*name="fail_at"[^>]*>', page).group(0)
    assert 'min="1"' in fail_at and 'max="5000"' in fail_at
    step_ms = re.search(r'<input[^>]*name="step_ms"[^>]*>', page).group(0)
    assert 'min="0"' in step_ms and 'max="60000"' in step_ms
    answer = client.post(reverse("dashboard:start-run", args=["long-loop"]),
                         {"rounds": "5001", "fail_at": "", "step_ms": "0"}, follow=True)
    assert "must be at most 5000" in answer.content.decode()
    assert Run.objects.count() == 0
