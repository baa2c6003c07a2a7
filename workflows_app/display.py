"""Stored values made safe to show and to write out, whatever they hold.

Inputs, answers and imports are checked before they are stored (``services._storable``),
but a value can still be stored that a page cannot encode: one written before those checks
existed, or one a workflow's own code put into its state (a string with an unpaired
surrogate, which Python holds but UTF-8 cannot encode; a structure nested deeper than a
page can walk). Pages, the API and exports show such values instead of failing on them:

- ``readable_text`` / ``readable``: for people. Each unpaired surrogate becomes U+FFFD (the
  replacement character) and nesting deeper than ``MAX_JSON_DEPTH`` levels becomes a note.
- ``json_text``: for files and API bodies, lossless. JSON text as it is, or, when that
  text cannot be encoded as UTF-8, the same JSON with every non-ASCII character escaped
  (``"\\ud800"``), which any JSON parser reads back to the same value.
"""

from __future__ import annotations

import json
from typing import Any

from .limits import MAX_JSON_DEPTH

TOO_DEEP = f"… (nested more than {MAX_JSON_DEPTH} levels deep: not shown)"


def readable_text(text: str) -> str:
    """``text`` with each unpaired surrogate replaced by U+FFFD (``text`` itself when it
    has none, the common case, checked at C speed)."""
    if text.isascii():
        return text
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        # UTF-16 with surrogatepass writes paired surrogates as the character they make
        # and lone ones as themselves, which its decoder then replaces.
        return text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text


def readable(value: Any, *, max_depth: int = MAX_JSON_DEPTH, _level: int = 0) -> Any:
    """A copy of the JSON value ``value`` that every page can show: its text (keys too)
    through ``readable_text``, and every list or object more than ``max_depth`` levels down
    replaced by the note ``TOO_DEEP``."""
    if isinstance(value, str):
        return readable_text(value)
    if not isinstance(value, dict | list | tuple):
        return value
    if _level >= max_depth:
        return TOO_DEEP
    level = _level + 1
    if isinstance(value, dict):
        return {readable_text(key) if isinstance(key, str) else key:
                readable(item, max_depth=max_depth, _level=level)
                for key, item in value.items()}
    return [readable(item, max_depth=max_depth, _level=level) for item in value]


def json_text(value: Any, **dumps: Any) -> str:
    """``value`` as JSON text that can be encoded as UTF-8 and read back to ``value``:
    non-ASCII characters as they are, unless the text holds an unpaired surrogate; then
    all of them escaped. ``dumps`` are ``json.dumps``'s other arguments."""
    text = json.dumps(value, ensure_ascii=False, **dumps)
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return json.dumps(value, ensure_ascii=True, **dumps)
    return text
