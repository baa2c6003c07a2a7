"""Engine checkpoints stored as ``Checkpoint`` rows.

``DatabaseCheckpointStorage`` implements the engine's ``CheckpointStorage`` protocol over the
database, for any code that drives a workflow itself. Runs executed by workers write through
``execution.RunRecorder`` instead, which saves the checkpoint, the events and the run's
progress in one transaction.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.db import connections, router, transaction

from .engine import WorkflowCheckpoint, WorkflowCheckpointError
from .models import Checkpoint, Run


def checkpoint_row(checkpoint: WorkflowCheckpoint, run_id, document: str | None = None) -> Checkpoint:
    """The (unsaved) row for ``checkpoint``; ``document`` is its JSON if already encoded."""
    if document is None:
        document = dump_checkpoint(checkpoint)
    encoded = document.encode("ascii")
    stored = zlib.compress(encoded, 1)  # level 1: most of the gain for a fraction of the time
    return Checkpoint(
        checkpoint_id=checkpoint.checkpoint_id,
        run_id=run_id,
        workflow_name=checkpoint.workflow_name,
        superstep=checkpoint.superstep,
        kind=checkpoint.metadata.get("kind", "superstep"),
        previous_id=checkpoint.previous_checkpoint_id,
        graph_signature_hash=checkpoint.graph_signature_hash,
        document=stored,
        size_bytes=len(stored),
        json_bytes=len(encoded),
        content_hash=hashlib.sha256(stored).hexdigest(),
        pending_request_count=len(checkpoint.pending_requests),
        created_at=datetime.fromisoformat(checkpoint.timestamp),
    )


_INSERT_SQL: dict[tuple, tuple[str, list]] = {}


def insert_rows(model: type, objects: list) -> None:
    """INSERT rows (model instances, or dicts of attribute values with every column) with
    one prepared statement (no signals, no returned ids).

    The worker saves a checkpoint and its events every superstep; Django's ``bulk_create``
    spends several times longer building the statement than the database takes to run it.
    Values go through each field's ``get_db_prep_save``, as ``bulk_create`` does.
    """
    if not objects:
        return
    connection = connections[router.db_for_write(model)]
    key = (model, connection.alias)
    if key not in _INSERT_SQL:
        fields = [f for f in model._meta.concrete_fields
                  if not (f.primary_key and f.get_internal_type().endswith("AutoField"))]
        quote = connection.ops.quote_name
        sql = (f"INSERT INTO {quote(model._meta.db_table)} "
               f"({', '.join(quote(f.column) for f in fields)}) "
               f"VALUES ({', '.join(['%s'] * len(fields))})")
        _INSERT_SQL[key] = (sql, fields)
    sql, fields = _INSERT_SQL[key]
    if isinstance(objects[0], dict):
        rows = [tuple(f.get_db_prep_save(obj[f.attname], connection) for f in fields)
                for obj in objects]
    else:
        rows = [tuple(f.get_db_prep_save(getattr(obj, f.attname), connection) for f in fields)
                for obj in objects]
    with connection.cursor() as cursor:
        cursor.executemany(sql, rows)


_UPDATE_SQL: dict[tuple, str] = {}


def update_where(model: type, where: dict[str, Any], values: dict[str, Any]) -> int:
    """``UPDATE model SET values WHERE where`` (all equalities, by attribute name) with a
    cached statement; returns the number of rows changed. The hot-path twin of
    ``QuerySet.filter(**where).update(**values)``, whose query building costs more than the
    update itself."""
    connection = connections[router.db_for_write(model)]
    key = (model, connection.alias, tuple(values), tuple(where))
    meta = model._meta
    if key not in _UPDATE_SQL:
        quote = connection.ops.quote_name
        assignments = ", ".join(f"{quote(meta.get_field(name).column)} = %s" for name in values)
        conditions = " AND ".join(f"{quote(meta.get_field(name).column)} = %s" for name in where)
        _UPDATE_SQL[key] = f"UPDATE {quote(meta.db_table)} SET {assignments} WHERE {conditions}"
    params = [meta.get_field(name).get_db_prep_save(value, connection)
              for name, value in (*values.items(), *where.items())]
    with connection.cursor() as cursor:
        cursor.execute(_UPDATE_SQL[key], params)
        return cursor.rowcount


def dump_checkpoint(checkpoint: WorkflowCheckpoint) -> str:
    # ASCII escapes: every str is storable, lone surrogates included.
    return json.dumps(checkpoint.to_dict(), separators=(",", ":"))


def load_checkpoint(row: Checkpoint) -> WorkflowCheckpoint:
    """Decode a row; a corrupt document raises ``WorkflowCheckpointError`` naming it."""
    if hashlib.sha256(bytes(row.document)).hexdigest() != row.content_hash:
        raise WorkflowCheckpointError(
            f"checkpoint {row.checkpoint_id} is corrupt: its content does not match its hash")
    try:
        text = row.document_text()
    except ValueError as error:
        raise WorkflowCheckpointError(f"checkpoint {row.checkpoint_id} is corrupt: {error}") from None
    try:
        document = json.loads(text)
    except ValueError as error:
        raise WorkflowCheckpointError(
            f"checkpoint {row.checkpoint_id} is corrupt: {error}") from None
    return WorkflowCheckpoint.from_dict(document)


def load_checkpoint_by_id(checkpoint_id: str) -> WorkflowCheckpoint:
    row = Checkpoint.objects.filter(pk=checkpoint_id).first()
    if row is None:
        raise WorkflowCheckpointError(f"checkpoint {checkpoint_id!r} not found")
    return load_checkpoint(row)


class DatabaseCheckpointStorage:
    """Checkpoints of one run, as rows. Rows are immutable: saving an id twice fails."""

    def __init__(self, run: Run) -> None:
        self.run_id = run.pk

    def _save(self, checkpoint: WorkflowCheckpoint) -> str:
        row = checkpoint_row(checkpoint, self.run_id)
        with transaction.atomic():
            if Checkpoint.objects.filter(pk=row.pk).exists():
                raise WorkflowCheckpointError(f"checkpoint {row.pk} already exists")
            row.save(force_insert=True)
            Run.objects.filter(pk=self.run_id).update(
                head_checkpoint_id=row.pk, current_superstep=row.superstep)
        return row.pk

    async def save(self, checkpoint: WorkflowCheckpoint) -> str:
        return await sync_to_async(self._save)(checkpoint)

    async def load(self, checkpoint_id: str) -> WorkflowCheckpoint:
        return await sync_to_async(load_checkpoint_by_id)(checkpoint_id)

    def _rows(self, workflow_name: str | None):
        rows = Checkpoint.objects.all()
        if workflow_name is not None:
            rows = rows.filter(workflow_name=workflow_name)
        return rows.order_by("created_at")

    async def list_checkpoints(self, workflow_name: str | None = None) -> list[WorkflowCheckpoint]:
        return await sync_to_async(lambda: [load_checkpoint(r) for r in self._rows(workflow_name)])()

    async def list_checkpoint_ids(self, workflow_name: str | None = None) -> list[str]:
        return await sync_to_async(
            lambda: list(self._rows(workflow_name).values_list("pk", flat=True)))()

    async def get_latest(self, workflow_name: str | None = None) -> WorkflowCheckpoint | None:
        def latest():
            row = self._rows(workflow_name).last()
            return None if row is None else load_checkpoint(row)
        return await sync_to_async(latest)()

    async def delete(self, checkpoint_id: str) -> bool:
        def delete():
            deleted, _ = Checkpoint.objects.filter(pk=checkpoint_id).delete()
            return bool(deleted)
        return await sync_to_async(delete)()
