"""Stopping a worker process without losing its run or leaving it leased.

django-q2 stops a cluster by letting every worker finish the task it holds, and a run's
task lasts up to its slice (minutes). Stepstone's worker processes answer the signals of a
stop instead (``install`` is called in each one as it is spawned, see ``worker.process``):

- **SIGTERM**, which a process runner sends to every process of the cluster's group (``manage.py
  serve``, honcho, systemd): the run under way is handed over at its next checkpoint (the
  run is queued again and the next worker continues it from there), then the process ends
  as SIGTERM would have ended it. An idle worker ends at once.
- **SIGINT**, which a terminal's Ctrl-C sends to a ``manage.py qcluster`` and all its
  processes: the same hand-over; the process then goes on with django-q2's own stop, which
  the cluster's main process leads. A task it is still given hands over at its first
  checkpoint.

A superstep still under way ``STOP_GRACE_SECONDS`` after the signal is abandoned
(``RunExecution`` drops what it had not committed and queues the run), so the stop never
waits for a long handler; the next worker re-runs that superstep from the last checkpoint.
"""

from __future__ import annotations

import contextlib
import os
import signal
import time
from collections.abc import Iterator

_requested_at: float | None = None  # when this process was told to stop (monotonic)
_executing = 0  # run tasks under way in this process
_terminate = False  # a SIGTERM waits for the task under way, then ends the process


def install() -> None:
    """Answer SIGTERM and SIGINT in this process as the module docstring says."""
    signal.signal(signal.SIGTERM, _on_signal)
    signal.signal(signal.SIGINT, _on_signal)


def request_stop() -> None:
    """Tell the run under way in this process (and any later one) to hand over."""
    global _requested_at
    if _requested_at is None:
        _requested_at = time.monotonic()


def stop_requested() -> bool:
    return _requested_at is not None


def stop_requested_for() -> float:
    """Seconds since this process was told to stop (0 if it was not)."""
    return 0.0 if _requested_at is None else time.monotonic() - _requested_at


@contextlib.contextmanager
def executing() -> Iterator[None]:
    """Around a run task: a SIGTERM that arrives meanwhile ends the process only after it."""
    global _executing
    _executing += 1
    try:
        yield
    finally:
        _executing -= 1
        if _terminate and not _executing:
            _end_process()


def _on_signal(signum: int, frame: object) -> None:
    global _terminate
    request_stop()
    if signum == signal.SIGTERM:
        if _executing:
            _terminate = True
        else:
            _end_process()


def _end_process() -> None:
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)
