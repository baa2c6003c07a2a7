"""Shared state: a key/value store every executor of a run can read and write.

Writes made during a superstep are staged: visible to later reads at once, committed at the
superstep boundary, and discarded if the superstep fails.
"""

from __future__ import annotations

from typing import Any

_DELETED = object()


class SharedState:
    def __init__(self, committed: dict[str, Any] | None = None) -> None:
        self.committed: dict[str, Any] = dict(committed or {})
        self._staged: dict[str, Any] = {}

    def get(self, key: str, default: Any = None) -> Any:
        if key in self._staged:
            value = self._staged[key]
            return default if value is _DELETED else value
        return self.committed.get(key, default)

    def set(self, key: str, value: Any) -> None:
        if not isinstance(key, str):
            raise TypeError(f"shared state keys must be strings, got {key!r}")
        self._staged[key] = value

    def delete(self, key: str) -> None:
        self._staged[key] = _DELETED

    def commit(self) -> None:
        for key, value in self._staged.items():
            if value is _DELETED:
                self.committed.pop(key, None)
            else:
                self.committed[key] = value
        self._staged.clear()

    def discard(self) -> None:
        self._staged.clear()
