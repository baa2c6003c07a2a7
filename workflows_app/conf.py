"""Stepstone's own settings, with their defaults (override in ``settings.STEPSTONE``)."""

from __future__ import annotations

from typing import Any

from django.conf import settings

DEFAULTS: dict[str, Any] = {
    # Modules imported at start-up that register workflow definitions.
    "WORKFLOW_MODULES": ["workflows_app.examples"],
    # A worker owns a run for this long without renewing; a dead worker's run is picked up
    # once its lease expires (and the next recovery sweep has run). Renewed at every
    # checkpoint, by a heartbeat in between, and by a thread of its own when a handler keeps
    # the event loop busy, so only a dead (or frozen) worker loses it.
    "LEASE_SECONDS": 5,
    # How often the heartbeat renews the lease and looks for a cancel request.
    "HEARTBEAT_SECONDS": 0.8,
    # Group commit: checkpoints of fast supersteps are committed together, at most this many
    # seconds apart (and always when the run waits, stops or ends). 0: commit each one.
    "CHECKPOINT_FLUSH_SECONDS": 0.02,
    # A task hands its run to a new task at the first checkpoint after this long, so no task
    # approaches django-q2's timeout however long the run is.
    "TASK_SLICE_SECONDS": 240,
    # How often each cluster runs the recovery sweep (``worker.recovery``; each of its worker
    # processes sweeps this times the number of workers apart): a run whose worker died runs
    # again a little over LEASE_SECONDS after the death.
    "RECOVERY_SWEEP_SECONDS": 1.0,
    # Queued runs with no lease and no task any cluster holds, unchanged for this long, are
    # enqueued again by the recovery sweep (their task was lost).
    "RECOVER_QUEUED_AFTER_SECONDS": 120,
    # A worker told to stop (SIGTERM, or SIGINT to its cluster) hands its run over at the
    # next checkpoint; a superstep still under way after this long is abandoned (the next
    # worker re-runs it from the last checkpoint) so that the stop never waits for it.
    "STOP_GRACE_SECONDS": 3.0,
    # Checkpoints the retention sweep keeps per finished run (0: keep all); see
    # services.prune_checkpoints for what is always kept.
    "RETAIN_CHECKPOINTS": 100,
    # Send every recorded event to the run's channel group (live dashboard).
    "PUBLISH_EVENTS": True,
}


class StepstoneSettings:
    def __getattr__(self, name: str) -> Any:
        if name not in DEFAULTS:
            raise AttributeError(f"unknown Stepstone setting {name!r}")
        return getattr(settings, "STEPSTONE", {}).get(name, DEFAULTS[name])


stepstone_settings = StepstoneSettings()
