"""The lease: a worker's hold on one run (one writer per run, ever).

``lifecycle.claim`` takes it; every write the task makes afterwards is fenced by it (the
run's id, this owner, status running), so a worker whose lease was taken over by another
writes nothing more. ``write`` renews the lease with each commit and reports an operator's
cancel request on the way; ``renew`` does the same between commits.

The lease is short (``LEASE_SECONDS``) so that a dead worker's run is taken over within
seconds; it must therefore expire only when the worker is dead. The task's heartbeat renews
it from the event loop, and ``LeaseKeeper`` from a thread of its own once half of it has
gone by unrenewed (a handler that computes, or calls a blocking client, holds the loop for
as long as it likes).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from django.db import DatabaseError, connection, transaction
from django.utils import timezone

from ..conf import stepstone_settings
from ..fast_sql import update_where
from ..models import Run
from ..states import RunStatus


logger = logging.getLogger(__name__)


class LeaseLost(Exception):
    """Another worker owns the run now; this one must stop without writing."""


class Lease:
    def __init__(self, run_id: Any, owner: str) -> None:
        self.owner = owner
        # The rows this worker may write: the run, while it holds it.
        self.fence = {"id": run_id, "lease_owner": owner, "status": RunStatus.RUNNING}
        # When this worker last wrote the lease (monotonic clock), from any thread.
        self.renewed = time.monotonic()

    def expiry(self) -> datetime:
        return timezone.now() + timedelta(seconds=stepstone_settings.LEASE_SECONDS)

    def write(self, fields: dict[str, Any]) -> bool:
        """Write ``fields`` to the run (within the caller's transaction) and renew the lease;
        return whether an operator asked to cancel the run. Raises ``LeaseLost`` (writing
        nothing) if this worker no longer holds the run."""
        started = time.monotonic()
        fields = {**fields, "lease_expires_at": self.expiry()}
        # The common case in one statement; the rare one (a cancel request) in a second.
        if update_where(Run, {**self.fence, "cancel_requested": False}, fields):
            self.renewed = started
            return False
        if update_where(Run, self.fence, fields):
            self.renewed = started
            return True
        raise LeaseLost()

    def renew(self) -> bool:
        """Extend the lease (between commits); return whether a cancel was requested."""
        return self.write({"updated_at": timezone.now()})


class LeaseKeeper:
    """Renews ``lease`` from a thread whenever half of it has gone by unrenewed.

    The event loop's heartbeat renews the lease as long as handlers yield to it; this
    thread covers the supersteps that do not (it has a database connection of its own, so
    it never writes inside the task's transaction). It reports a cancel request through
    ``on_cancel`` and a lost lease through ``on_lost`` (called from its thread: callers hop
    to their loop) and stops at the first lost lease.
    """

    def __init__(self, lease: Lease, *, on_cancel: Callable[[], None],
                 on_lost: Callable[[], None]) -> None:
        self.lease = lease
        self.on_cancel = on_cancel
        self.on_lost = on_lost
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._keep, name="stepstone-lease-keeper",
                                        daemon=True)

    def start(self) -> LeaseKeeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _keep(self) -> None:
        beat = stepstone_settings.HEARTBEAT_SECONDS
        half = stepstone_settings.LEASE_SECONDS / 2
        try:
            while not self._done.wait(beat):
                if time.monotonic() - self.lease.renewed < half:
                    continue
                try:
                    with transaction.atomic():
                        cancel = self.lease.renew()
                except LeaseLost:
                    self.on_lost()
                    return
                except DatabaseError:  # e.g. the database restarting: try at the next beat
                    logger.warning("could not renew the lease of run %s",
                                   self.lease.fence["id"], exc_info=True)
                    connection.close()
                    continue
                if cancel:
                    self.on_cancel()
        finally:
            connection.close()  # this thread's own connection
