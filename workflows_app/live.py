"""Pushing recorded events to the browser: every event goes to the run's channel group,
and status changes to the run's group and to the group of the runs list (so a run page
hears only of its own run, however many runs change). Best effort: the events are already in
the database, and a page that missed some asks for them by ``seq``."""

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

logger = logging.getLogger(__name__)

RUNS_GROUP = "runs"
BATCH_SECONDS = 0.02  # a worker's messages are sent at most this late


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
            batch = [self._queue.get()]
            # Gather what arrives within a short window and send it together: a fast run
            # then costs a few sends a second instead of one per superstep.
            deadline = time.monotonic() + BATCH_SECONDS
            while (left := deadline - time.monotonic()) > 0:
                try:
                    batch.append(self._queue.get(timeout=left))
                except queue.Empty:
                    break
            loop.run_until_complete(asend(_coalesce([m for item in batch for m in item])))


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
    """One message per group: events concatenated in order, the last status of each run."""
    merged: dict[tuple, tuple[str, dict[str, Any]]] = {}
    for group, message in messages:
        key = (group, message["type"], message["run_id"])
        if key in merged and message["type"] == "run.events":
            merged[key][1]["events"].extend(message["events"])
        else:
            merged.pop(key, None)  # re-inserted last: keeps the order of first appearance
            merged[key] = (group, {**message, "events": list(message["events"])}
                           if message["type"] == "run.events" else message)
    return list(merged.values())


def events_message(run_id: Any, events: Iterable[dict]) -> list[tuple[str, dict[str, Any]]]:
    """The message carrying recorded ``RunEvent`` rows (dicts of their columns)."""
    records = [RunEvent.record_of(row) for row in events]
    if not records:
        return []
    return [(run_group(run_id), {"type": "run.events", "run_id": str(run_id), "events": records})]


def status_message(run_id: Any, status: str) -> list[tuple[str, dict[str, Any]]]:
    message = {"type": "run.status", "run_id": str(run_id), "status": str(status)}
    return [(run_group(run_id), message), (RUNS_GROUP, message)]


def publish_status(run_id: Any, status: str) -> None:
    send(status_message(run_id, status))
