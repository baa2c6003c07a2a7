"""The reads every entry point shares (API, dashboard, admin, websockets, commands), as
queryset methods: one home for each, so they cannot disagree.

- ``Run.objects.filter_by(status=, workflow=)``: runs newest first, filtered;
- ``RunEvent.objects.after(seq)`` and ``.records()``: a run's events after a ``seq``, in the
  shape pages and sockets receive (``RunEvent.record_of``); ``parse_seq`` reads a ``seq``
  given by a client;
- ``Checkpoint.objects.read_chain(id)``: a checkpoint row and the rows it is stored against,
  read in one query, checked against their hashes and decoded into the run's record.
"""

from __future__ import annotations

import hashlib
from typing import Any

from django.db import connections, models, router

from .engine import WorkflowCheckpointError
from .engine.deltas import ChainLink, restore
from .row_bytes import CorruptBytes, unpack
from .states import RequestStatus

# A client's ``seq`` is a decimal number of at most this many digits: more than any run's
# events, and short enough that parsing it costs nothing.
SEQ_DIGITS = 18


def parse_seq(value: Any) -> int | None:
    """A ``seq`` given by a client (``?after=`` or a websocket message): a non-negative
    integer or its decimal text. None when it is anything else."""
    if isinstance(value, bool):
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value.isascii() or not value.isdigit() or len(value) > SEQ_DIGITS:
            return None
        value = int(value)
    return value if isinstance(value, int) and 0 <= value < 10 ** SEQ_DIGITS else None


class RunQuerySet(models.QuerySet):
    def filter_by(self, status: str | None = None, workflow: str | None = None) -> "RunQuerySet":
        """Runs newest first, only those of ``status`` and of the workflow named ``workflow``
        (an empty or None filter lets every run through)."""
        runs = self.select_related("workflow", "created_by").order_by("-created_at")
        if status:
            runs = runs.filter(status=status)
        if workflow:
            runs = runs.filter(workflow__name=workflow)
        return runs


class RunEventQuerySet(models.QuerySet):
    def after(self, seq: int, upto: int | None = None) -> "RunEventQuerySet":
        """Events with ``seq`` above ``seq`` (and at most ``upto``), in ``seq`` order. Filter
        by run first: the (run, seq) index serves exactly that."""
        events = self.filter(seq__gt=seq).order_by("seq")
        return events.filter(seq__lte=upto) if upto is not None else events

    def records(self) -> list[dict[str, Any]]:
        """The events as the pages and sockets receive them (``RunEvent.record_of``)."""
        return [self.model.record_of(row) for row in self.values(*self.model.RECORD_FIELDS)]


class PendingRequestQuerySet(models.QuerySet):
    def open(self) -> "PendingRequestQuerySet":
        return self.filter(status=RequestStatus.OPEN)

    def undelivered(self) -> "PendingRequestQuerySet":
        """Requests the run has not taken an answer to yet: open, or answered and waiting to
        be delivered (cancelled ones excluded)."""
        return self.filter(status__in=[RequestStatus.OPEN, RequestStatus.ANSWERED],
                           delivered=False)

    def answers_to_deliver(self) -> "PendingRequestQuerySet":
        return self.filter(status=RequestStatus.ANSWERED, delivered=False)


class CheckpointQuerySet(models.QuerySet):
    def read_chain(self, checkpoint_id: str) -> tuple[Any, list[ChainLink]]:
        """The run that owns ``checkpoint_id`` and the records along its skip path, oldest
        (stored whole) first, the requested one last.

        One query fetches the row and its bases (a recursive CTE over ``base_id``). Raises
        ``WorkflowCheckpointError`` naming the checkpoint if it is missing or any row on its
        path is corrupt: bytes that do not match their hash, do not decompress or do not fit.
        """
        meta = self.model._meta
        connection = connections[router.db_for_read(self.model)]
        quote = connection.ops.quote_name
        table = quote(meta.db_table)
        # Both terms cast to text: PostgreSQL wants one type for the recursive column.
        sql = (f"WITH RECURSIVE path(id) AS ("
               f" SELECT CAST(%s AS TEXT) UNION ALL"
               f" SELECT CAST(c.{quote('base_id')} AS TEXT) FROM {table} c JOIN path"
               f" ON c.{quote('checkpoint_id')} = path.id WHERE c.{quote('base_id')} IS NOT NULL)"
               f" SELECT checkpoint_id, base_id, run_id, chain_position, document, content_hash"
               f" FROM {table} WHERE checkpoint_id IN (SELECT id FROM path)")
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
                         for row_id, base_id, _run, position, data, content_hash
                         in reversed(path)])
        record = links[-1].record
        if not (isinstance(record, dict) and isinstance(record.get("checkpoint"), dict)
                and isinstance(record.get("outputs"), list)):
            raise WorkflowCheckpointError(f"checkpoint {checkpoint_id} is corrupt: its record "
                                          f"lacks the checkpoint document or the outputs")
        # Raw SQL gives the run's uuid as the backend stores it (hex text on SQLite).
        run_id = meta.get_field("run").target_field.to_python(path[0][2])
        return run_id, links

    def read_record(self, checkpoint_id: str) -> dict[str, Any]:
        """``{"checkpoint": <document>, "outputs": [...]}`` as stored for ``checkpoint_id``."""
        return self.read_chain(checkpoint_id)[1][-1].record


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
