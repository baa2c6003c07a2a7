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
  the history; the bytes stored grow as ``n log n`` of what changed. Documents 1, 2, 4, 8...
  are stored against document 0, so they hold nearly the whole state: full snapshots at
  doubling intervals, paid for by the deltas between them being short.
- ``SkipDeltaWriter`` applies the schedule to the documents a storage saves, following each
  lineage by its tip; ``restore`` rebuilds the documents along a stored chain.

Values are JSON natives (what ``encoding.encode_value`` produces); nothing here executes or
imports anything named by the data. Deltas are JSON natives too:

- ``["r", value]``: replaced by ``value``;
- ``["a", items]``: a list with ``items`` appended;
- ``["o", {key: delta}, [removed keys]]``: an object with some keys changed, added or removed.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from functools import partial
from typing import Any

from .errors import WorkflowCheckpointError

_MISSING = object()


def diff(old: Any, new: Any) -> list:
    """The delta that turns ``old`` into ``new`` (both JSON natives; they may be equal)."""
    if type(old) is dict and type(new) is dict:
        missing = _MISSING
        changed = {}
        for key, value in new.items():
            before = old.get(key, missing)
            if before is missing:
                changed[key] = ["r", value]
            elif not (before == value and _same_types(before, value)):
                # Containers may change in part; anything else is replaced.
                changed[key] = (diff(before, value) if type(value) in _CONTAINER_TYPES
                                else ["r", value])
        return ["o", changed, [key for key in old if key not in new]]
    if (type(old) is list and type(new) is list and len(new) >= len(old)
            and new[:len(old)] == old and _same_types(old, new)):
        return ["a", new[len(old):]]
    return ["r", new]


def patch(old: Any, delta: Any) -> Any:
    """Apply ``delta`` (made by ``diff``) to ``old``; returns a new value and leaves ``old``
    unchanged. Raises ``WorkflowCheckpointError`` if the delta is malformed or does not fit."""
    return _apply(old, delta, {})


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


class ChainLink:
    """A stored document later ones may be stored against: its chain position, its key (a
    checkpoint id) and the whole document (JSON natives, never modified). A link made by
    ``restore`` may build its document only when ``record`` is first read."""

    __slots__ = ("position", "key", "_record", "_build")

    def __init__(self, position: int, key: str, record: Any = _MISSING,
                 build: Callable[[], Any] | None = None) -> None:
        if (record is _MISSING) == (build is None):
            raise ValueError("a chain link needs either its record or a way to build it")
        self.position, self.key, self._record, self._build = position, key, record, build

    @property
    def record(self) -> Any:
        if self._record is _MISSING:
            self._record, self._build = self._build(), None
        return self._record

    def __repr__(self) -> str:
        return f"ChainLink(position={self.position}, key={self.key!r})"


class SkipDeltaWriter:
    """Decides how each new document of a lineage is stored: whole, or as a delta against
    an earlier document of the same lineage chosen by the skip-delta schedule.

    A lineage is followed by its tip: a document whose parent is the tip of a known chain
    continues that chain; any other starts a new one (stored whole). For each tip the writer
    keeps the documents on the tip's skip path, exactly the bases later documents need (at
    most ``log2(n) + 1``), for the ``max_tips`` most recent tips.
    """

    def __init__(self, max_tips: int = 64) -> None:
        self.max_tips = max_tips
        self._tips: OrderedDict[str, list[ChainLink]] = OrderedDict()

    def store(self, key: str, parent: str | None, record: Any) -> tuple[ChainLink | None, int, Any]:
        """(base link or None, chain position, what to store: ``record`` itself when the base
        is None, else the delta from the base's record)."""
        links = self._tips.pop(parent, None) if parent is not None else None
        if links:
            position = links[-1].position + 1
            kept = [link for link in links if link.position <= skip_base(position)]
            base, stored = kept[-1], diff(kept[-1].record, record)
        else:
            position, kept, base, stored = 0, [], None, record
        self.remember([*kept, ChainLink(position, key, record)])
        return base, position, stored

    def remember(self, links: list[ChainLink]) -> None:
        """Make ``links`` (a skip path, oldest first, e.g. as a load read it) a tip that the
        next document of that lineage continues."""
        if not links:
            return
        self._tips.pop(links[-1].key, None)
        self._tips[links[-1].key] = list(links)
        while len(self._tips) > self.max_tips:
            self._tips.popitem(last=False)

    def forget(self, key: str) -> None:
        """Stop storing anything against ``key`` (it is being deleted or replaced)."""
        for tip in [tip for tip, links in self._tips.items()
                    if any(link.key == key for link in links)]:
            del self._tips[tip]


def restore(chain: list[tuple[str, int, bool, Any]]) -> list[ChainLink]:
    """The documents along a stored chain, given as ``(key, position, whole, stored)`` from
    the one stored whole to the one wanted (a skip path, as ``SkipDeltaWriter`` wrote it).
    Raises ``WorkflowCheckpointError`` naming the key whose delta does not fit.

    The wanted document is built at once; those before it, which only a writer continuing
    the chain may need, when first read. ``stored`` values become parts of the documents
    and must not be modified afterwards.
    """
    chain = list(chain)
    if not chain:
        return []
    links = [ChainLink(position, key, build=partial(_build, chain[:index + 1]))
             for index, (key, position, _whole, _stored) in enumerate(chain[:-1])]
    key, position, _whole, _stored = chain[-1]
    links.append(ChainLink(position, key, _build(chain)))  # a corrupt delta fails here
    return links


# --------------------------------------------------------------------------- internals


def _same_types(a: Any, b: Any) -> bool:
    """Whether ``a`` and ``b``, known to be ==, have the same JSON types throughout. Only
    numbers can hide a change (1, 1.0, True) behind ==; the checks run at C speed where a
    container holds no containers (a list of strings, the common growing state)."""
    kind = type(a)
    if kind is not type(b):
        return False
    if kind is list:
        kinds = set(map(type, a))
        if kinds <= _PLAIN:
            return True
        if not kinds & _CONTAINERS:
            return list(map(type, a)) == list(map(type, b))
        return all(map(_same_types, a, b))
    if kind is dict:
        kinds = set(map(type, a.values()))
        if kinds <= _PLAIN:
            return True
        return all(map(_same_types, a.values(), map(b.__getitem__, a)))
    return True


_PLAIN = {str, type(None)}
_CONTAINERS = {list, dict}
_CONTAINER_TYPES = (list, dict)


def _build(chain: list[tuple[str, int, bool, Any]]) -> Any:
    """The last document of ``chain`` (as given to ``restore``). Every delta is applied onto
    copies of just the containers it changes, made once per restore and then changed in
    place, so an item is copied once however many deltas append after it; applying them one
    by one with ``patch`` copies every list once per delta."""
    document: Any = None
    copies: dict[int, Any] = {}  # id -> container this build made (kept alive: ids stay unique)
    for key, _position, whole, stored in chain:
        if whole:
            document, copies = stored, {}
            continue
        try:
            document = _apply(document, stored, copies)
        except WorkflowCheckpointError as error:
            raise WorkflowCheckpointError(f"checkpoint {key} is corrupt: {error}") from None
    return document


def _apply(old: Any, delta: Any, copies: dict[int, Any]) -> Any:
    """``patch(old, delta)``, except that the containers in ``copies`` (made by earlier deltas
    of the same build) are changed in place. The containers it makes join ``copies``."""
    kind = delta[0] if type(delta) is list and delta else None
    if kind == "r" and len(delta) == 2:
        return delta[1]
    if kind == "a" and len(delta) == 2 and type(delta[1]) is list:
        if type(old) is not list:
            raise WorkflowCheckpointError(f"checkpoint delta does not fit: append to "
                                          f"{type(old).__name__}")
        if id(old) in copies:
            old.extend(delta[1])
            return old
        new = old + delta[1]
    elif kind == "o" and len(delta) == 3 and type(delta[1]) is dict and type(delta[2]) is list:
        if type(old) is not dict:
            raise WorkflowCheckpointError(f"checkpoint delta does not fit: object change to "
                                          f"{type(old).__name__}")
        changed = {key: _apply(old.get(key), change, copies) for key, change in delta[1].items()}
        new = old if id(old) in copies else dict(old)
        for key in delta[2]:
            new.pop(key, None)
        new.update(changed)
    else:
        raise WorkflowCheckpointError(f"malformed checkpoint delta: {_preview(delta)}")
    copies[id(new)] = new
    return new


def _preview(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
