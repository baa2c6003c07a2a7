"""Checkpoint storage: the protocol the runner writes through, and two implementations.

Every storage stores the encoded (JSON-native) form, so a checkpoint that saves is one that
loads anywhere the same types are registered, and a saved checkpoint is a snapshot: later
changes to the run's objects do not reach it. Loads return new objects the caller owns.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

from .checkpoints import WorkflowCheckpoint
from .deltas import ChainLink, SkipDeltaWriter, restore
from .errors import WorkflowCheckpointError

logger = logging.getLogger(__name__)


@runtime_checkable
class CheckpointStorage(Protocol):
    """Where a run's checkpoints go. All methods are coroutines.

    ``load`` raises ``WorkflowCheckpointError`` for a missing or unreadable checkpoint;
    ``get_latest`` returns the most recently saved checkpoint of a workflow, or None.
    """

    async def save(self, checkpoint: WorkflowCheckpoint) -> str: ...

    async def load(self, checkpoint_id: str) -> WorkflowCheckpoint: ...

    async def list_checkpoints(self, workflow_name: str | None = None) -> list[WorkflowCheckpoint]: ...

    async def list_checkpoint_ids(self, workflow_name: str | None = None) -> list[str]: ...

    async def get_latest(self, workflow_name: str | None = None) -> WorkflowCheckpoint | None: ...

    async def delete(self, checkpoint_id: str) -> bool: ...


@dataclass
class _Stored:
    """A checkpoint as the in-memory storage holds it: whole (``base`` None) or as a delta
    against the checkpoint ``base`` of the same lineage."""

    workflow_name: str
    base: str | None
    position: int
    data: Any


class InMemoryCheckpointStorage:
    """Keeps encoded checkpoints in a dict, in save order. For tests and short-lived runs.

    Like the other storages, each checkpoint after the first of its lineage is kept as a
    skip-delta against an earlier one (``deltas.py``): memory grows with what changed, and a
    load applies at most ``log2(n) + 1`` deltas. Deleting or saving again a checkpoint that
    others are stored against first stores those others whole.
    """

    def __init__(self) -> None:
        self._stored: dict[str, _Stored] = {}
        self._latest: dict[str, str] = {}
        self._dependents: dict[str, set[str]] = {}  # id -> ids stored against it
        self._writer = SkipDeltaWriter()

    async def save(self, checkpoint: WorkflowCheckpoint) -> str:
        document = checkpoint.to_dict()  # encode first: a failed encode stores nothing
        cid = checkpoint.checkpoint_id
        if cid in self._stored:
            self._remove(cid)  # re-saving moves it to the end of save order
        # Never against a removed checkpoint: _remove makes the writer forget it.
        base, position, data = self._writer.store(cid, checkpoint.previous_checkpoint_id,
                                                  document)
        self._stored[cid] = _Stored(checkpoint.workflow_name, base and base.key, position, data)
        if base is not None:
            self._dependents.setdefault(base.key, set()).add(cid)
        self._latest[checkpoint.workflow_name] = cid
        return cid

    def _links(self, checkpoint_id: str) -> list[ChainLink]:
        chain, cid = [], checkpoint_id
        while cid is not None:
            stored = self._stored[cid]
            chain.append((cid, stored.position, stored.base is None, stored.data))
            cid = stored.base
        return restore(chain[::-1])

    async def load(self, checkpoint_id: str) -> WorkflowCheckpoint:
        if checkpoint_id not in self._stored:
            raise WorkflowCheckpointError(f"checkpoint {checkpoint_id!r} not found")
        links = self._links(checkpoint_id)
        self._writer.remember(links)  # a run resumed from here goes on with deltas
        return WorkflowCheckpoint.from_dict(links[-1].record)

    def stored_size(self, checkpoint_id: str) -> int:
        """Bytes of JSON this storage keeps for the checkpoint (whole, or its delta)."""
        return len(json.dumps(self._stored[checkpoint_id].data, separators=(",", ":")))

    async def list_checkpoint_ids(self, workflow_name: str | None = None) -> list[str]:
        return [cid for cid, stored in self._stored.items()
                if workflow_name is None or stored.workflow_name == workflow_name]

    async def list_checkpoints(self, workflow_name: str | None = None) -> list[WorkflowCheckpoint]:
        return [WorkflowCheckpoint.from_dict(self._links(cid)[-1].record)
                for cid in await self.list_checkpoint_ids(workflow_name)]

    async def get_latest(self, workflow_name: str | None = None) -> WorkflowCheckpoint | None:
        if workflow_name is None:
            cid = next(reversed(self._stored), None)
        else:
            cid = self._latest.get(workflow_name)
        return None if cid is None else await self.load(cid)

    async def delete(self, checkpoint_id: str) -> bool:
        if checkpoint_id not in self._stored:
            return False
        name = self._stored[checkpoint_id].workflow_name
        self._remove(checkpoint_id)
        if self._latest.get(name) == checkpoint_id:
            remaining = [cid for cid, s in self._stored.items() if s.workflow_name == name]
            if remaining:
                self._latest[name] = remaining[-1]
            else:
                del self._latest[name]
        return True

    def _remove(self, checkpoint_id: str) -> None:
        """Drop a checkpoint, first storing whole the ones stored against it."""
        for dependent in self._dependents.pop(checkpoint_id, set()):
            stored = self._stored[dependent]
            self._stored[dependent] = _Stored(stored.workflow_name, None, 0,
                                              self._links(dependent)[-1].record)
        # the dependents' records are needed above, so only now
        removed = self._stored.pop(checkpoint_id)
        if removed.base is not None:
            self._dependents.get(removed.base, set()).discard(checkpoint_id)
        self._writer.forget(checkpoint_id)


_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


class FileCheckpointStorage:
    """One JSON file per checkpoint in ``path``, written atomically (temp file, fsync,
    rename), so a crash leaves either the old state or the whole new checkpoint.

    The first checkpoint of a lineage saved here is a file holding the checkpoint document;
    later ones hold a skip-delta against an earlier file of the lineage (``{"delta_of": id,
    "position": n, "checkpoint_id": ..., "delta": ...}``, see ``deltas.py``), so the folder
    grows with what changed and a load reads at most ``log2(n) + 1`` files. Deleting (or
    saving again) a checkpoint others are stored against first rewrites those others whole.

    ``get_latest`` reads the tail of a small per-workflow log of saved ids (one line appended
    per save: no temp file and no rename, far cheaper than rewriting a pointer file) instead
    of decoding the folder; it scans the folder only when the log names no loadable
    checkpoint of that workflow. Corrupt files are skipped with a warning when listing and
    raise ``WorkflowCheckpointError`` on load.
    """

    _LOG_TAIL = 8192  # bytes of the id log get_latest reads (about 220 ids)

    def __init__(self, path: str | os.PathLike, *, fsync: bool = True) -> None:
        self.path = Path(path)
        self.fsync = fsync
        self.path.mkdir(parents=True, exist_ok=True)
        self._pointers = self.path / ".latest"
        self._pointers.mkdir(exist_ok=True)
        self._writer = SkipDeltaWriter()

    # -- paths ------------------------------------------------------------------------
    def _file(self, checkpoint_id: str) -> Path:
        if not isinstance(checkpoint_id, str) or not _SAFE_ID.match(checkpoint_id) \
                or ".." in checkpoint_id:
            raise WorkflowCheckpointError(
                f"invalid checkpoint id {checkpoint_id!r}: use letters, digits, '.', '_' and '-'")
        return self.path / f"{checkpoint_id}.json"

    def _pointer(self, workflow_name: str) -> Path:
        return self._pointers / hashlib.sha256(workflow_name.encode()).hexdigest()[:40]

    def _write_atomically(self, target: Path, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                if self.fsync:
                    handle.flush()
                    os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise

    # -- protocol -----------------------------------------------------------------------
    async def save(self, checkpoint: WorkflowCheckpoint) -> str:
        cid = checkpoint.checkpoint_id
        target = self._file(cid)
        document = checkpoint.to_dict()  # encode first: a failed encode stores nothing
        if target.exists():  # saved again: whatever is stored against it must not change
            self._write_dependents_whole(cid)
            self._writer.forget(cid)
        base, position, data = self._writer.store(cid, checkpoint.previous_checkpoint_id,
                                                  document)
        if base is not None and self._file(base.key).exists():
            data = {"delta_of": base.key, "position": position, "checkpoint_id": cid,
                    "delta": data}
        elif base is not None:  # the base was deleted behind our back: start again
            data = document
            self._writer.remember([ChainLink(0, cid, document)])
        self._write_json(target, data)
        # Logged after the checkpoint is in place: the log's last id is the newest completed save.
        self._log_saved(checkpoint.workflow_name, cid)
        return cid

    def _write_json(self, target: Path, data: Any) -> None:
        # ASCII escapes keep every str storable, lone surrogates included (UTF-8 has no
        # bytes for those), so a checkpoint that saves in memory saves on disk too.
        self._write_atomically(target, json.dumps(data, separators=(",", ":")).encode("ascii"))

    def _log_saved(self, workflow_name: str, checkpoint_id: str) -> None:
        # One short O_APPEND write is atomic, so concurrent savers never interleave.
        fd = os.open(self._pointer(workflow_name), os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)
        try:
            os.write(fd, checkpoint_id.encode() + b"\n")
        finally:
            os.close(fd)

    def _logged_ids(self, workflow_name: str) -> list[str]:
        """Ids from the tail of the workflow's save log, newest first ([] when it has none)."""
        try:
            with open(self._pointer(workflow_name), "rb") as handle:
                size = handle.seek(0, os.SEEK_END)
                handle.seek(max(0, size - self._LOG_TAIL))
                lines = handle.read().split(b"\n")
        except OSError:
            return []
        if size > self._LOG_TAIL:
            lines = lines[1:]  # the first line read may be cut
        return [line.decode("utf-8", "replace").strip() for line in reversed(lines) if line.strip()]

    def _parse(self, path: Path) -> Any:
        try:
            return json.loads(path.read_bytes())
        except FileNotFoundError:
            raise WorkflowCheckpointError(f"checkpoint {path.stem!r} not found") from None
        except (ValueError, OSError) as error:
            raise WorkflowCheckpointError(
                f"checkpoint file {path.name} is corrupt: {error}") from None

    def _links(self, path: Path, memo: dict[str, ChainLink] | None = None) -> list[ChainLink]:
        """The records along the skip path of the checkpoint in ``path``, oldest first.
        ``memo`` (id -> link) spares files already read by an earlier call."""
        chain: list[tuple[str, int, bool, Any]] = []
        known: list[ChainLink] = []
        current: Path | None = path
        while current is not None:
            if memo is not None and current.stem in memo:
                known = [memo[current.stem]]
                break
            if current != path and not current.exists():
                raise WorkflowCheckpointError(f"checkpoint file {path.name} cannot be read: "
                                              f"its base {current.stem!r} is missing")
            data = self._parse(current)
            if isinstance(data, dict) and "delta_of" in data:
                base = data.get("delta_of")
                if not isinstance(base, str) or not isinstance(data.get("position"), int):
                    raise WorkflowCheckpointError(f"checkpoint file {current.name} is corrupt: "
                                                  f"malformed delta header")
                chain.append((current.stem, data["position"], False, data.get("delta")))
                try:
                    current = self._file(base)
                except WorkflowCheckpointError:
                    raise WorkflowCheckpointError(f"checkpoint file {current.name} is corrupt: "
                                                  f"its base {base!r} is not an id") from None
            else:
                chain.append((current.stem, 0, True, data))
                current = None
        if known:  # continue from a record read before: its delta applies on top of it
            chain.append((known[0].key, known[0].position, True, known[0].record))
        try:
            links = restore(chain[::-1])
        except WorkflowCheckpointError as error:
            raise WorkflowCheckpointError(f"checkpoint file {path.name}: {error}") from None
        if memo is not None:
            memo.update((link.key, link) for link in links)
        return links

    def _read(self, path: Path, memo: dict[str, ChainLink] | None = None) -> WorkflowCheckpoint:
        links = self._links(path, memo)
        checkpoint = WorkflowCheckpoint.from_dict(links[-1].record)
        if checkpoint.checkpoint_id != path.stem:
            raise WorkflowCheckpointError(
                f"checkpoint file {path.name} holds checkpoint {checkpoint.checkpoint_id!r}")
        self._writer.remember(links)  # a run resumed from here goes on with deltas
        return checkpoint

    async def load(self, checkpoint_id: str) -> WorkflowCheckpoint:
        return self._read(self._file(checkpoint_id))

    def stored_size(self, checkpoint_id: str) -> int:
        """Bytes of the checkpoint's file (its document, or its delta)."""
        return self._file(checkpoint_id).stat().st_size

    def _write_dependents_whole(self, checkpoint_id: str) -> None:
        """Rewrite whole every file stored as a delta against ``checkpoint_id``."""
        marker = f'"delta_of":{json.dumps(checkpoint_id)}'.encode("ascii")
        for path in self._files():
            try:
                if marker not in path.read_bytes():
                    continue
                document = self._links(path)[-1].record
            except (OSError, WorkflowCheckpointError):
                continue  # unreadable already; nothing to keep
            self._write_json(path, document)
            self._writer.forget(path.stem)

    def _files(self) -> list[Path]:
        return [Path(entry.path) for entry in os.scandir(self.path)
                if entry.is_file() and entry.name.endswith(".json")
                and not entry.name.startswith(".")]

    def _readable(self) -> list[WorkflowCheckpoint]:
        checkpoints, memo = [], {}
        for path in self._files():
            try:
                checkpoints.append(self._read(path, memo))
            except WorkflowCheckpointError as error:
                logger.warning("skipping unreadable checkpoint file %s: %s", path, error)
        checkpoints.sort(key=lambda c: (c.timestamp, c.superstep))
        return checkpoints

    async def list_checkpoints(self, workflow_name: str | None = None) -> list[WorkflowCheckpoint]:
        return [c for c in self._readable() if workflow_name is None or c.workflow_name == workflow_name]

    async def list_checkpoint_ids(self, workflow_name: str | None = None) -> list[str]:
        return [c.checkpoint_id for c in await self.list_checkpoints(workflow_name)]

    async def get_latest(self, workflow_name: str | None = None) -> WorkflowCheckpoint | None:
        if workflow_name is not None:
            for cid in self._logged_ids(workflow_name):
                try:
                    checkpoint = await self.load(cid)
                except WorkflowCheckpointError:
                    continue  # deleted since, corrupt, or a torn line: try the one before
                if checkpoint.workflow_name == workflow_name:
                    return checkpoint
        else:
            # Newest file first, by modification time: decode only until one reads.
            for path in sorted(self._files(), key=lambda p: p.stat().st_mtime_ns, reverse=True):
                try:
                    return self._read(path)
                except (OSError, WorkflowCheckpointError) as error:
                    logger.warning("skipping unreadable checkpoint file %s: %s", path, error)
            return None
        candidates = await self.list_checkpoints(workflow_name)
        if candidates:  # log it again, so the next call is cheap again
            self._log_saved(workflow_name, candidates[-1].checkpoint_id)
        return candidates[-1] if candidates else None

    async def delete(self, checkpoint_id: str) -> bool:
        target = self._file(checkpoint_id)
        if not target.exists():
            return False
        self._write_dependents_whole(checkpoint_id)
        self._writer.forget(checkpoint_id)
        try:
            target.unlink()
        except FileNotFoundError:
            return False
        return True
