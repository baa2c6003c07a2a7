"""The lease: a worker's hold on one run (one writer per run, ever).

``lifecycle.claim`` takes it; every write the task makes afterwards is fenced by it (the
run's id, this owner, status running), so a worker whose lease was taken over by another
writes nothing more. ``write`` renews the lease with each commit and reports an operator's
cancel request on the way; ``renew`` does the same between commits.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from django.utils import timezone

from ..conf import stepstone_settings
from ..fast_sql import update_where
from ..models import Run
from ..states import RunStatus


class LeaseLost(Exception):
    """Another worker owns the run now; this one must stop without writing."""


class Lease:
    def __init__(self, run_id: Any, owner: str) -> None:
        self.owner = owner
        # The rows this worker may write: the run, while it holds it.
        self.fence = {"id": run_id, "lease_owner": owner, "status": RunStatus.RUNNING}

    def expiry(self) -> datetime:
        return timezone.now() + timedelta(seconds=stepstone_settings.LEASE_SECONDS)

    def write(self, fields: dict[str, Any]) -> bool:
        """Write ``fields`` to the run (within the caller's transaction) and renew the lease;
        return whether an operator asked to cancel the run. Raises ``LeaseLost`` (writing
        nothing) if this worker no longer holds the run."""
        fields = {**fields, "lease_expires_at": self.expiry()}
        # The common case in one statement; the rare one (a cancel request) in a second.
        if update_where(Run, {**self.fence, "cancel_requested": False}, fields):
            return False
        if update_where(Run, self.fence, fields):
            return True
        raise LeaseLost()

    def renew(self) -> bool:
        """Extend the lease (between commits); return whether a cancel was requested."""
        return self.write({"updated_at": timezone.now()})
