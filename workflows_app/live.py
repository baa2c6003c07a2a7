"""Pushing recorded events to the browser: every event goes to the run's channel group,
and status changes to the group of the runs list. Best effort: the events are already in
the database, and a page that missed some asks for them by ``seq``."""

from __future__ import annotations

import logging
from typing import Any, Iterable

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer

from .conf import stepstone_settings

logger = logging.getLogger(__name__)

RUNS_GROUP = "runs"


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


def events_message(run_id: Any, events: Iterable[Any]) -> list[tuple[str, dict[str, Any]]]:
    records = [{"seq": e.seq, "type": e.type, "superstep": e.superstep,
                "executor_id": e.executor_id, "data": e.data,
                "created_at": e.created_at.isoformat()} for e in events]
    if not records:
        return []
    return [(run_group(run_id), {"type": "run.events", "run_id": str(run_id), "events": records})]


def status_message(run_id: Any, status: str) -> list[tuple[str, dict[str, Any]]]:
    return [(RUNS_GROUP, {"type": "run.status", "run_id": str(run_id), "status": str(status)})]


def publish_status(run_id: Any, status: str) -> None:
    send(status_message(run_id, status))
