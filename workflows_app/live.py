"""Pushing recorded events to the browser: every event goes to the run's channel group,
and status changes to the run's group and to the group of the runs list (so a run page
hears only of its own run, however many runs change). Best effort: the events are already in
the database, and a page that missed some asks for them by ``seq``.

Three groups besides the runs' own:

- ``RUNS_GROUP`` (the runs list): ``run.status`` of every run, and ``runs.progress``, the
  superstep each run reached, paced by the ``Publisher`` to one message every
  ``PROGRESS_SECONDS`` per worker process however many runs it drives;
- ``REQUESTS_GROUP`` (the navigation of every page, the Requests inbox): ``requests.changed``,
  a hint that the open requests may have changed (a run's status moved, or a run raised
  requests); listeners read what is open themselves.

Per-superstep traffic goes to ``RUNS_GROUP`` only, never to a group run pages join."""

from __future__ import annotations

import asyncio
import logging
import os
import queue
import threading
import time
from typing import Any, Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from .conf import stepstone_settings
from .models import RunEvent
from .states import RunStatus

logger = logging.getLogger(__name__)

RUNS_GROUP = "runs"
REQUESTS_GROUP = "requests"
BATCH_SECONDS = 0.02  # a worker's messages are sent at most this late
# A worker process sends the runs list at most one progress message this often (4 a second):
# enough for a column of numbers to move smoothly, while a fast run's hundreds of supersteps
# a second cost the list's sockets nothing more.
PROGRESS_SECONDS = 0.25


def run_group(run_id: Any) -> str:
    return f"run-{run_id}"


async def asend(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """Send (group, message) pairs; from async code (the worker's event loop)."""
    if not messages or not stepstone_settings.PUBLISH_EVENTS:
        return
    layer = get_channel_layer()
    if layer is None:
        return
    for group, message in messages:
        try:
            await layer.group_send(group, message)
        except Exception:  # never fail a run because a browser could not be told
            logger.warning("could not publish to %s", group, exc_info=True)


def send(messages: list[tuple[str, dict[str, Any]]]) -> None:
    """The same, from synchronous code with no event loop running (views, services)."""
    if messages and stepstone_settings.PUBLISH_EVENTS:
        async_to_sync(asend)(messages)


class Publisher:
    """Sends a worker's messages from a thread of its own, in order, so that a run never
    waits for the channel layer (its writes and polling live in another database).
    Workers share one per process (``process_publisher``); its thread, a daemon, runs for
    the life of the process."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._thread: threading.Thread | None = None
        self._starting = threading.Lock()
        # Progress held back by the pacing (run id -> newest superstep), and when the next
        # progress message may go (monotonic clock); touched by the publisher thread only.
        self._progress: dict[str, int] = {}
        self._progress_due = 0.0

    def send(self, messages: list[tuple[str, dict[str, Any]]]) -> None:
        if not messages or not stepstone_settings.PUBLISH_EVENTS:
            return
        if self._thread is None:
            with self._starting:
                if self._thread is None:
                    self._thread = threading.Thread(target=self._run, daemon=True,
                                                    name="stepstone-publisher")
                    self._thread.start()
        self._queue.put(messages)

    def _run(self) -> None:
        loop = asyncio.new_event_loop()  # one loop for the thread's life, not one per send
        while True:
            messages = self.pace_progress(self._take_batch(), time.monotonic())
            if messages:
                loop.run_until_complete(asend(_coalesce(messages)))

    def _take_batch(self) -> list[tuple[str, dict[str, Any]]]:
        """The messages queued next: wait for one (no longer than held-back progress may
        wait), then gather what arrives within a short window, to send it together: a fast
        run then costs a few sends a second instead of one per superstep."""
        wait = max(self._progress_due - time.monotonic(), 0) if self._progress else None
        try:
            batch = [self._queue.get(timeout=wait)]
        except queue.Empty:
            return []
        deadline = time.monotonic() + BATCH_SECONDS
        while (left := deadline - time.monotonic()) > 0:
            try:
                batch.append(self._queue.get(timeout=left))
            except queue.Empty:
                break
        return [m for item in batch for m in item]

    def pace_progress(self, messages: list[tuple[str, dict[str, Any]]], now: float
                      ) -> list[tuple[str, dict[str, Any]]]:
        """``messages`` with their progress taken out and merged into what is held back
        (the newest superstep of each run wins: a resumed run may go back); the held-back
        progress goes out as one message once ``PROGRESS_SECONDS`` have passed since the
        previous one. A run whose status changes has its progress sent with the status,
        so the runs list never shows a finished run short of its last superstep."""
        kept = []
        for group, message in messages:
            if message["type"] == "runs.progress":
                self._progress.update(message["supersteps"])
            else:
                kept.append((group, message))
        changed = {m["run_id"] for _, m in kept if m["type"] == "run.status"}
        due = now >= self._progress_due
        outgoing = {run: superstep for run, superstep in self._progress.items()
                    if due or run in changed}
        if not outgoing:
            return kept
        for run in outgoing:
            del self._progress[run]
        if due:
            self._progress_due = now + PROGRESS_SECONDS
        # First: the runs list then reads a status after the progress that preceded it.
        return [progress_message(outgoing)[0], *kept]


_process_publisher: tuple[int, Publisher] | None = None
_process_lock = threading.Lock()


def process_publisher() -> Publisher:
    """This process's publisher: one thread, one event loop and one set of channel-layer
    connections for every task the process runs, instead of a thread started and joined per
    task (which cost each task more than its commits). Messages stay in order across the
    tasks of a process. The thread is a daemon: what is still queued when the process exits
    (within the batching window) is not sent, which costs nothing but latency, since every
    event is committed first and pages fill gaps from the database. A forked child gets a
    publisher of its own."""
    global _process_publisher
    with _process_lock:
        if _process_publisher is None or _process_publisher[0] != os.getpid():
            publisher = Publisher()
            _process_publisher = (os.getpid(), publisher)
        return _process_publisher[1]


def _coalesce(messages: list[tuple[str, dict[str, Any]]]) -> list[tuple[str, dict[str, Any]]]:
    """One message per group and run: events concatenated in order, the last status of each
    run; one ``requests.changed`` per group (it names no run)."""
    merged: dict[tuple, tuple[str, dict[str, Any]]] = {}
    for group, message in messages:
        key = (group, message["type"], message.get("run_id"))
        if key in merged and message["type"] == "run.events":
            merged[key][1]["events"].extend(message["events"])
        else:
            merged.pop(key, None)  # re-inserted last: keeps the order of first appearance
            merged[key] = (group, {**message, "events": list(message["events"])}
                           if message["type"] == "run.events" else message)
    return list(merged.values())


def events_message(run_id: Any, events: Iterable[dict]) -> list[tuple[str, dict[str, Any]]]:
    """The messages announcing recorded ``RunEvent`` rows (dicts of their columns): the
    events, to the run's group; the newest superstep completed among them, to the runs list
    (``runs.progress``, paced by the ``Publisher``); and, when they raise requests,
    ``requests.changed``. Events are recorded with their checkpoints, so the superstep is
    the run's ``current_superstep`` once they are committed."""
    records = [RunEvent.record_of(row) for row in events]
    if not records:
        return []
    messages = [(run_group(run_id),
                 {"type": "run.events", "run_id": str(run_id), "events": records})]
    completed = [r["superstep"] for r in records
                 if r["type"] == "superstep_completed" and r["superstep"] is not None]
    if completed:
        messages += progress_message({str(run_id): completed[-1]})
    if any(r["type"] == "request_info" for r in records):
        messages += requests_message()
    return messages


def progress_message(supersteps: dict[str, int]) -> list[tuple[str, dict[str, Any]]]:
    """The supersteps runs reached (run id -> superstep), for the runs list."""
    return [(RUNS_GROUP, {"type": "runs.progress", "supersteps": dict(supersteps)})]


def requests_message() -> list[tuple[str, dict[str, Any]]]:
    """The hint that the open requests may have changed."""
    return [(REQUESTS_GROUP, {"type": "requests.changed"})]


def status_message(run_id: Any, status: str) -> list[tuple[str, dict[str, Any]]]:
    """A run's new status, to its own group and the runs list; and, unless a worker just
    took the run (which opens or closes no request), the hint to the requests group: a run
    that waits has raised requests, and any other move may have answered or cancelled
    some."""
    message = {"type": "run.status", "run_id": str(run_id), "status": str(status)}
    messages = [(run_group(run_id), message), (RUNS_GROUP, message)]
    if str(status) != RunStatus.RUNNING:
        messages += requests_message()
    return messages


def publish_status(run_id: Any, status: str) -> None:
    send(status_message(run_id, status))
