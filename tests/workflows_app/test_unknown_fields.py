"""Typed input refuses fields its type does not declare, at any depth, and says what is
wrong in the user's terms; the services and the API refuse with the same message."""

import re
from dataclasses import dataclass, field
from typing import Annotated, Literal

import pydantic
import pytest
from pydantic import BaseModel, ConfigDict
from typing_extensions import TypedDict

from workflows_app import services
from workflows_app.examples import LoopInput, ReviewDecision, Tick
from workflows_app.models import Run
from workflows_app.schemas import InvalidValue, Problem, coerce, coerce_any


@dataclass
class Address:
    city: str
    zip: str = ""


@dataclass
class Person:
    name: str
    address: Address | None = None
    pets: list[Address] = field(default_factory=list)
    by_tag: dict[str, Address] = field(default_factory=dict)


class Item(BaseModel):
    sku: str
    quantity: int = 1


class Basket(BaseModel):
    items: list[Item]


class Open(BaseModel, extra="allow"):
    a: int


class Lenient(BaseModel):
    model_config = ConfigDict(extra="ignore")
    a: int


@pydantic.dataclasses.dataclass(config=ConfigDict(extra="allow"))
class OpenDataclass:
    a: int


class Aliased(BaseModel):
    full_name: str = pydantic.Field(alias="fullName")


class Span(TypedDict):
    start: int
    end: int


@dataclass
class Cat:
    kind: Literal["cat"]
    lives: int = 9


@dataclass
class Dog:
    kind: Literal["dog"]
    good: bool = True


def refusal(value, tp, what="input") -> InvalidValue:
    with pytest.raises(InvalidValue) as raised:
        coerce(value, tp, what=what)
    return raised.value


def test_an_unknown_field_is_refused_naming_it_and_the_fields_expected():
    error = refusal({"round": 5}, LoopInput)
    assert str(error) == 'input: unknown field "round" (expected: rounds, fail_at, step_ms)'
    assert error.problems == [Problem((), 'unknown field "round" (expected: rounds, fail_at, step_ms)')]
    assert str(refusal({"city": "Oslo", "a": 1, "b": 2}, Address)) == (
        'input: unknown fields "a", "b" (expected: city, zip)')


@pytest.mark.parametrize("value, where", [
    ({"name": "x", "address": {"city": "Oslo", "street": "y"}}, "input.address"),
    ({"name": "x", "pets": [{"city": "a"}, {"city": "b", "paws": 4}]}, "input.pets[1]"),
    ({"name": "x", "by_tag": {"home": {"city": "a", "floor": 2}}}, "input.by_tag.home"),
])
def test_unknown_fields_of_nested_dataclasses_are_refused_where_they_are(value, where):
    message = str(refusal(value, Person))
    assert message.startswith(f"{where}: unknown field ")
    assert message.endswith("(expected: city, zip)")


def test_pydantic_models_refuse_unknown_fields_unless_they_chose_otherwise():
    assert str(refusal({"items": [{"sku": "a", "qty": 2}]}, Basket)) == (
        'input.items[0]: unknown field "qty" (expected: sku, quantity)')
    # Types registered with their own config keep it.
    assert coerce({"a": 1, "b": 2}, Open).model_extra == {"b": 2}
    assert coerce({"a": 1, "b": 2}, Lenient) == Lenient(a=1)
    assert coerce({"a": 1, "b": 2}, OpenDataclass).a == 1
    assert coerce({"fullName": "Ada"}, Aliased).full_name == "Ada"
    assert "unknown field \"full_name\" (expected: fullName)" in str(
        refusal({"full_name": "Ada"}, Aliased))


def test_typed_dicts_refuse_unknown_keys_too():
    assert coerce([{"start": 1, "end": 2}], list[Span]) == [{"start": 1, "end": 2}]
    assert str(refusal([{"start": 1, "end": 2, "step": 1}], list[Span])) == (
        'input[0]: unknown field "step" (expected: start, end)')


def test_unknown_fields_and_wrong_values_are_reported_together():
    error = refusal({"name": 3, "address": {"city": "a", "town": "b"}}, Person)
    assert [p.describe("input") for p in error.problems] == [
        "input.name: must be text",
        'input.address: unknown field "town" (expected: city, zip)']


def test_of_several_types_the_one_that_fits_exactly_is_taken():
    exact_tick = {"n": 1, "rounds": 3, "fail_at": None, "step_ms": 0}
    assert coerce_any(exact_tick, [LoopInput, Tick]) == Tick(1, 3, None, 0)
    assert coerce_any({"rounds": 3}, [LoopInput, Tick]) == LoopInput(rounds=3)
    # None fits: the problems are those of the type the value came closest to.
    with pytest.raises(InvalidValue) as raised:
        coerce_any({"round": 5}, [LoopInput, Tick], what="input")
    assert str(raised.value) == 'input: unknown field "round" (expected: rounds, fail_at, step_ms)'


def test_a_union_reports_the_alternative_the_value_was_meant_for():
    assert str(refusal({"kind": "dog", "good": True, "bark": 1}, Cat | Dog)) == (
        'input: unknown field "bark" (expected: kind, good)')
    assert str(refusal({"kind": "cat", "lives": "many"}, Cat | Dog)) == (
        "input.lives: must be a whole number")
    assert str(refusal([], int | str)) == "input: must be a whole number or text"


@pytest.mark.parametrize("value, tp, expected", [
    ({"rounds": "x"}, LoopInput, "input.rounds: must be a whole number"),
    ({"rounds": 2.5}, LoopInput, "input.rounds: must be a whole number"),
    ("ten", LoopInput, "input: expected an object with fields rounds, fail_at, step_ms"),
    ({}, Address, "input.city: a value is required"),
    ({"approved": "maybe"}, ReviewDecision, "input.approved: must be true or false"),
    ({"items": "a"}, Basket, "input.items: must be a list"),
    ({"items": [3]}, Basket, "input.items[0]: expected an object with fields sku, quantity"),
    (0, Annotated[int, pydantic.Field(ge=1, le=5)], "input: must be at least 1"),
    ({"kind": "cow"}, Annotated[Cat | Dog, pydantic.Field(discriminator="kind")],
     "input: kind must be one of 'cat', 'dog'"),
])
def test_messages_name_the_field_and_the_problem_in_the_users_terms(value, tp, expected):
    message = str(refusal(value, tp))
    assert message == expected
    # Nothing of pydantic's wording, nor the name of a Python class the user never saw.
    assert not re.search(r"Input should|instance of|LoopInput|ReviewDecision|Basket|Item\b|Cat|Dog",
                         message)


# --------------------------------------------------------------------------- services, API
@pytest.mark.django_db
def test_start_run_refuses_unknown_fields_and_starts_nothing():
    with pytest.raises(services.InvalidInput) as raised:
        services.start_run("long-loop", {"round": 5})
    assert str(raised.value) == 'input: unknown field "round" (expected: rounds, fail_at, step_ms)'
    assert Run.objects.count() == 0


@pytest.mark.django_db
def test_respond_refuses_unknown_fields(execute, quiet_channels):
    run = execute(services.start_run("document-review", {"title": "Plan"}))
    request = run.requests.get()
    with pytest.raises(services.InvalidInput) as raised:
        services.respond(request.pk, {"approved": True, "coment": "typo"})
    assert str(raised.value) == ('response: unknown field "coment" '
                                 '(expected: approved, comment)')
    request.refresh_from_db()
    assert request.status == "open"


@pytest.mark.django_db
def test_the_api_refuses_unknown_fields_with_400_and_the_message(client, make_user):
    client.force_login(make_user("op", "operators"))
    response = client.post("/api/workflows/long-loop/runs/", {"input": {"round": 5}},
                           content_type="application/json")
    assert response.status_code == 400
    assert response.json() == {
        "detail": 'input: unknown field "round" (expected: rounds, fail_at, step_ms)'}
    wrong = client.post("/api/workflows/long-loop/runs/", {"input": {"rounds": "x"}},
                        content_type="application/json")
    assert wrong.status_code == 400
    assert wrong.json() == {"detail": "input.rounds: must be a whole number"}
    assert Run.objects.count() == 0
