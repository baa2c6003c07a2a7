"""What changed between two checkpoints: executor states, shared state, pending messages and
requests, as a flat list of changes with JSON paths (for the admin, dashboard and API)."""

from __future__ import annotations

from typing import Any

SECTIONS = ("executor_states", "shared_state", "pending_requests", "fan_in_buffers", "messages")


def diff_documents(before: dict[str, Any] | None, after: dict[str, Any]) -> list[dict[str, Any]]:
    """Changes from ``before`` to ``after`` (encoded checkpoint documents); with no
    ``before``, everything in ``after`` is "added"."""
    changes: list[dict[str, Any]] = []
    for section in SECTIONS:
        _diff(section, (before or {}).get(section, _MISSING), after.get(section, _MISSING), changes)
    if before is not None and before.get("superstep") != after.get("superstep"):
        changes.insert(0, {"path": "superstep", "change": "changed",
                           "before": before.get("superstep"), "after": after.get("superstep")})
    return changes


_MISSING = object()


def _diff(path: str, old: Any, new: Any, out: list[dict[str, Any]]) -> None:
    if old is _MISSING and new is _MISSING:
        return
    if old is _MISSING:
        out.append({"path": path, "change": "added", "after": new})
    elif new is _MISSING:
        out.append({"path": path, "change": "removed", "before": old})
    elif isinstance(old, dict) and isinstance(new, dict) and "__type__" not in new:
        for key in list(old) + [k for k in new if k not in old]:
            _diff(f"{path}.{key}", old.get(key, _MISSING), new.get(key, _MISSING), out)
    elif isinstance(old, list) and isinstance(new, list) and old != new \
            and len(new) >= len(old) and new[:len(old)] == old:
        out.append({"path": path, "change": "appended", "after": new[len(old):]})
    elif old != new:
        out.append({"path": path, "change": "changed", "before": old, "after": new})
