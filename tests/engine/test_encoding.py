"""Safe JSON encoding of checkpoint values: what round-trips, what is refused, and that
decoding a tampered payload resolves nothing outside the registry and runs nothing."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Literal

import pytest

from workflows_app.engine import WorkflowCheckpointError, register_checkpoint_type
from workflows_app.engine.encoding import (CheckpointEncodingError, decode_type, decode_value,
                                           encode_type, encode_value)

from .workflows import ENCODABLE_SAMPLES, Color, Line, Point, Profile, Tag, same


def through_json(value):
    """Encode, serialize to JSON text, parse and decode: what a file checkpoint does."""
    text = json.dumps(encode_value(value), allow_nan=False)
    return decode_value(json.loads(text))


@pytest.mark.parametrize("label, value", ENCODABLE_SAMPLES, ids=[s[0] for s in ENCODABLE_SAMPLES])
def test_every_supported_value_round_trips_through_json(label, value):
    decoded = through_json(value)
    assert same(decoded, value), (label, decoded)


def test_encoded_values_are_json_natives_without_nan():
    encoded = encode_value({"nan": math.nan, "inf": math.inf})
    json.dumps(encoded, allow_nan=False)  # raises on a bare nan/inf
    assert encoded["nan"] == {"__type__": "float", "value": "nan"}


def test_encoding_does_not_share_containers_with_the_value():
    value = {"list": [1, [2]], "dict": {"k": "v"}}
    encoded = encode_value(value)
    encoded["list"][1].append(3)
    encoded["dict"]["k"] = "changed"
    assert value == {"list": [1, [2]], "dict": {"k": "v"}}


def test_decoded_dataclasses_are_real_instances():
    line = through_json(Line(Point(0, 0), Point(1, 1)))
    assert isinstance(line, Line) and isinstance(line.start, Point)
    assert line.length == 2
    tag = through_json(Tag("x", Color.RED))
    assert tag.color is Color.RED
    with pytest.raises(Exception):
        tag.name = "mutated"  # still frozen
    profile = through_json(Profile(name="Ada", born="1815-12-10",
                                   address={"city": "London", "zip_code": "W1"}))
    assert isinstance(profile, Profile) and profile.address.city == "London"


class Opaque:
    pass


@dataclass
class NotRegistered:
    value: int


@pytest.mark.parametrize("value, pattern", [
    (Opaque(), "values of type .*Opaque cannot be stored"),
    (lambda: None, "values of type .*function cannot be stored"),
    (NotRegistered(1), r"NotRegistered is not registered for checkpoints; call "
                       r"register_checkpoint_type\(NotRegistered\)"),
    (bytearray(b"x"), "bytearray cannot be stored"),
])
def test_unsupported_values_are_refused(value, pattern):
    with pytest.raises(CheckpointEncodingError, match=pattern):
        encode_value(value)


def test_the_error_locates_the_value_inside_its_container():
    with pytest.raises(CheckpointEncodingError) as caught:
        encode_value({"ok": 1, "deep": {"items": [0, (1, Opaque())]}})
    assert caught.value.path == ["deep", "items", 1, 1]
    located = caught.value.located("executor 'e' state")
    assert str(located).startswith("cannot encode executor 'e' state['deep']['items'][1][1]: ")
    assert isinstance(located, WorkflowCheckpointError)


def test_register_checkpoint_type_takes_only_dataclasses_enums_and_models():
    with pytest.raises(TypeError, match="takes a dataclass, an Enum or a pydantic model"):
        register_checkpoint_type(Opaque)
    with pytest.raises(TypeError):
        register_checkpoint_type(Point(1, 2))  # an instance, not a class


def test_registration_under_an_explicit_name():
    @dataclass
    class Renamed:
        value: int

    register_checkpoint_type(Renamed, name="stable.Renamed")
    assert encode_value(Renamed(3))["class"] == "stable.Renamed"
    assert through_json(Renamed(3)) == Renamed(3)


# --------------------------------------------------------------------------- tampering
def tampered_payloads(sentinel: str) -> list[dict]:
    """Payloads that a decoder importing classes by name would turn into code execution."""
    command = ["touch", sentinel]
    return [
        {"__type__": "dataclass", "class": "subprocess.Popen", "fields": {"args": command}},
        {"__type__": "dataclass", "class": "os.system", "fields": {"command": f"touch {sentinel}"}},
        {"__type__": "enum", "class": "os.system", "name": f"touch {sentinel}"},
        {"__type__": "pydantic", "class": "subprocess.Popen", "fields": {"args": command}},
        {"__type__": "pickle", "data": "gASVIAAAAAAAAACMBXBvc2l4lIwGc3lzdGVtlJOUjAV0b3VjaJSFlFKULg=="},
        {"__type__": "builtins.eval", "source": f"__import__('os').system('touch {sentinel}')"},
        {"__type__": ["dataclass"], "class": "x"},
    ]


def test_tampered_tags_fail_to_decode_and_execute_nothing(tmp_path):
    sentinel = tmp_path / "sentinel"
    for payload in tampered_payloads(str(sentinel)):
        with pytest.raises(WorkflowCheckpointError) as caught:
            decode_value({"state": [payload]})
        message = str(caught.value)
        assert "not registered" in message or "unknown type tag" in message, message
    assert not sentinel.exists()


def test_a_registered_class_under_the_wrong_tag_is_refused():
    enum_name = encode_value(Color.RED)["class"]
    with pytest.raises(WorkflowCheckpointError, match="is not a dataclass"):
        decode_value({"__type__": "dataclass", "class": enum_name, "fields": {}})
    point_name = encode_value(Point(0, 0))["class"]
    with pytest.raises(WorkflowCheckpointError, match="is not an Enum"):
        decode_value({"__type__": "enum", "class": point_name, "name": "RED"})
    with pytest.raises(WorkflowCheckpointError, match="is not a pydantic model"):
        decode_value({"__type__": "pydantic", "class": point_name, "fields": {}})


@pytest.mark.parametrize("payload", [
    {"__type__": "tuple", "items": "abc"},
    {"__type__": "tuple"},
    {"__type__": "bytes", "b64": "***"},
    {"__type__": "datetime", "iso": "yesterday"},
    {"__type__": "float", "value": "1e400"},
    {"__type__": "decimal", "value": "one"},
    {"__type__": "dict", "items": [[[1], "unhashable key"]]},
    {"__type__": "enum", "class": "PLACEHOLDER", "name": "PURPLE"},
    {"__type__": "dataclass", "class": "PLACEHOLDER_POINT", "fields": {"x": 1, "y": 2, "z": 3}},
])
def test_malformed_payloads_are_reported_not_half_decoded(payload):
    payload = dict(payload)
    if payload.get("class") == "PLACEHOLDER":
        payload["class"] = encode_value(Color.RED)["class"]
    if payload.get("class") == "PLACEHOLDER_POINT":
        payload["class"] = encode_value(Point(0, 0))["class"]
    with pytest.raises(WorkflowCheckpointError, match="malformed|not registered|unknown"):
        decode_value(payload)


def test_non_json_values_are_refused_when_decoding():
    with pytest.raises(WorkflowCheckpointError, match="non-JSON value of type Opaque"):
        decode_value([Opaque()])


# --------------------------------------------------------------------------- type references
@pytest.mark.parametrize("annotation", [
    bool, int, str, type(None), list[int], dict[str, list[Point]], tuple[int, ...],
    int | None, Point | Color, Literal["yes", "no"],
])
def test_type_references_round_trip(annotation):
    assert decode_type(json.loads(json.dumps(encode_type(annotation)))) == annotation


def test_type_references_resolve_only_builtins_and_registered_classes():
    for reference in ("os.system", "subprocess.Popen", {"origin": "os.system", "args": []}, 42):
        with pytest.raises(WorkflowCheckpointError):
            decode_type(reference)
    with pytest.raises(WorkflowCheckpointError, match="not registered"):
        encode_type(Opaque)
