"""Engine checkpoints written as ``Checkpoint`` rows, each holding only what changed.

A row stores its run's *record* at that checkpoint: ``{"checkpoint": <the engine's
checkpoint document>, "outputs": <the run's encoded outputs so far>}``, as compact,
compressed JSON (``row_bytes``). The first row a writer saves holds the record whole; each
later one holds a delta (``engine.deltas``) against an earlier row of the same run, its
``base``, chosen by the skip-delta schedule. So the bytes a run stores grow with what
changed, and reading any row applies at most ``log2(position) + 1`` deltas, fetched in one
query, however long the history (``Checkpoint.objects.read_chain``). ``base`` is a RESTRICT
foreign key: a row others are stored against cannot be deleted on its own.

``CheckpointWriter`` turns a run's successive checkpoints into rows.
``DatabaseCheckpointStorage`` implements the engine's ``CheckpointStorage`` protocol over
the database, for any code that drives a workflow itself. Runs executed by workers write
through the worker's ``RunRecordStorage`` instead, which commits the checkpoint, its events
and the run's progress in one transaction.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.db import IntegrityError, transaction
from django.db.models import RestrictedError, Sum

from .engine import WorkflowCheckpoint, WorkflowCheckpointError
from .engine.deltas import ChainLink, SkipDeltaWriter
from .fast_sql import insert_rows, update_where
from .models import Checkpoint, Run
from .row_bytes import encode, pack


class CheckpointWriter:
    """Rows for one run's successive checkpoints: the first whole, then skip-deltas
    (``engine.deltas.SkipDeltaWriter`` keeps the records later rows are stored against).
    ``continue_from`` picks up the chain a restore read, so a run resumed by a new task goes
    on storing deltas."""

    def __init__(self, run_id: Any, branch: int = 0) -> None:
        self.run_id = run_id
        self.branch = branch  # the run's branch (``RunBranch``) the rows are written on
        self.deltas = SkipDeltaWriter()

    def continue_from(self, run_id: Any, links: list[ChainLink]) -> None:
        """Store the next rows against ``links`` (from ``Checkpoint.objects.read_chain``) if
        they are this run's own; another run's rows are never a base, so each run can be
        pruned on its own."""
        if run_id == Run._meta.pk.to_python(self.run_id):
            self.deltas.remember(links)

    def row(self, checkpoint: WorkflowCheckpoint, outputs: list[Any]) -> Checkpoint:
        """The (unsaved) row for ``checkpoint``, the run's encoded ``outputs`` so far with it.
        Encoding happens here: an unencodable value raises before anything is stored."""
        record = {"checkpoint": checkpoint.to_dict(), "outputs": list(outputs)}
        base, position, stored = self.deltas.store(
            checkpoint.checkpoint_id, checkpoint.previous_checkpoint_id, record)
        return _row(checkpoint, self.run_id, self.branch, stored, base, position)


def _row(checkpoint: WorkflowCheckpoint, run_id: Any, branch: int, stored: Any,
         base: ChainLink | None, position: int) -> Checkpoint:
    encoded = encode(stored)
    data = pack(encoded)
    return Checkpoint(
        checkpoint_id=checkpoint.checkpoint_id,
        run_id=run_id,
        workflow_name=checkpoint.workflow_name,
        superstep=checkpoint.superstep,
        branch=branch,
        kind=checkpoint.metadata.get("kind", "superstep"),
        previous_id=checkpoint.previous_checkpoint_id,
        graph_signature_hash=checkpoint.graph_signature_hash,
        base_id=base.key if base else None,
        chain_position=position,
        document=data,
        size_bytes=len(data),
        json_bytes=len(encoded),
        content_hash=hashlib.sha256(data).hexdigest(),
        pending_request_count=len(checkpoint.pending_requests),
        created_at=datetime.fromisoformat(checkpoint.timestamp),
    )


def load_checkpoint(checkpoint_id: str) -> WorkflowCheckpoint:
    """The stored checkpoint; a corrupt row raises ``WorkflowCheckpointError`` naming it."""
    return WorkflowCheckpoint.from_dict(
        Checkpoint.objects.read_record(checkpoint_id)["checkpoint"])


def bytes_stored(run: Run) -> int:
    """Bytes the database holds for ``run``'s checkpoints."""
    return Checkpoint.objects.filter(run=run).aggregate(total=Sum("size_bytes"))["total"] or 0


class DatabaseCheckpointStorage:
    """Checkpoints of one run, as rows. Rows are immutable: saving an id twice fails."""

    def __init__(self, run: Run) -> None:
        self.run_id = run.pk
        self.writer = CheckpointWriter(run.pk, run.branch)

    def _save(self, checkpoint: WorkflowCheckpoint) -> str:
        row = self.writer.row(checkpoint, [])
        try:
            with transaction.atomic():  # the row and the run's head, together
                insert_rows(Checkpoint, [row])
                update_where(Run, {"id": self.run_id},
                             {"head_checkpoint": row.pk, "current_superstep": row.superstep})
        except IntegrityError:
            self.writer.deltas.forget(row.pk)  # that row is not there to be a base
            if Checkpoint.objects.filter(pk=row.pk).exists():
                raise WorkflowCheckpointError(f"checkpoint {row.pk} already exists") from None
            raise
        return row.pk

    async def save(self, checkpoint: WorkflowCheckpoint) -> str:
        return await sync_to_async(self._save)(checkpoint)

    def _load(self, checkpoint_id: str) -> WorkflowCheckpoint:
        run_id, links = Checkpoint.objects.read_chain(checkpoint_id)
        self.writer.continue_from(run_id, links)  # a run resumed here goes on with deltas
        return WorkflowCheckpoint.from_dict(links[-1].record["checkpoint"])

    async def load(self, checkpoint_id: str) -> WorkflowCheckpoint:
        return await sync_to_async(self._load)(checkpoint_id)

    def _ids(self, workflow_name: str | None):
        """This run's checkpoint ids in save order (ids only: ``load_checkpoint`` reads rows)."""
        rows = Checkpoint.objects.filter(run_id=self.run_id)
        if workflow_name is not None:
            rows = rows.filter(workflow_name=workflow_name)
        return rows.order_by("created_at").values_list("pk", flat=True)

    async def list_checkpoints(self, workflow_name: str | None = None) -> list[WorkflowCheckpoint]:
        return await sync_to_async(lambda: [load_checkpoint(checkpoint_id)
                                            for checkpoint_id in self._ids(workflow_name)])()

    async def list_checkpoint_ids(self, workflow_name: str | None = None) -> list[str]:
        return await sync_to_async(lambda: list(self._ids(workflow_name)))()

    async def get_latest(self, workflow_name: str | None = None) -> WorkflowCheckpoint | None:
        def latest():
            checkpoint_id = self._ids(workflow_name).last()
            return None if checkpoint_id is None else load_checkpoint(checkpoint_id)
        return await sync_to_async(latest)()

    async def delete(self, checkpoint_id: str) -> bool:
        """Delete one checkpoint; refused (``WorkflowCheckpointError``) for a row that later
        rows are stored against. ``services.prune_checkpoints`` prunes whole runs safely."""
        def delete():
            try:
                deleted, _ = Checkpoint.objects.filter(pk=checkpoint_id).delete()
            except RestrictedError:
                raise WorkflowCheckpointError(
                    f"checkpoint {checkpoint_id} cannot be deleted: later checkpoints are "
                    f"stored as deltas against it") from None
            return bool(deleted)
        return await sync_to_async(delete)()
