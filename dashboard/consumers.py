"""Live updates of the dashboard over websockets.

``/ws/runs/`` (``RunsConsumer``) streams the status changes and progress of all runs;
``/ws/runs/<run_id>/`` (``RunEventsConsumer``) streams one run's events and status (from the
run's own group only); ``/ws/requests/`` (``RequestsConsumer``) tells every page how many
requests are open (the navigation's count, the Requests inbox).

Messages sent to the browser (JSON text frames):

- ``{"type": "status", "run_id": ..., "status": ...}`` on ``/ws/runs/``;
- ``{"type": "progress", "supersteps": {<run_id>: <superstep>, ...}}`` on ``/ws/runs/``:
  the superstep runs reached (their ``current_superstep`` once committed). A worker process
  sends at most one every ``workflows_app.live.PROGRESS_SECONDS`` (0.25 s), covering every
  run it advanced meanwhile, plus one with each status change of a run it drives; a run
  page's socket never carries them;
- ``{"type": "requests", "open": <count>, "digest": ...}`` on ``/ws/requests/``: once on
  connecting, then whenever the set of open requests changed (``digest`` names the set:
  equal digests, same requests), at most one every ``REQUESTS_SECONDS`` (1 s);
- ``{"type": "events", "events": [{"seq", "type", "superstep", "executor_id", "data",
  "created_at"}, ...]}`` on ``/ws/runs/<run_id>/``, in ``seq`` order, at most
  ``REPLAY_BATCH`` events a message, never an event twice on one connection;
- ``{"type": "status", "run_id": ..., "status": ..., "superstep": ...}`` on
  ``/ws/runs/<run_id>/``: the run's row as read from the database;
- ``{"type": "error", "error": ...}`` for a message from the browser that is not understood:
  not a JSON object, nested deeper than Python parses, over ``MAX_MESSAGE_BYTES`` (64 KiB),
  or of an unknown type.

A run page asks for the events after the last ``seq`` it rendered, with ``?after=<seq>`` in
the URL and/or by sending ``{"type": "replay", "after": <seq>}`` at any time (e.g. on
reconnecting); the answer is those events from the database, then the run's status.

Refusals arrive as close codes: 4403 (not logged in, or no ``workflows_app.view_run``) and
4404 (no such run). The socket is accepted first and closed at once, because a close before
the accept becomes an HTTP 403 of the handshake, and the browser sees only code 1006: with
the code, a page knows not to reconnect. An open socket is closed with 4403 too when its
session logs out (at once) or expires, or its user loses the permission (within
``socket_access.RECHECK_SECONDS``); with 1011 when a handler failed (logged here, never
shown). A foreign Origin (``dashboard.origin``) and a path that is none of these are refused
by the handshake itself.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import reprlib
from typing import Any
from urllib.parse import parse_qs

from channels.db import database_sync_to_async
from channels.exceptions import StopConsumer
from channels.generic.websocket import AsyncJsonWebsocketConsumer, AsyncWebsocketConsumer

from workflows_app.live import REQUESTS_GROUP, RUNS_GROUP, run_group
from workflows_app.models import PendingRequest, Run, RunEvent
from workflows_app.querysets import parse_seq

from .socket_access import RECHECK_SECONDS, session_group, session_viewer

logger = logging.getLogger(__name__)

CLOSE_FORBIDDEN = 4403
CLOSE_NOT_FOUND = 4404
CLOSE_INTERNAL_ERROR = 1011
# The browser's messages are a few dozen bytes ({"type": "replay", "after": 12}); a larger
# one is answered with an error, unread.
MAX_MESSAGE_BYTES = 64 * 1024
REPLAY_BATCH = 500  # events per message, replayed or live
# The open requests are read at most this often per socket: a burst of runs moving (sixty
# started at once) costs each page one read a second, not one per run.
REQUESTS_SECONDS = 1.0


class _LiveConsumer(AsyncJsonWebsocketConsumer):
    """What the consumers share: admitting a session's viewer and closing when that ends,
    joining groups, tolerant decoding of the browser's messages, and no exception let out.

    ``admit()`` lets a socket in when its session's user may view runs, and keeps checking
    (``dashboard.socket_access``): the socket closes with 4403 at once when the session logs
    out, and within ``recheck_seconds`` (or before the next replay) when the session expired
    or was deleted, or its user lost the permission or was deactivated.

    An exception in a handler is logged here (with its traceback, for the operator) and the
    socket closed with 1011, which a page reconnects after; the browser never sees more than
    that code."""

    recheck_seconds = RECHECK_SECONDS

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.background: list[asyncio.Task] = []  # what runs beside the socket
        self.renewal: asyncio.Task | None = None  # keeps the memberships from expiring
        self.session_key: str | None = None
        self.viewer_pk: Any = None
        self.closing = False  # closed from this side: nothing more is sent

    # -- admission -------------------------------------------------------------------------
    async def admit(self) -> bool:
        """Whether this socket's session signs in a user who may view runs; refused with
        4403 when not. The session's group is joined before its user is read, so a logout
        that happens meanwhile still reaches this socket."""
        self.session_key = getattr(self.scope.get("session"), "session_key", None)
        if self.session_key:
            await self.join(session_group(self.session_key))
        viewer = await database_sync_to_async(session_viewer)(self.session_key)
        if viewer is None:
            await self.refuse(CLOSE_FORBIDDEN)
            return False
        self.viewer_pk = viewer.pk
        self.start(self.recheck_access())
        return True

    async def still_admitted(self) -> bool:
        """Whether the session and its user still may see runs (``admit``'s rule, read
        afresh); closes the socket with 4403 when not."""
        viewer = await database_sync_to_async(session_viewer)(self.session_key)
        if viewer is not None and viewer.pk == self.viewer_pk:
            return True
        await self.close(code=CLOSE_FORBIDDEN)
        return False

    async def recheck_access(self) -> None:
        """Every ``recheck_seconds``, ``still_admitted``: what ends access without a logout
        (an expiry, a permission taken away) has no signal of its own to close the socket
        with (``dashboard.socket_access`` says which do not)."""
        while True:
            await asyncio.sleep(self.recheck_seconds)
            try:
                if not await self.still_admitted():
                    return
            except Exception:  # the rule could not be read: closed rather than trusted
                logger.warning("could not re-check the access of %s", self.channel_name,
                               exc_info=True)
                await self.close(code=CLOSE_INTERNAL_ERROR)
                return

    async def session_ended(self, message: dict[str, Any]) -> None:
        """The session logged out (``socket_access.close_session_sockets``)."""
        await self.close(code=CLOSE_FORBIDDEN)

    async def refuse(self, code: int) -> None:
        await self.accept()
        await self.close(code=code)

    # -- groups ----------------------------------------------------------------------------
    async def join(self, group: str) -> None:
        # Left again by AsyncWebsocketConsumer.websocket_disconnect, which discards self.groups.
        await self.channel_layer.group_add(group, self.channel_name)
        self.groups.append(group)
        if self.renewal is None:
            self.renewal = self.start(self.renew_groups())

    async def renew_groups(self) -> None:
        """Join the groups again before the layer forgets the membership (group_expiry, a
        day by default): a page left open for days keeps receiving."""
        period = max(getattr(self.channel_layer, "group_expiry", 86400) / 4, 0.1)
        while True:
            await asyncio.sleep(period)
            for group in list(self.groups):
                try:
                    await self.channel_layer.group_add(group, self.channel_name)
                except Exception:  # try again next period
                    logger.warning("could not renew %s in %s", self.channel_name, group,
                                   exc_info=True)

    # -- the socket's life -----------------------------------------------------------------
    def start(self, work) -> asyncio.Task:
        """Run ``work`` beside the socket, until the socket ends."""
        task = asyncio.ensure_future(work)
        self.background.append(task)
        return task

    def stop_background(self) -> None:
        for task in self.background:
            task.cancel()
        self.background.clear()
        self.renewal = None

    async def __call__(self, scope, receive, send):
        try:
            await super().__call__(scope, receive, send)
        finally:  # however the consumer ends
            self.stop_background()

    async def dispatch(self, message):
        try:
            await super().dispatch(message)
        except StopConsumer:
            raise
        except Exception:
            logger.exception("websocket %s failed on %r", self.scope.get("path"),
                             message.get("type"))
            if message.get("type") == "websocket.disconnect":
                raise StopConsumer from None  # gone already: nothing to close
            await self.close(code=CLOSE_INTERNAL_ERROR)

    async def websocket_disconnect(self, message):
        self.stop_background()  # before the groups are left, so none is joined again
        await super().websocket_disconnect(message)

    async def send(self, text_data=None, bytes_data=None, close=False):
        if not self.closing:
            await super().send(text_data, bytes_data, close)

    async def close(self, code=None, reason=None):
        if not self.closing:
            self.closing = True
            await super().close(code, reason)

    # -- from the browser ------------------------------------------------------------------
    async def receive(self, text_data=None, bytes_data=None, **kwargs):
        if text_data is None:
            await self.send_error("expected a JSON text message")
            return
        if (len(text_data) > MAX_MESSAGE_BYTES
                or len(text_data.encode("utf-8", "replace")) > MAX_MESSAGE_BYTES):
            await self.send_error(f"message too large (at most {MAX_MESSAGE_BYTES} bytes)")
            return
        try:
            content = json.loads(text_data)
        except RecursionError:
            await self.send_error("message nested too deeply")
            return
        except ValueError:  # not JSON, or an integer of more digits than Python parses
            content = None
        if not isinstance(content, dict):
            await self.send_error("expected a JSON object")
            return
        await self.receive_json(content, **kwargs)

    async def receive_json(self, content, **kwargs):
        await self.send_error(f"unknown message type {reprlib.repr(content.get('type'))}")

    async def send_error(self, error: str) -> None:
        await self.send_json({"type": "error", "error": error})


class RunsConsumer(_LiveConsumer):
    """``/ws/runs/``: every run's status changes and progress, as the runs list shows
    them."""

    async def connect(self) -> None:
        if not await self.admit():
            return
        await self.join(RUNS_GROUP)
        await self.accept()

    async def run_status(self, message: dict[str, Any]) -> None:
        await self.send_json({"type": "status", "run_id": message["run_id"],
                              "status": message["status"]})

    async def runs_progress(self, message: dict[str, Any]) -> None:
        # Paced by the workers' publishers already (workflows_app.live.Publisher).
        await self.send_json({"type": "progress", "supersteps": message["supersteps"]})


class RequestsConsumer(_LiveConsumer):
    """``/ws/requests/``: how many requests are open, for the navigation of every page.

    The group's ``requests.changed`` messages are hints: the socket reads the open requests
    itself, at most once every ``REQUESTS_SECONDS`` (a hint within that time schedules one
    read at its end), and sends what it read only when the set changed since the last send.
    """

    async def connect(self) -> None:
        if not await self.admit():
            return
        self.sent_digest: str | None = None
        self.read_at = float("-inf")  # the loop's clock
        self.pending: asyncio.Task | None = None
        await self.join(REQUESTS_GROUP)
        await self.accept()
        await self.send_open_requests()  # what changed while the page loaded or was away

    async def requests_changed(self, message: dict[str, Any]) -> None:
        if self.pending is None:
            wait = self.read_at + REQUESTS_SECONDS - asyncio.get_running_loop().time()
            self.pending = asyncio.ensure_future(self.send_open_requests(max(wait, 0)))

    async def send_open_requests(self, after: float = 0) -> None:
        if after:
            await asyncio.sleep(after)
        self.pending = None  # a hint from now on asks for another read
        self.read_at = asyncio.get_running_loop().time()
        count, digest = await self.read_open_requests()
        if digest != self.sent_digest:
            self.sent_digest = digest
            await self.send_json({"type": "requests", "open": count, "digest": digest})

    @database_sync_to_async
    def read_open_requests(self) -> tuple[int, str]:
        """How many requests are open, and a digest of which (their ids, in one read)."""
        ids = sorted(str(pk) for pk in PendingRequest.objects.open().values_list("pk", flat=True))
        return len(ids), hashlib.blake2b(",".join(ids).encode(), digest_size=8).hexdigest()

    def stop_background(self) -> None:
        # Called however the socket ends: a read scheduled for later has nobody to tell.
        super().stop_background()
        if getattr(self, "pending", None) is not None:
            self.pending.cancel()
            self.pending = None


class RunEventsConsumer(_LiveConsumer):
    """``/ws/runs/<run_id>/``: one run's events (replayed from the database on request, then
    live) and its status.

    ``sent_seq`` is the highest ``seq`` sent on this connection (None until the page said
    where it is or an event was sent): live events at or below it are dropped, so replay and
    live may overlap without duplicates. The groups are joined before the database is read,
    so an event committed after the read still arrives live. Events are committed before they
    are published, so a live message that skips ``seq`` numbers (one lost or overtaken on the
    way) is completed from the database: the page never sees a hole.
    """

    async def connect(self) -> None:
        self.run_id = str(self.scope["url_route"]["kwargs"]["run_id"])
        self.sent_seq: int | None = None
        self.sent_status: tuple[str, int] | None = None
        if not await self.admit():
            return
        if not await self.run_exists():
            await self.refuse(CLOSE_NOT_FOUND)
            return
        # The run's group carries its events and its status changes; not the runs group,
        # whose every message would reach every open run page.
        await self.join(run_group(self.run_id))
        await self.accept()
        query = parse_qs(self.scope.get("query_string", b"").decode("latin-1"))
        if "after" in query:
            after = parse_seq(query["after"][-1])
            if after is None:
                await self.send_error("after must be a non-negative integer")
            else:
                await self.replay(after)
                return
        await self.send_status()

    @database_sync_to_async
    def run_exists(self) -> bool:
        return Run.objects.filter(pk=self.run_id).exists()

    # -- from the browser ------------------------------------------------------------------
    async def receive_json(self, content, **kwargs):
        if content.get("type") != "replay":
            await super().receive_json(content, **kwargs)
            return
        after = parse_seq(content.get("after", 0))
        if after is None:
            await self.send_error("after must be a non-negative integer")
            return
        # What the page asks for is read from the database: by someone who still may.
        if await self.still_admitted():
            await self.replay(after)

    async def replay(self, after: int) -> None:
        """Send the events after ``after`` from the database, then the run's status. The page
        says it has everything up to ``after``: that becomes the mark to send from."""
        self.sent_seq = after
        while True:
            events = await self.read_events(self.sent_seq)
            await self.send_events(events)
            if len(events) < REPLAY_BATCH:
                break
        self.sent_status = None  # a replay always ends with the status
        await self.send_status()

    # -- from the channel layer ------------------------------------------------------------
    async def run_events(self, message: dict[str, Any]) -> None:
        if message.get("run_id") != self.run_id:
            return
        floor = self.sent_seq if self.sent_seq is not None else 0
        fresh = {e["seq"]: e for e in message["events"] if e["seq"] > floor}
        if not fresh:
            return
        last = max(fresh)
        if self.sent_seq is not None and len(fresh) != last - self.sent_seq:
            # Some events between the mark and this message never arrived: the database
            # has them (they are committed before they are published).
            for row in await self.read_events(self.sent_seq, upto=last):
                fresh.setdefault(row["seq"], row)
        await self.send_events([fresh[seq] for seq in sorted(fresh)])

    async def run_status(self, message: dict[str, Any]) -> None:
        if message.get("run_id") != self.run_id:
            return
        # A status change follows the events recorded before it; if their message was lost
        # (a full channel drops messages), no later one would reveal the gap: read them now.
        if self.sent_seq is not None:
            await self.send_events(await self.read_events(self.sent_seq))
        # Read the row rather than trust the message: a message queued before this
        # connection's first read may be older than what the page was already sent.
        await self.send_status()

    # -- helpers ---------------------------------------------------------------------------
    async def send_events(self, events: list[dict[str, Any]]) -> None:
        for start in range(0, len(events), REPLAY_BATCH):
            batch = events[start:start + REPLAY_BATCH]
            await self.send_json({"type": "events", "events": batch})
            self.sent_seq = batch[-1]["seq"]

    async def send_status(self) -> None:
        row = await self.read_status()
        if row is None:  # deleted while watched
            await self.close(code=CLOSE_NOT_FOUND)
            return
        if row != self.sent_status:
            self.sent_status = row
            await self.send_json({"type": "status", "run_id": self.run_id,
                                  "status": row[0], "superstep": row[1]})

    @database_sync_to_async
    def read_events(self, after: int, upto: int | None = None) -> list[dict[str, Any]]:
        """Events after ``after`` up to ``upto``; with no ``upto``, one batch of them."""
        events = RunEvent.objects.filter(run_id=self.run_id).after(after, upto)
        return (events if upto is not None else events[:REPLAY_BATCH]).records()

    @database_sync_to_async
    def read_status(self) -> tuple[str, int] | None:
        return Run.objects.filter(pk=self.run_id).values_list(
            "status", "current_superstep").first()


class UnroutedConsumer(AsyncWebsocketConsumer):
    """Any other websocket path (``dashboard.routing``'s last route): refused at the
    handshake, where the router alone would fail with a server error."""

    async def connect(self) -> None:
        await self.close()
