"""Checkpoint values as a person reads them: the engine's encoding envelopes (type tags,
class names) removed, leaving plain JSON."""

from __future__ import annotations

import json
from typing import Any


def plain(value: Any) -> Any:
    """An encoded checkpoint value as a person reads it: dataclasses and models as their
    fields, enums as their names, other tags as their payload."""
    if isinstance(value, list):
        return [plain(item) for item in value]
    if not isinstance(value, dict):
        return value
    tag = value.get("__type__")
    if tag in ("dataclass", "pydantic"):
        return plain(value.get("fields"))
    if tag == "enum":
        return value.get("name")
    if tag in ("tuple", "set", "frozenset"):
        return plain(value.get("items"))
    if tag == "dict":
        return {json.dumps(plain(k)): plain(v) for k, v in value.get("items", [])}
    if tag is not None:
        return next((v for k, v in value.items() if k != "__type__"), None)
    return {key: plain(item) for key, item in value.items()}


def plain_json(value: Any, *, indent: int | None = None) -> str:
    """``plain(value)`` as JSON text, keys sorted (PostgreSQL's jsonb does not keep the
    order keys were written in, and a page must read the same on both databases)."""
    return json.dumps(plain(value), ensure_ascii=False, sort_keys=True, indent=indent)
