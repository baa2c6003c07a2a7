"""Group commit: checkpoints, with the events recorded up to each, the requests they hold
and the answers they delivered, written in one transaction fenced by the lease.

Fast supersteps are committed together, at most ``CHECKPOINT_FLUSH_SECONDS`` apart (and
always before the run waits, stops or ends), because a commit costs more than a fast
superstep. A crash loses at most that window, which the next worker re-runs from the last
committed checkpoint, exactly as it re-runs an unfinished superstep. With the setting at 0
every checkpoint is committed on its own.
"""

from __future__ import annotations

import time
from typing import Any

from django.utils import timezone

from ..fast_sql import insert_rows
from ..models import Checkpoint, RunEvent
from .lease import Lease
from .request_log import RequestLog
from .run_record import RunRecordStorage


class GroupCommit:
    """What is staged for the next commit."""

    def __init__(self) -> None:
        self.rows: list[Checkpoint] = []
        self.events: list[dict[str, Any]] = []
        self.raised: dict[str, Any] = {}
        self.delivering: list[str] = []
        self.started: float | None = None  # when the oldest staged checkpoint arrived

    def __bool__(self) -> bool:
        return bool(self.rows or self.events)

    def add(self, rows: list[Checkpoint], events: list[dict[str, Any]],
            requests: tuple[dict[str, Any], list[str]]) -> None:
        if rows and self.started is None:
            self.started = time.monotonic()
        self.rows.extend(rows)
        self.events.extend(events)
        self.raised.update(requests[0])
        self.delivering.extend(requests[1])

    def age(self) -> float:
        """Seconds since the oldest staged checkpoint arrived (0 with none staged)."""
        return 0.0 if self.started is None else time.monotonic() - self.started

    def write(self, lease: Lease, storage: RunRecordStorage, request_log: RequestLog) -> bool:
        """Write everything staged (inside the caller's transaction), renewing the lease;
        return whether a cancel was requested. Raises ``LeaseLost``, having written
        nothing, if the worker no longer holds the run."""
        fields: dict[str, Any] = {"updated_at": timezone.now()}
        if self.rows:
            head = self.rows[-1]
            fields.update(head_checkpoint=head.pk, current_superstep=head.superstep)
        if storage.outputs_unsaved:
            fields["outputs"] = storage.outputs
        cancel = lease.write(fields)  # first: a lost lease writes nothing below
        insert_rows(Checkpoint, self.rows)
        insert_rows(RunEvent, self.events)
        request_log.save(self.raised, self.delivering)
        storage.outputs_unsaved = False
        return cancel
