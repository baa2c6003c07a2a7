"""The most Stepstone accepts from a client, on purpose (the README's "Limits" says them).

- **Size.** A checkpoint export, whether uploaded on the import page, posted to
  ``POST /api/checkpoints/import/`` or read by ``manage.py import_checkpoint``, and any
  request body, may be at most ``MAX_DOCUMENT_BYTES``. One number for all of them, so an
  export that one way can import, every way can (``settings.DATA_UPLOAD_MAX_MEMORY_SIZE``
  is set from it). Pingpong's state after 2,000 supersteps is about 220 KB of JSON: the
  limit leaves room for far larger runs and keeps a mistaken upload (a log, a dump) from
  filling a web process's memory.
- **Nesting.** JSON may nest objects and arrays at most ``MAX_JSON_DEPTH`` levels deep: a
  request body, an uploaded or read export, and the values in them (an input, an answer,
  each part of a checkpoint). Reading, storing and showing a value recurse through it; a
  value nested a thousand levels deep made them fail with a server error instead of an
  answer. Real inputs and states nest a handful of levels (the encoding of a dataclass adds
  two), so the limit costs nothing a workflow needs.
"""

from __future__ import annotations

import json
from typing import Any

MAX_DOCUMENT_BYTES = 20 * 1024 * 1024
MAX_JSON_DEPTH = 100


class TooDeep(ValueError):
    """JSON nested deeper than ``MAX_JSON_DEPTH``; the message says so and where."""


def nesting_depth(value: Any, *, stop_after: int = MAX_JSON_DEPTH) -> int:
    """How many levels of lists and dicts ``value`` nests (0 for a scalar), counted
    without recursion, and at most ``stop_after + 1``: counting stops once it is known to be
    beyond the limit."""
    deepest = 0
    stack = [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict):
            children = item.values()
        elif isinstance(item, list | tuple):
            children = item
        else:
            continue
        deepest = max(deepest, depth)
        if deepest > stop_after:
            return deepest
        stack.extend((child, depth + 1) for child in children)
    return deepest


def load_json(text: str | bytes) -> Any:
    """``json.loads(text)``, refusing documents nested deeper than ``MAX_JSON_DEPTH`` with
    ``TooDeep`` (a ``ValueError``, as malformed JSON's ``json.JSONDecodeError`` is)."""
    try:
        value = json.loads(text)
    except RecursionError:  # the parser itself gave up, far beyond the limit
        raise TooDeep(too_deep_message()) from None
    if nesting_depth(value) > MAX_JSON_DEPTH:
        raise TooDeep(too_deep_message())
    return value


class JSONDecoder(json.JSONDecoder):
    """For ``json.loads(text, cls=JSONDecoder)`` callers that take a decoder class (Django's
    ``forms.JSONField``): refuses what ``load_json`` refuses, as the ``json.JSONDecodeError``
    they expect for text that is not JSON."""

    def decode(self, s: str, *args: Any, **kwargs: Any) -> Any:
        try:
            value = super().decode(s, *args, **kwargs)
        except RecursionError:
            raise json.JSONDecodeError(too_deep_message(), s, 0) from None
        if nesting_depth(value) > MAX_JSON_DEPTH:
            raise json.JSONDecodeError(too_deep_message(), s, 0)
        return value


def too_deep_message(what: str = "the JSON", limit: int = MAX_JSON_DEPTH) -> str:
    return f"{what} nests more than {limit} levels of objects and arrays"


def too_large_message(size: int | None, limit: int) -> str:
    """Why a body of ``size`` bytes (None: not known before it was read) is refused."""
    found = f"is {size_text(size)}" if size is not None else "is too large"
    return (f"the request body {found}; a request body (a checkpoint export too) may be at "
            f"most {size_text(limit)}")


def size_text(size: int) -> str:
    """``20 MiB (20,971,520 bytes)``: a size as people read it, and exactly."""
    for unit, factor in (("MiB", 1024 * 1024), ("KiB", 1024)):
        if size >= factor:
            return f"{size / factor:.3g} {unit} ({size:,} bytes)"
    return f"{size:,} bytes"
