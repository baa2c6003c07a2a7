"""Start forms generated from the start executor's input type, with a JSON editor, and the
start page a refused start redirects to (post/redirect/get)."""

from dataclasses import dataclass
from typing import Annotated

import pydantic
import pytest
from django.urls import reverse

from dashboard.forms import ResponseForm, SchemaForm, StartRunForm
from workflows_app import services
from workflows_app.models import RegisteredWorkflow, Run
from workflows_app.schemas import Problem, json_schema

JSON, AS_JSON = StartRunForm.JSON, StartRunForm.AS_JSON

pytestmark = pytest.mark.django_db


@dataclass
class Batch:
    size: Annotated[int, pydantic.Field(ge=1, le=500)]
    ratio: Annotated[float, pydantic.Field(ge=0, le=1)] = 0.5
    retries: Annotated[int, pydantic.Field(gt=0, lt=10)] = 3
    label: str = ""


@dataclass
class Other:
    name: str


def schema_of(*types) -> dict:
    """A start executor's input schema as ``services.sync_workflows`` stores it."""
    if len(types) == 1:
        return json_schema(types[0])
    return {"anyOf": [json_schema(t) for t in types]}


def registered(name: str) -> RegisteredWorkflow:
    services.sync_workflows()
    return RegisteredWorkflow.objects.get(name=name)


# --------------------------------------------------------------------------- the form
def test_shipped_workflows_get_fields_of_their_input_type():
    review = StartRunForm(registered("document-review").input_schema)
    assert list(review.input_form.fields) == ["title", "body"]
    assert review.input_form.fields["title"].required and not review.input_form.fields["body"].required

    loop = StartRunForm(registered("long-loop").input_schema)  # takes LoopInput or Tick
    assert list(loop.input_form.fields) == ["rounds", "fail_at", "step_ms"]
    assert loop.input_form["rounds"].value() == 20 and not loop.input_form.fields["fail_at"].required
    assert loop.json_toggle and not loop.json_only

    ticket = StartRunForm(registered("ticket-router").input_schema)
    assert ticket.input_form["priority"].value() == '"normal"'
    assert [label for _, label in ticket.input_form.fields["priority"].choices] == [
        "low", "normal", "high"]

    words = StartRunForm(registered("map-reduce").input_schema)  # a plain string
    assert list(words.input_form.fields) == ["value"]
    assert "<textarea" in str(words.input_form["value"]) and not words.json_toggle


def test_start_and_response_forms_share_one_generator():
    start, response = StartRunForm(json_schema(Batch)), ResponseForm(json_schema(Batch))
    assert isinstance(start.input_form, SchemaForm) and isinstance(response, SchemaForm)
    assert {n: type(f) for n, f in start.input_form.fields.items()} == {
        n: type(f) for n, f in response.fields.items()}


def test_number_fields_carry_the_schemas_range():
    form = StartRunForm(json_schema(Batch))
    size, ratio, retries = (str(form.input_form[name]) for name in ("size", "ratio", "retries"))
    assert 'min="1"' in size and 'max="500"' in size
    assert 'min="0"' in ratio and 'max="1"' in ratio
    assert 'min="1"' in retries and 'max="9"' in retries  # exclusive bounds of whole numbers
    too_big = StartRunForm(json_schema(Batch), {"size": "501", "ratio": "0.5", "retries": "3"})
    assert not too_big.is_valid() and too_big.input_form.errors["size"] == ["must be at most 500"]


def test_field_errors_are_in_the_users_terms():
    form = StartRunForm(json_schema(Batch), {"size": "2.5", "ratio": "x", "retries": ""})
    assert not form.is_valid()
    assert form.input_form.errors == {"size": ["must be a whole number"],
                                      "ratio": ["must be a number"]}
    assert [(p["label"], p["message"], p["anchor"]) for p in form.problems()] == [
        ("Size", "must be a whole number", "id_size"), ("Ratio", "must be a number", "id_ratio")]


def test_the_json_editor_is_the_input_only_when_ticked_and_not_blank():
    fields = {"size": "7", "ratio": "0.5", "retries": "3", "label": "a"}
    typed = '{"size": 9}'
    cases = [({**fields, JSON: typed, AS_JSON: "on"}, {"size": 9}),      # ticked, typed
             ({**fields, JSON: "  \n", AS_JSON: "on"}, {**fields}),     # ticked, blank
             ({**fields, JSON: typed}, {**fields})]                      # typed, not ticked
    for data, expected in cases:
        form = StartRunForm(json_schema(Batch), data)
        assert form.is_valid(), form.errors
        if expected == fields:
            assert not form.uses_json
            assert form.value() == {"size": 7, "ratio": 0.5, "retries": 3, "label": "a"}
        else:
            assert form.uses_json and form.value() == expected
    # The fields are not checked when the JSON is the input (they may be left empty).
    json_only = StartRunForm(json_schema(Batch), {"size": "", JSON: typed, AS_JSON: "on"})
    assert json_only.is_valid() and json_only.value() == {"size": 9}


def test_bad_json_is_reported_on_the_editor():
    form = StartRunForm(json_schema(Batch), {"size": "1", JSON: '{"size": ', AS_JSON: "on"})
    assert not form.is_valid()
    assert form.errors[JSON][0].startswith("is not valid JSON (")


def test_inputs_the_fields_cannot_express_get_the_json_editor_alone():
    for schema in (json_schema(int | list[str]), json_schema(list[Other])):
        form = StartRunForm(schema, {JSON: "[1]"})
        assert form.json_only and form.input_form is None and form.uses_json
        assert form.is_valid() and form.value() == [1]
    # several types, the first an object: its fields, and the editor for any of them
    several = StartRunForm(schema_of(Batch, Other), {JSON: '{"name": "x"}', AS_JSON: "on"})
    assert list(several.input_form.fields) == ["size", "ratio", "retries", "label"]
    assert several.is_valid() and several.value() == {"name": "x"}


def test_a_form_field_the_form_does_not_have_is_refused():
    form = StartRunForm(json_schema(Batch), {"size": "3", "input": '{"size": 9}'})
    assert not form.is_valid()
    assert form.non_field_errors() == ['unknown form field "input"']


def test_an_optional_number_left_empty_takes_the_types_default():
    form = StartRunForm(registered("long-loop").input_schema,
                        {"rounds": "3", "fail_at": "", "step_ms": "0"})
    assert form.is_valid() and form.value() == {"rounds": 3, "step_ms": 0}
    form = StartRunForm(registered("long-loop").input_schema,
                        {"rounds": "3", "fail_at": "2", "step_ms": "0"})
    assert form.is_valid() and form.value() == {"rounds": 3, "fail_at": 2, "step_ms": 0}


# --------------------------------------------------------------------------- the pages
@pytest.fixture(autouse=True)
def _quiet(quiet_channels):
    """Pages are checked here; their websockets in test_consumers.py."""


@pytest.fixture
def operator(client, make_user):
    client.force_login(make_user("op", "operators"))
    return client


def start_url(name: str) -> str:
    return reverse("dashboard:start-run", args=[name])


def test_the_workflows_page_shows_generated_forms(operator):
    html = operator.get(reverse("dashboard:workflows")).content.decode()
    assert 'id="start-long-loop-rounds"' in html and 'name="rounds"' in html
    assert 'name="input-json"' in html and 'name="input-as-json"' in html
    assert 'id="start-document-review-title"' in html and 'id="long-loop"' in html


def test_a_start_from_the_fields_starts_the_run_with_what_was_typed(operator):
    response = operator.post(start_url("long-loop"),
                             {"rounds": "5", "fail_at": "", "step_ms": "0"})
    run = Run.objects.get()
    assert response.status_code == 302 and response["Location"] == reverse("dashboard:run",
                                                                            args=[run.pk])
    assert run.input["fields"] == {"rounds": 5, "fail_at": None, "step_ms": 0}


def test_a_refused_field_redirects_to_the_start_page_which_shows_it_once(operator):
    response = operator.post(start_url("long-loop"),
                             {"rounds": "2.5", "fail_at": "", "step_ms": "0"})
    assert response.status_code == 302 and response["Location"] == start_url("long-loop")
    page = operator.get(start_url("long-loop")).content.decode()
    assert 'class="error-summary"' in page and "one problem" in page
    assert 'href="#start-long-loop-rounds"><b>Rounds</b>: must be a whole number' in page
    assert 'value="2.5"' in page  # what was typed stays
    again = operator.get(start_url("long-loop")).content.decode()  # reloaded: shown once
    assert "error-summary" not in again and 'value="20"' in again
    assert Run.objects.count() == 0


def test_unknown_json_fields_are_refused_by_the_service_and_shown_on_the_editor(operator):
    typed = '{"round": 5}'
    response = operator.post(start_url("long-loop"), {
        "rounds": "20", "fail_at": "", "step_ms": "0", JSON: typed, AS_JSON: "on"})
    assert response.status_code == 302 and Run.objects.count() == 0
    page = operator.get(start_url("long-loop")).content.decode()
    message = "unknown field &quot;round&quot; (expected: rounds, fail_at, step_ms)"
    assert page.count(message) == 2  # in the summary and under the editor
    assert 'href="#start-long-loop-input-json"' in page
    assert "{&quot;round&quot;: 5}</textarea>" in page and "checked" in page
    assert "LoopInput" not in page.split('class="error-summary"')[1].split("</div>")[0]


def test_a_service_refusal_lands_on_the_field_it_names():
    """The service checks the real type, which may refuse what the fields let through."""
    @dataclass
    class Order:
        items: list[Other]
        note: str = ""

    form = StartRunForm(json_schema(Order), {"items": '[{"name": "a"}, {"nam": "b"}]'})
    assert form.is_valid()
    form.add_problems([Problem(("items", 1), 'unknown field "nam" (expected: name)'),
                       Problem((), "text must not contain NUL characters")])
    assert form.input_form.errors["items"] == ['[1]: unknown field "nam" (expected: name)']
    assert form.non_field_errors() == ["input: text must not contain NUL characters"]
    as_json = StartRunForm(json_schema(Order), {JSON: '{"items": 1}', AS_JSON: "on"})
    assert as_json.is_valid()
    as_json.add_problems([Problem(("items",), "must be a list")])
    assert as_json.errors[JSON] == ["items: must be a list"]  # from the root of the JSON


def test_a_viewer_sees_the_start_page_without_a_form_and_cannot_post(client, make_user):
    client.force_login(make_user("v", "viewers"))
    page = client.get(start_url("long-loop"))
    assert page.status_code == 200 and b"needs the operator role" in page.content
    assert client.post(start_url("long-loop"), {"rounds": "1"}).status_code == 403
    assert Run.objects.count() == 0


def test_fields_are_not_checked_when_the_json_is_the_input(operator):
    operator.post(start_url("document-review"),
                  {"title": "", "body": "typed", JSON: '{"title": ', AS_JSON: "on"})
    page = operator.get(start_url("document-review")).content.decode()
    assert "is not valid JSON" in page and "a value is required" not in page
    assert page.count('aria-invalid="true"') == 1  # the editor's, not the empty title's
    assert 'name="body" value="typed"' in page
