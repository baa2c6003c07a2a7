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
from pathlib import Path
from typing import Protocol, runtime_checkable

from .checkpoints import WorkflowCheckpoint
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


class InMemoryCheckpointStorage:
    """Keeps encoded checkpoints in a dict, in save order. For tests and short-lived runs."""

    def __init__(self) -> None:
        self._documents: dict[str, dict] = {}
        self._workflow_of: dict[str, str] = {}
        self._latest: dict[str, str] = {}

    async def save(self, checkpoint: WorkflowCheckpoint) -> str:
        document = checkpoint.to_dict()  # encode first: a failed encode stores nothing
        cid = checkpoint.checkpoint_id
        self._documents.pop(cid, None)  # re-saving moves it to the end of save order
        self._documents[cid] = document
        self._workflow_of[cid] = checkpoint.workflow_name
        self._latest[checkpoint.workflow_name] = cid
        return cid

    async def load(self, checkpoint_id: str) -> WorkflowCheckpoint:
        document = self._documents.get(checkpoint_id)
        if document is None:
            raise WorkflowCheckpointError(f"checkpoint {checkpoint_id!r} not found")
        return WorkflowCheckpoint.from_dict(document)

    async def list_checkpoint_ids(self, workflow_name: str | None = None) -> list[str]:
        return [cid for cid in self._documents
                if workflow_name is None or self._workflow_of[cid] == workflow_name]

    async def list_checkpoints(self, workflow_name: str | None = None) -> list[WorkflowCheckpoint]:
        return [WorkflowCheckpoint.from_dict(self._documents[cid])
                for cid in await self.list_checkpoint_ids(workflow_name)]

    async def get_latest(self, workflow_name: str | None = None) -> WorkflowCheckpoint | None:
        if workflow_name is None:
            cid = next(reversed(self._documents), None)
        else:
            cid = self._latest.get(workflow_name)
        return None if cid is None else await self.load(cid)

    async def delete(self, checkpoint_id: str) -> bool:
        if self._documents.pop(checkpoint_id, None) is None:
            return False
        name = self._workflow_of.pop(checkpoint_id)
        if self._latest.get(name) == checkpoint_id:
            remaining = [cid for cid, wf in self._workflow_of.items() if wf == name]
            if remaining:
                self._latest[name] = remaining[-1]
            else:
                del self._latest[name]
        return True


_SAFE_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,199}$")


class FileCheckpointStorage:
    """One JSON file per checkpoint in ``path``, written atomically (temp file, fsync,
    rename), so a crash leaves either the old state or the whole new checkpoint.

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
        target = self._file(checkpoint.checkpoint_id)
        # ASCII escapes keep every str storable, lone surrogates included (UTF-8 has no
        # bytes for those), so a checkpoint that saves in memory saves on disk too.
        data = json.dumps(checkpoint.to_dict(), separators=(",", ":")).encode("ascii")
        self._write_atomically(target, data)
        # Logged after the checkpoint is in place: the log's last id is the newest completed save.
        self._log_saved(checkpoint.workflow_name, checkpoint.checkpoint_id)
        return checkpoint.checkpoint_id

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

    def _read(self, path: Path) -> WorkflowCheckpoint:
        try:
            document = json.loads(path.read_bytes())
        except FileNotFoundError:
            raise WorkflowCheckpointError(f"checkpoint {path.stem!r} not found") from None
        except (ValueError, OSError) as error:
            raise WorkflowCheckpointError(
                f"checkpoint file {path.name} is corrupt: {error}") from None
        checkpoint = WorkflowCheckpoint.from_dict(document)
        if checkpoint.checkpoint_id != path.stem:
            raise WorkflowCheckpointError(
                f"checkpoint file {path.name} holds checkpoint {checkpoint.checkpoint_id!r}")
        return checkpoint

    async def load(self, checkpoint_id: str) -> WorkflowCheckpoint:
        return self._read(self._file(checkpoint_id))

    def _files(self) -> list[Path]:
        return [Path(entry.path) for entry in os.scandir(self.path)
                if entry.is_file() and entry.name.endswith(".json")
                and not entry.name.startswith(".")]

    def _readable(self) -> list[WorkflowCheckpoint]:
        checkpoints = []
        for path in self._files():
            try:
                checkpoints.append(self._read(path))
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
        try:
            self._file(checkpoint_id).unlink()
        except FileNotFoundError:
            return False
        return True
