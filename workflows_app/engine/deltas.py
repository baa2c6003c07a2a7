"""Deltas between JSON documents, and the skip-delta schedule that keeps restores short.

A checkpoint differs from its parent in little: a few scalars, the messages in flight, and
state that mostly grows by appending. Storing each checkpoint whole makes the bytes of a run
grow with the square of its length when its state grows every superstep; storing it as a
delta against its parent makes a restore walk the whole history. Storages that care use both
functions below instead:

- ``diff(old, new)`` is a delta that ``patch(old, delta)`` turns back into ``new``. It
  recurses into objects key by key and records a list that only grew as the items appended,
  so its size follows what changed, not the size of the document.
- Skip-deltas (as in Subversion's FSFS): the ``n``-th document of a chain (0 is stored whole)
  is stored as a delta against document ``skip_base(n)``, which is ``n`` with its lowest set
  bit cleared. Restoring document ``n`` applies at most ``log2(n) + 1`` deltas, however long
  the history; the bytes stored grow as ``n log n`` of what changed.

Values are JSON natives (what ``encoding.encode_value`` produces); nothing here executes or
imports anything named by the data. Deltas are JSON natives too:

- ``["r", value]``: replaced by ``value``;
- ``["a", items]``: a list with ``items`` appended;
- ``["o", {key: delta}, [removed keys]]``: an object with some keys changed, added or removed.
"""

from __future__ import annotations

from typing import Any

from .errors import WorkflowCheckpointError


def diff(old: Any, new: Any) -> list:
    """The delta that turns ``old`` into ``new`` (both JSON natives; they may be equal)."""
    if type(old) is dict and type(new) is dict:
        changed = {key: diff(old[key], value) if key in old else ["r", value]
                   for key, value in new.items()
                   if key not in old or not _same(old[key], value)}
        return ["o", changed, [key for key in old if key not in new]]
    if (type(old) is list and type(new) is list and len(new) >= len(old)
            and new[:len(old)] == old and _same_types(old, new)):
        return ["a", new[len(old):]]
    return ["r", new]


def patch(old: Any, delta: Any) -> Any:
    """Apply ``delta`` (made by ``diff``) to ``old``; returns a new value and leaves ``old``
    unchanged. Raises ``WorkflowCheckpointError`` if the delta is malformed or does not fit."""
    if type(delta) is not list or not delta or delta[0] not in _PATCHERS:
        raise WorkflowCheckpointError(f"malformed checkpoint delta: {_preview(delta)}")
    return _PATCHERS[delta[0]](old, delta)


def skip_base(n: int) -> int:
    """The chain position document ``n`` (> 0) is stored against: ``n`` with its lowest set
    bit cleared (7 -> 6 -> 4 -> 0)."""
    if n <= 0:
        raise ValueError(f"chain position must be positive, got {n}")
    return n & (n - 1)


def skip_path(n: int) -> list[int]:
    """Positions whose documents restoring ``n`` needs, from ``n`` down to 0."""
    path = [n]
    while n:
        n &= n - 1
        path.append(n)
    return path


# --------------------------------------------------------------------------- internals
def _same(a: Any, b: Any) -> bool:
    # JSON equality: 1 == 1.0 == True in Python, and must not hide a change of type.
    return a == b and _same_types(a, b)


def _same_types(a: Any, b: Any) -> bool:
    if type(a) is not type(b):
        return False
    if type(a) is list:
        # Only numbers (and containers of them) can hide an int/float/bool change behind
        # ==; a list of strings, the common growing state, needs no walk (set(map) is C).
        if set(map(type, a)) <= _PLAIN:
            return True
        return all(_same_types(x, y) for x, y in zip(a, b))
    if type(a) is dict:
        return all(_same_types(value, b[key]) for key, value in a.items() if key in b)
    return True


_PLAIN = {str, type(None)}


def _patch_replace(old: Any, delta: list) -> Any:
    if len(delta) != 2:
        raise WorkflowCheckpointError(f"malformed checkpoint delta: {_preview(delta)}")
    return delta[1]


def _patch_append(old: Any, delta: list) -> Any:
    if len(delta) != 2 or type(old) is not list or type(delta[1]) is not list:
        raise WorkflowCheckpointError(f"checkpoint delta does not fit: append to "
                                      f"{type(old).__name__}")
    return old + delta[1]


def _patch_object(old: Any, delta: list) -> Any:
    if (len(delta) != 3 or type(old) is not dict or type(delta[1]) is not dict
            or type(delta[2]) is not list):
        raise WorkflowCheckpointError(f"checkpoint delta does not fit: object change to "
                                      f"{type(old).__name__}")
    new = dict(old)
    for key in delta[2]:
        new.pop(key, None)
    for key, change in delta[1].items():
        new[key] = patch(old.get(key), change)
    return new


_PATCHERS = {"r": _patch_replace, "a": _patch_append, "o": _patch_object}


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
