"""Stepstone's part of each django-q2 worker process, set up as django-q2 spawns it.

``worker_spawned`` is connected to django-q2's ``post_spawn`` signal (``apps.py``), which
each worker process sends as it starts. It makes the process answer the signals of a stop
(``shutdown``) and starts the ``Sweeper``: django-q2's scheduler looks at its schedules
every 30 seconds at best, too seldom to take a dead worker's run over within seconds, so
every worker process runs the recovery sweep itself. Worker processes are the leaves of a
cluster (they never fork), so a thread there cannot be inherited half-way by a child.
"""

from __future__ import annotations

import logging
import random
import threading
from typing import Any

from django.db import close_old_connections, connection
from django_q.conf import Conf

from .. import services
from ..conf import stepstone_settings
from .shutdown import install as answer_stop_signals

logger = logging.getLogger(__name__)


def worker_spawned(sender: Any = None, **kwargs: Any) -> None:
    """django-q2's ``post_spawn`` receiver (in the new worker process)."""
    answer_stop_signals()
    Sweeper().start()


class Sweeper:
    """Runs ``services.recover_stale_runs`` in a daemon thread with a database connection of
    its own: each worker process every ``RECOVERY_SWEEP_SECONDS`` times the cluster's
    workers, so that a cluster sweeps about every ``RECOVERY_SWEEP_SECONDS`` however many
    workers it has. The first pause is a random part of one, and later ones vary by half
    either way, so the processes of a cluster, which start together, sweep at different
    moments."""

    def __init__(self, every: float | None = None) -> None:
        if every is None:
            every = stepstone_settings.RECOVERY_SWEEP_SECONDS * max(1, int(Conf.WORKERS))
        self.every = every
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="stepstone-recovery-sweep",
                                        daemon=True)

    def start(self) -> Sweeper:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _loop(self) -> None:
        pause = self.every * random.uniform(0, 1)
        try:
            while not self._done.wait(pause):
                pause = self.every * random.uniform(0.5, 1.5)
                try:
                    close_old_connections()
                    recovered = services.recover_stale_runs()
                except Exception:  # the database restarting, say: sweep again next time
                    logger.warning("recovery sweep failed", exc_info=True)
                    connection.close()
                    continue
                if recovered:
                    logger.info("recovery sweep: %d run(s) given a task again",
                                len(recovered))
        finally:
            connection.close()
