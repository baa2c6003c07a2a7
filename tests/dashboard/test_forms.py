"""Response forms generated from the JSON schema of a request's response type."""

import enum
from dataclasses import dataclass

import pydantic
import pytest

from dashboard.forms import ResponseForm
from workflows_app.schemas import json_schema


class Size(str, enum.Enum):
    S = "s"
    L = "l"


@dataclass
class Order:
    quantity: int
    size: Size
    gift: bool
    note: str = ""


class Rating(pydantic.BaseModel):
    stars: int
    why: str


def test_a_bare_bool_is_answered_with_approve_or_reject():
    form = ResponseForm(json_schema(bool), {"decision": "false"})
    assert form.is_decision and not form.fields and form.is_valid()
    assert form.to_json() is False
    assert not ResponseForm(json_schema(bool), {}).is_valid()


@pytest.mark.parametrize("tp, posted, expected", [
    (str, "hello", "hello"), (int, "42", 42), (float, "2.5", 2.5), (Size, '"l"', "l")])
def test_bare_values_have_one_typed_field(tp, posted, expected):
    form = ResponseForm(json_schema(tp), {"value": posted})
    assert list(form.fields) == ["value"]
    assert form.is_valid(), form.errors
    assert form.to_json() == expected


def test_an_int_field_refuses_text_with_an_error_on_the_field():
    form = ResponseForm(json_schema(int), {"value": "many"})
    assert not form.is_valid() and "value" in form.errors


def test_a_dataclass_gets_one_field_per_attribute_with_its_type():
    form = ResponseForm(json_schema(Order), {"quantity": "3", "size": '"s"', "gift": "true"})
    assert set(form.fields) == {"quantity", "size", "gift", "note"}
    assert [c for c, _ in form.fields["size"].choices] == ['"s"', '"l"']
    assert form.is_valid(), form.errors
    assert form.to_json() == {"quantity": 3, "size": "s", "gift": True}


def test_a_pydantic_model_gets_its_fields_and_required_ones_are_enforced():
    form = ResponseForm(json_schema(Rating), {"stars": "5"})
    assert not form.is_valid() and "why" in form.errors
    form = ResponseForm(json_schema(Rating), {"stars": "5", "why": "fast"})
    assert form.is_valid() and form.to_json() == {"stars": 5, "why": "fast"}


def test_a_yes_or_no_inside_an_answer_starts_unchosen_and_must_be_chosen():
    blank = ResponseForm(json_schema(Order))
    assert 'value="" selected' in str(blank["gift"]) or "selected" not in str(blank["gift"])
    assert [value for value, _ in blank.fields["gift"].choices] == ["", "true", "false"]
    unchosen = ResponseForm(json_schema(Order), {"quantity": "1", "size": '"s"', "gift": ""})
    assert not unchosen.is_valid() and unchosen.errors["gift"] == ["a value is required"]
    chosen = ResponseForm(json_schema(Order), {"quantity": "1", "size": '"s"', "gift": "false"})
    assert chosen.is_valid() and chosen.cleaned_data["gift"] is False
