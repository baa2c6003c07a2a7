"""Typed values at the edge of the application: JSON coming from forms and the API is
validated against a workflow's input type or a request's response type, and described as
JSON schema for forms and API docs. pydantic's ``TypeAdapter`` does the work: it knows
dataclasses, Enums, pydantic models, containers and unions."""

from __future__ import annotations

import functools
from typing import Any

from pydantic import TypeAdapter, ValidationError


class InvalidValue(ValueError):
    """A value does not fit the expected type; the message names the field and problem."""


@functools.lru_cache(maxsize=256)
def _adapter(tp: Any) -> TypeAdapter:
    return TypeAdapter(tp)


def coerce(value: Any, tp: Any, *, what: str = "value") -> Any:
    """Turn JSON ``value`` into an instance of ``tp`` (e.g. a dict into a dataclass)."""
    try:
        return _adapter(tp).validate_python(value)
    except ValidationError as error:
        problems = []
        for item in error.errors():
            where = ".".join(str(p) for p in item["loc"])
            problems.append(f"{what}{'.' + where if where else ''}: {item['msg']}")
        raise InvalidValue("; ".join(problems)) from None
    except TypeError as error:  # unhashable tp, or a type pydantic cannot handle
        raise InvalidValue(f"{what}: {error}") from None


def coerce_any(value: Any, types: list[Any], *, what: str = "value") -> Any:
    """Coerce into the first of ``types`` that accepts ``value``."""
    problems = []
    for tp in types:
        try:
            return coerce(value, tp, what=what)
        except InvalidValue as error:
            problems.append(str(error))
    raise InvalidValue(" / ".join(problems) or f"{what}: no type accepts it")


def json_schema(tp: Any) -> dict[str, Any]:
    """The JSON schema of ``tp`` (an empty schema when pydantic cannot describe it)."""
    try:
        return _adapter(tp).json_schema()
    except Exception:
        return {}
