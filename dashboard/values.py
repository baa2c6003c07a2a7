"""Checkpoint values as a person reads them: the engine's encoding envelopes (type tags,
class names) removed, leaving plain JSON.

Every stored value a dashboard page shows passes through ``plain``, so this is where a page
is made safe from what a value holds: text that no page can encode (an unpaired surrogate)
is shown with U+FFFD in its place, and nesting beyond ``MAX_JSON_DEPTH`` levels as a note
(``workflows_app.display``). A page never fails on a stored value."""

from __future__ import annotations

import json
from typing import Any

from workflows_app.display import TOO_DEEP, readable_text
from workflows_app.limits import MAX_JSON_DEPTH


def plain(value: Any, _level: int = 0) -> Any:
    """An encoded checkpoint value as a person reads it: dataclasses and models as their
    fields, enums as their names, other tags as their payload; its text readable and its
    depth cut at ``MAX_JSON_DEPTH`` levels (see the module's docstring)."""
    if isinstance(value, str):
        return readable_text(value)
    if not isinstance(value, list | dict):
        return value
    if _level >= MAX_JSON_DEPTH:
        return TOO_DEEP
    level = _level + 1
    if isinstance(value, list):
        return [plain(item, level) for item in value]
    tag = value.get("__type__")
    if tag in ("dataclass", "pydantic"):
        return plain(value.get("fields"), _level)
    if tag == "enum":
        return plain(value.get("name"), _level)
    if tag in ("tuple", "set", "frozenset"):
        return plain(value.get("items"), _level)
    if tag == "dict":
        return {json.dumps(plain(k, level)): plain(v, level)
                for k, v in _pairs(value.get("items"))}
    if tag is not None:
        return plain(next((v for k, v in value.items() if k != "__type__"), None), _level)
    return {readable_text(key): plain(item, level) for key, item in value.items()}


def _pairs(items: Any) -> list:
    """The ``[key, value]`` pairs of an encoded dict; a malformed one shows what it has."""
    if not isinstance(items, list):
        return []
    return [pair if isinstance(pair, list) and len(pair) == 2 else [pair, None]
            for pair in items]


def plain_json(value: Any, *, indent: int | None = None) -> str:
    """``plain(value)`` as JSON text, keys sorted (PostgreSQL's jsonb does not keep the
    order keys were written in, and a page must read the same on both databases)."""
    return json.dumps(plain(value), ensure_ascii=False, sort_keys=True, indent=indent)
