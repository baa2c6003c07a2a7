"""Engine checkpoints stored as ``Checkpoint`` rows, each holding only what changed.

A row stores its run's *record* at that checkpoint: ``{"checkpoint": <the engine's
checkpoint document>, "outputs": <the run's encoded outputs so far>}``, as compact,
compressed JSON (``row_bytes``). The first row a writer saves holds the record whole; each
later one holds a delta (``engine.deltas``) against an earlier row of the same run, its
``base``, chosen by the skip-delta schedule. So the bytes a run stores grow with what
changed, and reading any row applies at most ``log2(position) + 1`` deltas, fetched in one
query, however long the history (see ``read_chain``). ``base`` is a RESTRICT foreign key: a
row others are stored against cannot be deleted on its own.

``CheckpointWriter`` turns a run's successive checkpoints into rows.
``DatabaseCheckpointStorage`` implements the engine's ``CheckpointStorage`` protocol over
the database, for any code that drives a workflow itself. Runs executed by workers write
through ``execution``'s recorder instead, which saves the checkpoint, the events and the
run's progress in one transaction.
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Any

from asgiref.sync import sync_to_async
from django.db import IntegrityError, connections, router, transaction
from django.db.models import RestrictedError, Sum

from .engine import WorkflowCheckpoint, WorkflowCheckpointError
from .engine.deltas import ChainLink, SkipDeltaWriter, restore
from .models import Checkpoint, Run
from .row_bytes import CorruptBytes, encode, pack, unpack


class CheckpointWriter:
    """Rows for one run's successive checkpoints: the first whole, then skip-deltas
    (``engine.deltas.SkipDeltaWriter`` keeps the records later rows are stored against).
    ``continue_from`` picks up the chain a restore read, so a run resumed by a new task goes
    on storing deltas."""

    def __init__(self, run_id: Any) -> None:
        self.run_id = run_id
        self.deltas = SkipDeltaWriter()

    def continue_from(self, run_id: Any, links: list[ChainLink]) -> None:
        """Store the next rows against ``links`` (from ``read_chain``) if they are this run's
        own; another run's rows are never a base, so each run can be pruned on its own."""
        if run_id == Run._meta.pk.to_python(self.run_id):
            self.deltas.remember(links)

    def row(self, checkpoint: WorkflowCheckpoint, outputs: list[Any]) -> Checkpoint:
        """The (unsaved) row for ``checkpoint``, the run's encoded ``outputs`` so far with it.
        Encoding happens here: an unencodable value raises before anything is stored."""
        record = {"checkpoint": checkpoint.to_dict(), "outputs": list(outputs)}
        base, position, stored = self.deltas.store(
            checkpoint.checkpoint_id, checkpoint.previous_checkpoint_id, record)
        return _row(checkpoint, self.run_id, stored, base, position)


def _row(checkpoint: WorkflowCheckpoint, run_id: Any, stored: Any, base: ChainLink | None,
         position: int) -> Checkpoint:
    encoded = encode(stored)
    data = pack(encoded)
    return Checkpoint(
        checkpoint_id=checkpoint.checkpoint_id,
        run_id=run_id,
        workflow_name=checkpoint.workflow_name,
        superstep=checkpoint.superstep,
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


# --------------------------------------------------------------------------- reading
def read_chain(checkpoint_id: str) -> tuple[Any, list[ChainLink]]:
    """The run that owns ``checkpoint_id`` and the records along its skip path, oldest
    (stored whole) first, the requested one last.

    One query fetches the row and its bases (a recursive CTE over ``base_id``). Raises
    ``WorkflowCheckpointError`` naming the checkpoint if it is missing or any row on its
    path is corrupt: bytes that do not match their hash, do not decompress or do not fit.
    """
    table = Checkpoint._meta.db_table
    connection = connections[router.db_for_read(Checkpoint)]
    quote = connection.ops.quote_name
    # Both terms cast to text: PostgreSQL wants one type for the recursive column.
    sql = (f"WITH RECURSIVE path(id) AS ("
           f" SELECT CAST(%s AS TEXT) UNION ALL"
           f" SELECT CAST(c.{quote('base_id')} AS TEXT) FROM {quote(table)} c JOIN path"
           f" ON c.{quote('checkpoint_id')} = path.id WHERE c.{quote('base_id')} IS NOT NULL)"
           f" SELECT checkpoint_id, base_id, run_id, chain_position, document, content_hash"
           f" FROM {quote(table)} WHERE checkpoint_id IN (SELECT id FROM path)")
    with connection.cursor() as cursor:
        cursor.execute(sql, [str(checkpoint_id)])
        rows = {row[0]: row for row in cursor.fetchall()}
    if str(checkpoint_id) not in rows:
        raise WorkflowCheckpointError(f"checkpoint {checkpoint_id!r} not found")
    path, current = [], rows[str(checkpoint_id)]
    while True:  # newest to oldest; a base is always an earlier row of the same run
        path.append(current)
        if current[1] is None:
            break
        if current[1] not in rows:
            raise WorkflowCheckpointError(
                f"checkpoint {checkpoint_id} is corrupt: its base {current[1]} is missing")
        current = rows[current[1]]
    links = restore([(row_id, position, base_id is None,
                      _decode_stored(row_id, data, content_hash, checkpoint_id))
                     for row_id, base_id, _run, position, data, content_hash in reversed(path)])
    record = links[-1].record
    if not isinstance(record, dict) or not isinstance(record.get("checkpoint"), dict):
        raise WorkflowCheckpointError(f"checkpoint {checkpoint_id} is corrupt: no checkpoint "
                                      f"document in its record")
    # Raw SQL gives the run's uuid as the backend stores it (hex text on SQLite).
    return Run._meta.pk.to_python(path[0][2]), links


def _decode_stored(row_id: str, data: Any, content_hash: str, requested: str) -> Any:
    which = f"checkpoint {row_id}" if row_id == str(requested) else (
        f"checkpoint {row_id} (a base of checkpoint {requested})")
    data = bytes(data)
    if hashlib.sha256(data).hexdigest() != content_hash:
        raise WorkflowCheckpointError(f"{which} is corrupt: its content does not match its hash")
    try:
        return unpack(data)
    except CorruptBytes as error:
        raise WorkflowCheckpointError(f"{which} is corrupt: {error}") from None


def read_record(checkpoint_id: str) -> dict[str, Any]:
    """``{"checkpoint": <document>, "outputs": [...]}`` as stored for ``checkpoint_id``."""
    return read_chain(checkpoint_id)[1][-1].record


def read_document(checkpoint_id: str) -> dict[str, Any]:
    """The checkpoint's JSON document (JSON natives, type tags left in place)."""
    return read_record(checkpoint_id)["checkpoint"]


def load_checkpoint(checkpoint_id: str) -> WorkflowCheckpoint:
    """The stored checkpoint; a corrupt row raises ``WorkflowCheckpointError`` naming it."""
    return WorkflowCheckpoint.from_dict(read_document(checkpoint_id))


_INSERT_SQL: dict[tuple, tuple[str, list]] = {}

# Column types whose Python values reach the database as they are (when of these types), on
# every backend: no need for the field's get_db_prep_save, which costs more than the insert.
_PASS_THROUGH = {
    "CharField": (str,), "TextField": (str,), "BooleanField": (bool,),
    "IntegerField": (int,), "PositiveIntegerField": (int,), "BigIntegerField": (int,),
    "PositiveBigIntegerField": (int,), "SmallIntegerField": (int,),
    "PositiveSmallIntegerField": (int,),
}


def _converter(field, connection):
    """A function giving the database value of ``field`` for a Python value."""
    prepare = field.get_db_prep_save
    kinds = _PASS_THROUGH.get(field.get_internal_type())
    if kinds is None:
        return lambda value: prepare(value, connection)
    # Exact types only: a str or int subclass (an enum member) goes through Django.
    return lambda value: value if type(value) in kinds or value is None else prepare(
        value, connection)


def insert_rows(model: type, objects: list) -> None:
    """INSERT rows (model instances, or dicts of attribute values with every column) with
    one prepared statement (no signals, no returned ids).

    The worker saves a checkpoint and its events every superstep; Django's ``bulk_create``
    spends several times longer building the statement than the database takes to run it.
    Values go through each field's ``get_db_prep_save``, as ``bulk_create`` does, except
    plain strings, integers and booleans for columns that store them as they are.
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
        _INSERT_SQL[key] = (sql, [(f.attname, _converter(f, connection)) for f in fields])
    sql, columns = _INSERT_SQL[key]
    if isinstance(objects[0], dict):
        rows = [tuple(convert(obj[name]) for name, convert in columns) for obj in objects]
    else:
        rows = [tuple(convert(getattr(obj, name)) for name, convert in columns)
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


def bytes_stored(run: Run) -> int:
    """Bytes the database holds for ``run``'s checkpoints."""
    return Checkpoint.objects.filter(run=run).aggregate(total=Sum("size_bytes"))["total"] or 0


class DatabaseCheckpointStorage:
    """Checkpoints of one run, as rows. Rows are immutable: saving an id twice fails."""

    def __init__(self, run: Run) -> None:
        self.run_id = run.pk
        self.writer = CheckpointWriter(run.pk)

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
        run_id, links = read_chain(checkpoint_id)
        self.writer.continue_from(run_id, links)  # a run resumed here goes on with deltas
        return WorkflowCheckpoint.from_dict(links[-1].record["checkpoint"])

    async def load(self, checkpoint_id: str) -> WorkflowCheckpoint:
        return await sync_to_async(self._load)(checkpoint_id)

    def _ids(self, workflow_name: str | None):
        """This run's checkpoint ids in save order (ids only: ``read_chain`` reads rows)."""
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
