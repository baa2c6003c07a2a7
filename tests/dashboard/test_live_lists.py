"""The live lists' messages: the runs list's progress (paced by the worker's publisher) and
the open-request count every page follows (``/ws/requests/``, read at most once a second),
through the real ASGI application and channel layer, as in test_consumers.py."""

from __future__ import annotations

import asyncio
import math
import time

import pytest
from asgiref.sync import sync_to_async
from django.utils import timezone

from dashboard.consumers import REQUESTS_SECONDS
from tests.dashboard.test_consumers import (WAIT, fresh_layer, group_size, run, socket,  # noqa: F401
                                            stranger, viewer)
from workflows_app import live
from workflows_app.models import PendingRequest, RunEvent

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")


def event_row(seq: int, type: str, superstep: int, **columns) -> dict:
    """A ``RunEvent`` row as a worker commits it (every column a record reads)."""
    row = {field: 0 for field in RunEvent.RECORD_FIELDS}
    row.update({"seq": seq, "type": type, "superstep": superstep, "executor_id": "",
                "data": None, "created_at": timezone.now(), **columns})
    return row


def completed(run_id, *supersteps, first_seq=1):
    """``RunEvent`` rows of a run completing ``supersteps``."""
    return [event_row(first_seq + i, "superstep_completed", superstep)
            for i, superstep in enumerate(supersteps)]


async def messages_until(communicator, done, timeout: float = 10) -> list[dict]:
    """Every message received until ``done(message)`` holds for one (included)."""
    received = []
    deadline = time.monotonic() + timeout
    while True:
        message = await communicator.receive_json_from(max(deadline - time.monotonic(), 0.01))
        received.append(message)
        if done(message):
            return received


def add_request(run, request_id: str, status: str = "open") -> PendingRequest:
    return PendingRequest.objects.create(run=run, request_id=request_id,
                                         source_executor_id="review", response_type={},
                                         status=status)


# --------------------------------------------------------------------------- progress
async def test_progress_reaches_the_runs_list_and_never_a_run_page(viewer, run):
    runs_list = socket("/ws/runs/", viewer)
    run_page = socket(f"/ws/runs/{run.pk}/", viewer)
    assert (await runs_list.connect())[0] and (await run_page.connect())[0]
    assert (await run_page.receive_json_from())["type"] == "status"

    await live.asend(live.events_message(run.pk, completed(run.pk, 1, 2, 3)))
    assert await runs_list.receive_json_from(WAIT) == {
        "type": "progress", "supersteps": {str(run.pk): 3}}
    events = await run_page.receive_json_from(WAIT)
    assert events["type"] == "events" and [e["superstep"] for e in events["events"]] == [1, 2, 3]
    assert await run_page.receive_nothing(0.5)  # the events only, no progress
    # Events that complete no superstep (executors at work) say nothing to the list.
    await live.asend(live.events_message(run.pk, [
        event_row(4, "executor_invoked", 4, executor_id="step")]))
    assert await runs_list.receive_nothing(0.5)
    await runs_list.disconnect()
    await run_page.disconnect()


def test_the_publisher_holds_progress_back_to_one_message_per_period():
    publisher = live.Publisher()
    run_a, run_b = "a" * 32, "b" * 32
    sent = []
    now = 100.0
    # A fast run: a superstep every 5 ms for 2 seconds, a second run now and then.
    for step in range(1, 401):
        messages = live.progress_message({run_a: step})
        if step % 50 == 0:
            messages += live.progress_message({run_b: step // 50})
        sent += publisher.pace_progress(messages, now)
        now += 0.005
    progress = [m for _, m in sent if m["type"] == "runs.progress"]
    # The first at once, then one per PROGRESS_SECONDS: 2 s make at most 1 + 2 / 0.25.
    assert 2 <= len(progress) <= 1 + math.ceil(2.0 / live.PROGRESS_SECONDS)
    assert all(group == live.RUNS_GROUP for group, _ in sent)
    assert progress[0]["supersteps"] == {run_a: 1}
    # Each carries the newest superstep of every run that moved since the previous one.
    merged = {}
    for message in progress:
        merged.update(message["supersteps"])
    assert merged[run_b] in (7, 8)
    # What is still held back goes out once due, with nothing new to send.
    rest = publisher.pace_progress([], now + live.PROGRESS_SECONDS)
    assert rest == live.progress_message({run_a: 400, run_b: 8}) or \
        rest == live.progress_message({run_a: 400})
    assert publisher.pace_progress([], now + 10) == []  # nothing left


def test_a_status_change_takes_its_runs_held_back_progress_along_first():
    publisher = live.Publisher()
    run_a, run_b = "a" * 32, "b" * 32
    assert publisher.pace_progress(live.progress_message({run_a: 1}), 0.0) == \
        live.progress_message({run_a: 1})
    assert publisher.pace_progress(live.progress_message({run_a: 5, run_b: 2}), 0.01) == []
    # The run completes within the period: its last superstep goes first, then its status;
    # the other run's progress waits for the period.
    final = live.events_message(run_a, completed(run_a, 6)) + live.status_message(run_a,
                                                                                  "completed")
    out = publisher.pace_progress(final, 0.02)
    assert out[0] == (live.RUNS_GROUP, {"type": "runs.progress", "supersteps": {run_a: 6}})
    kinds = [(group, m["type"]) for group, m in out]
    assert kinds.index((live.RUNS_GROUP, "run.status")) > 0
    assert publisher.pace_progress([], 0.3) == live.progress_message({run_b: 2})


async def test_a_fast_run_sends_the_runs_list_a_few_progress_messages_a_second(viewer, run):
    """Through the real publisher thread and channel layer: 150 supersteps committed 4 ms
    apart, then the run completes."""
    runs_list = socket("/ws/runs/", viewer)
    assert (await runs_list.connect())[0]
    publisher = live.Publisher()
    started = time.monotonic()
    for superstep in range(1, 151):
        publisher.send(live.events_message(run.pk, completed(run.pk, superstep,
                                                             first_seq=superstep)))
        await asyncio.sleep(0.004)
    publisher.send(live.status_message(run.pk, "completed"))
    received = await messages_until(runs_list, lambda m: m["type"] == "status")
    elapsed = time.monotonic() - started
    progress = [m["supersteps"][str(run.pk)] for m in received if m["type"] == "progress"]
    assert received[-1] == {"type": "status", "run_id": str(run.pk), "status": "completed"}
    # Paced: one at once, one per period after, one with the status; never one per superstep.
    assert 2 <= len(progress) <= 2 + math.ceil(elapsed / live.PROGRESS_SECONDS)
    assert progress == sorted(progress) and progress[-1] == 150  # the last, before the status
    assert await runs_list.receive_nothing(live.PROGRESS_SECONDS * 2)
    await runs_list.disconnect()


# --------------------------------------------------------------------------- open requests
async def test_the_requests_socket_says_how_many_are_open_and_follows_changes(viewer, run):
    await sync_to_async(add_request)(run, "old")
    await sync_to_async(add_request)(run, "done", status="answered")
    page = socket("/ws/requests/", viewer)
    assert (await page.connect())[0]
    first = await page.receive_json_from(WAIT)
    assert first["type"] == "requests" and first["open"] == 1 and first["digest"]
    assert await group_size(live.REQUESTS_GROUP) == 1

    # A run that starts running opens or closes no request: no hint at all.
    await live.asend(live.status_message(run.pk, "running"))
    assert await page.receive_nothing(REQUESTS_SECONDS + 0.3)
    # A hint with nothing changed sends nothing either.
    await live.asend(live.status_message(run.pk, "waiting"))
    assert await page.receive_nothing(REQUESTS_SECONDS + 0.3)

    # A request raised: a worker's events say so.
    await sync_to_async(add_request)(run, "new")
    await live.asend(live.events_message(run.pk, [
        event_row(1, "request_info", 1, executor_id="review")]))
    raised = await page.receive_json_from(WAIT)
    assert raised["open"] == 2 and raised["digest"] != first["digest"]

    # One answered and another raised at once: the count stays, the digest does not.
    await sync_to_async(PendingRequest.objects.filter(request_id="old").update)(
        status="answered")
    await sync_to_async(add_request)(run, "newer")
    await live.asend(live.status_message(run.pk, "queued"))
    swapped = await page.receive_json_from(WAIT)
    assert swapped["open"] == 2 and swapped["digest"] not in (first["digest"], raised["digest"])

    await page.disconnect()
    assert await group_size(live.REQUESTS_GROUP) == 0


async def test_the_requests_socket_reads_at_most_once_a_period(viewer, run):
    page = socket("/ws/requests/", viewer)
    assert (await page.connect())[0]
    assert (await page.receive_json_from(WAIT))["open"] == 0
    connected = time.monotonic()
    # A burst: ten runs go waiting one after another, each with a request.
    for number in range(10):
        await sync_to_async(add_request)(run, f"burst-{number}")
        await live.asend(live.status_message(run.pk, "waiting"))
    message = await page.receive_json_from(REQUESTS_SECONDS + WAIT)
    # Not before a period has passed since the read on connecting, and all ten in one.
    assert time.monotonic() - connected >= REQUESTS_SECONDS * 0.9
    assert message["open"] == 10
    assert await page.receive_nothing(REQUESTS_SECONDS + 0.3)
    await page.disconnect()


async def test_the_requests_socket_refuses_whoever_may_not_view_runs(stranger):
    page = socket("/ws/requests/", stranger)
    connected, _ = await page.connect()
    assert connected
    assert (await page.receive_output())["code"] == 4403
    assert await group_size(live.REQUESTS_GROUP) == 0
    await page.disconnect()


def test_which_moves_hint_that_requests_changed():
    def hinted(status):
        return (live.REQUESTS_GROUP, {"type": "requests.changed"}) in \
            live.status_message("r", status)
    assert not hinted("running")
    assert all(hinted(s) for s in ("queued", "waiting", "completed", "failed", "cancelled"))
    # Coalesced to one per batch, whichever runs hinted.
    batch = live.status_message("r1", "waiting") + live.status_message("r2", "cancelled")
    assert [m for m in live._coalesce(batch) if m[0] == live.REQUESTS_GROUP] == \
        live.requests_message()
