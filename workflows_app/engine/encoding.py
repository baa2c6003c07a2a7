"""Safe, portable JSON encoding of checkpoint values, with an explicit type registry.

Every value in a checkpoint becomes JSON natives. Values JSON cannot hold carry a tag,
``{"__type__": "<tag>", ...}``. Decoding resolves tags through a fixed table of builtin types
and the registry filled by ``register_checkpoint_type``; it never imports a module and never
calls anything that is not a registered class, so a tampered checkpoint can fail to load but
cannot run code. There is no pickle anywhere.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import decimal
import enum
import math
import types
import typing
import uuid
from typing import Any

from .errors import WorkflowCheckpointError

TYPE_KEY = "__type__"

try:  # pydantic is optional; its models are supported when it is installed
    from pydantic import BaseModel as _PydanticModel
except ImportError:  # pragma: no cover - exercised only without pydantic
    _PydanticModel = None


class CheckpointEncodingError(WorkflowCheckpointError):
    """A value cannot be encoded; ``path`` locates it inside the encoded structure."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.path: list[Any] = []

    def located(self, where: str) -> "CheckpointEncodingError":
        """Return a copy whose message names ``where`` (e.g. "executor 'a' state") and the path."""
        inner = "".join(f"[{p!r}]" for p in self.path)
        located = CheckpointEncodingError(f"cannot encode {where}{inner}: {self.reason}")
        located.path = list(self.path)
        return located


# --------------------------------------------------------------------------- registry
_registry: dict[str, type] = {}
_names: dict[type, str] = {}


def _is_pydantic_model(cls: type) -> bool:
    return _PydanticModel is not None and isinstance(cls, type) and issubclass(cls, _PydanticModel)


def register_checkpoint_type(cls: type, name: str | None = None) -> type:
    """Allow instances of ``cls`` (a dataclass, an Enum or a pydantic model) in checkpoints.

    Returns ``cls``, so it works as a class decorator. ``name`` defaults to
    ``module.QualifiedName``; it is what checkpoints store, so keep it stable.
    """
    if not isinstance(cls, type) or not (
        dataclasses.is_dataclass(cls) or issubclass(cls, enum.Enum) or _is_pydantic_model(cls)
    ):
        raise TypeError(
            f"register_checkpoint_type() takes a dataclass, an Enum or a pydantic model, not {cls!r}"
        )
    key = name or f"{cls.__module__}.{cls.__qualname__}"
    _registry[key] = cls
    _names[cls] = key
    return cls


def is_registered(cls: type) -> bool:
    return cls in _names


def registrable(cls: Any) -> bool:
    """Whether ``cls`` is a kind of class the registry accepts."""
    return isinstance(cls, type) and (
        dataclasses.is_dataclass(cls) or issubclass(cls, enum.Enum) or _is_pydantic_model(cls)
    )


def _registered_name(cls: type) -> str:
    try:
        return _names[cls]
    except KeyError:
        raise CheckpointEncodingError(
            f"type {cls.__module__}.{cls.__qualname__} is not registered for checkpoints; "
            f"call register_checkpoint_type({cls.__qualname__})"
        ) from None


def _registered_class(name: Any) -> type:
    cls = _registry.get(name) if isinstance(name, str) else None
    if cls is None:
        raise WorkflowCheckpointError(
            f"checkpoint refers to type {name!r}, which is not registered in this process "
            f"(register it with register_checkpoint_type before loading)"
        )
    return cls


# --------------------------------------------------------------------------- encoding
_SCALARS = frozenset({str, int, bool, type(None)})  # encoded as themselves (floats: see below)


def encode_value(value: Any) -> Any:
    """Encode ``value`` as JSON natives, tagging what JSON cannot hold.

    Raises ``CheckpointEncodingError`` (with ``.path``) for values of unsupported or
    unregistered types. The result never shares mutable containers with ``value``.
    """
    cls = type(value)
    if cls is str or cls is int or cls is bool or value is None:
        return value
    if cls is list:
        if _SCALARS.issuperset(map(type, value)):  # lists of str, the common growing state
            return list(value)
        try:  # JSON scalars are their own encoding: skip the call for them
            return [item if type(item) in _SCALARS else encode_value(item) for item in value]
        except CheckpointEncodingError as error:
            raise _locate_in_sequence(error, value) from None
    if cls is dict:
        return _encode_dict(value)
    if cls is float:
        if math.isfinite(value):
            return value
        return {TYPE_KEY: "float", "value": repr(value)}
    encoder = _ENCODERS.get(cls)
    if encoder is not None:
        return encoder(value)
    if isinstance(value, enum.Enum):
        return {TYPE_KEY: "enum", "class": _registered_name(cls), "name": value.name}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        name = _registered_name(cls)
        return {TYPE_KEY: "dataclass", "class": name, "fields": _encode_dict(
            {f.name: getattr(value, f.name) for f in dataclasses.fields(value)})}
    if _PydanticModel is not None and isinstance(value, _PydanticModel):
        name = _registered_name(cls)
        return {TYPE_KEY: "pydantic", "class": name,
                "fields": encode_value(value.model_dump(mode="python"))}
    raise CheckpointEncodingError(
        f"values of type {cls.__module__}.{cls.__qualname__} cannot be stored in a checkpoint "
        f"(supported: JSON values, tuple, set, bytes, datetime, date, UUID, Decimal, and "
        f"registered Enums, dataclasses and pydantic models)"
    )


def _encode_dict(value: dict) -> Any:
    plain = TYPE_KEY not in value
    out = {}
    for key, item in value.items():
        if type(key) is not str:
            plain = False
            break
        try:
            out[key] = encode_value(item)
        except CheckpointEncodingError as error:
            error.path.insert(0, key)
            raise
    if plain:
        return out
    items = []
    for key, item in value.items():
        try:
            items.append([encode_value(key), encode_value(item)])
        except CheckpointEncodingError as error:
            error.path.insert(0, key)
            raise
    return {TYPE_KEY: "dict", "items": items}


def _locate_in_sequence(error: CheckpointEncodingError, items: Any) -> CheckpointEncodingError:
    """Find which item of a sequence failed (only on the error path) and record its index."""
    for index, item in enumerate(items):
        try:
            encode_value(item)
        except CheckpointEncodingError:
            error.path.insert(0, index)
            break
    return error


def _encode_items(tag: str) -> Any:
    def encode(value: Any) -> dict:
        try:
            return {TYPE_KEY: tag, "items": [encode_value(item) for item in value]}
        except CheckpointEncodingError as error:
            raise _locate_in_sequence(error, value) from None
    return encode


_ENCODERS: dict[type, Any] = {
    tuple: _encode_items("tuple"),
    set: _encode_items("set"),
    frozenset: _encode_items("frozenset"),
    bytes: lambda v: {TYPE_KEY: "bytes", "b64": base64.b64encode(v).decode("ascii")},
    datetime.datetime: lambda v: {TYPE_KEY: "datetime", "iso": v.isoformat()},
    datetime.date: lambda v: {TYPE_KEY: "date", "iso": v.isoformat()},
    datetime.time: lambda v: {TYPE_KEY: "time", "iso": v.isoformat()},
    datetime.timedelta: lambda v: {TYPE_KEY: "timedelta",
                                   "days": v.days, "seconds": v.seconds, "us": v.microseconds},
    uuid.UUID: lambda v: {TYPE_KEY: "uuid", "value": str(v)},
    decimal.Decimal: lambda v: {TYPE_KEY: "decimal", "value": str(v)},
}


# --------------------------------------------------------------------------- decoding
# JSON scalars decode to themselves (non-finite floats are tagged, so any float is finite).
_DECODED_SCALARS = {str, int, float, bool, type(None)}


def decode_value(data: Any) -> Any:
    """Rebuild a value encoded by ``encode_value``; raises ``WorkflowCheckpointError`` on
    unknown tags, unregistered classes or malformed payloads."""
    cls = type(data)
    if cls is list:
        if _DECODED_SCALARS.issuperset(map(type, data)):  # nothing tagged: a C-speed copy
            return list(data)
        return [decode_value(item) for item in data]
    if cls is dict:
        tag = data.get(TYPE_KEY)
        if tag is None:
            return {key: decode_value(item) for key, item in data.items()}
        decoder = _DECODERS.get(tag) if isinstance(tag, str) else None
        if decoder is None:
            raise WorkflowCheckpointError(f"checkpoint holds an unknown type tag {tag!r}")
        try:
            return decoder(data)
        except WorkflowCheckpointError:
            raise
        except Exception as error:  # malformed payload: report it, never half-decode
            raise WorkflowCheckpointError(
                f"checkpoint value tagged {tag!r} is malformed: {type(error).__name__}: {error}"
            ) from None
    if cls in (str, int, float, bool) or data is None:
        return data
    raise WorkflowCheckpointError(f"checkpoint holds a non-JSON value of type {cls.__name__}")


def _decode_items(data: dict) -> list:
    items = data["items"]
    if type(items) is not list:
        raise ValueError("'items' must be a list")
    return [decode_value(item) for item in items]


def _decode_dataclass(data: dict) -> Any:
    cls = _registered_class(data["class"])
    if not dataclasses.is_dataclass(cls):
        raise WorkflowCheckpointError(f"type {data['class']!r} is not a dataclass")
    values = decode_value(data["fields"])
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(values) - set(fields)
    if unknown:
        raise ValueError(f"unknown fields {sorted(unknown)} for {data['class']}")
    obj = cls(**{k: v for k, v in values.items() if fields[k].init})
    for key, value in values.items():
        if not fields[key].init:
            object.__setattr__(obj, key, value)
    return obj


def _decode_enum(data: dict) -> Any:
    cls = _registered_class(data["class"])
    if not issubclass(cls, enum.Enum):
        raise WorkflowCheckpointError(f"type {data['class']!r} is not an Enum")
    return cls[data["name"]]


def _decode_pydantic(data: dict) -> Any:
    cls = _registered_class(data["class"])
    if not _is_pydantic_model(cls):
        raise WorkflowCheckpointError(f"type {data['class']!r} is not a pydantic model")
    return cls.model_validate(decode_value(data["fields"]))


def _decode_float(data: dict) -> float:
    if data["value"] not in ("nan", "inf", "-inf"):
        raise ValueError("only nan, inf and -inf are tagged floats")
    return float(data["value"])


_DECODERS: dict[str, Any] = {
    "tuple": lambda d: tuple(_decode_items(d)),
    "set": lambda d: set(_decode_items(d)),
    "frozenset": lambda d: frozenset(_decode_items(d)),
    "dict": lambda d: {decode_value(k): decode_value(v) for k, v in d["items"]},
    "bytes": lambda d: base64.b64decode(d["b64"], validate=True),
    "datetime": lambda d: datetime.datetime.fromisoformat(d["iso"]),
    "date": lambda d: datetime.date.fromisoformat(d["iso"]),
    "time": lambda d: datetime.time.fromisoformat(d["iso"]),
    "timedelta": lambda d: datetime.timedelta(days=d["days"], seconds=d["seconds"],
                                              microseconds=d["us"]),
    "uuid": lambda d: uuid.UUID(d["value"]),
    "decimal": lambda d: decimal.Decimal(d["value"]),
    "float": _decode_float,
    "enum": _decode_enum,
    "dataclass": _decode_dataclass,
    "pydantic": _decode_pydantic,
}


# --------------------------------------------------------------------------- type references
_BUILTIN_TYPES: dict[str, Any] = {
    "bool": bool, "int": int, "float": float, "str": str, "bytes": bytes, "None": type(None),
    "list": list, "dict": dict, "tuple": tuple, "set": set, "frozenset": frozenset,
    "Any": Any, "object": object, "datetime": datetime.datetime, "date": datetime.date,
    "uuid": uuid.UUID, "decimal": decimal.Decimal,
}
_BUILTIN_NAMES = {value: key for key, value in _BUILTIN_TYPES.items()}


def encode_type(tp: Any) -> Any:
    """Encode a type annotation (e.g. a request's response type) as a JSON reference."""
    if tp is None:
        tp = type(None)
    try:
        return _BUILTIN_NAMES[tp]
    except (KeyError, TypeError):
        pass
    if isinstance(tp, type) and typing.get_origin(tp) is None:
        return _registered_name(tp)
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin is typing.Literal:
        return {"origin": "Literal", "args": [encode_value(arg) for arg in args]}
    if origin in (typing.Union, types.UnionType):
        return {"origin": "Union", "args": [encode_type(arg) for arg in args]}
    if origin is not None:
        return {"origin": encode_type(origin),
                "args": ["..." if arg is Ellipsis else encode_type(arg) for arg in args]}
    raise CheckpointEncodingError(f"type annotation {tp!r} cannot be stored in a checkpoint")


def decode_type(data: Any) -> Any:
    """Resolve a reference made by ``encode_type`` through builtins and the registry only."""
    if isinstance(data, str):
        if data in _BUILTIN_TYPES:
            return _BUILTIN_TYPES[data]
        return _registered_class(data)
    if isinstance(data, dict) and isinstance(data.get("args"), list):
        origin, args = data.get("origin"), data["args"]
        if origin == "Literal":
            return typing.Literal[tuple(decode_value(arg) for arg in args)]
        if origin == "Union":
            return typing.Union[tuple(decode_type(arg) for arg in args)]
        origin_type = decode_type(origin)
        params = tuple(Ellipsis if arg == "..." else decode_type(arg) for arg in args)
        try:
            return origin_type[params if len(params) != 1 else params[0]]
        except TypeError as error:
            raise WorkflowCheckpointError(f"bad type reference {data!r}: {error}") from None
    raise WorkflowCheckpointError(f"checkpoint holds a malformed type reference {data!r}")
