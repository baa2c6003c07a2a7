"""The live-update websockets, driven through the real ASGI application (origin check,
session authentication, routing) and the real channel layer the settings configure:
channels-lite on the "channels" database (embedded default) or channels_redis (REDIS_URL)."""

from __future__ import annotations

import asyncio

import pytest
from asgiref.sync import sync_to_async
from channels.layers import channel_layers, get_channel_layer
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from dashboard.consumers import REPLAY_BATCH
from stepstone.asgi import application
from workflows_app import live
from workflows_app.models import RegisteredWorkflow, Run, RunEvent

# Transactional: the consumers read the database from another thread than the test's.
# "__all__": the channel layer's own database too, when it is the embedded one.
pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

ORIGIN = b"http://localhost"
HOST = b"localhost"  # what a browser sends with ORIGIN: the page's own host
WAIT = 3  # seconds a live message may take (the layer polls its database)


@pytest.fixture(autouse=True)
async def fresh_layer():
    """A channel layer for this test's event loop, holding no group from earlier tests (a
    Redis server outlives them); its poller stops with the test."""
    channel_layers.backends.pop("default", None)
    layer = get_channel_layer()
    if hasattr(layer, "flush"):
        await layer.flush()
    yield
    await close_layer(channel_layers.backends.pop("default", None))


async def close_layer(layer) -> None:
    """Stop the layer's poller (channels-lite) or close its connections (channels_redis)."""
    if hasattr(layer, "close"):
        await layer.close()
    elif hasattr(layer, "close_pools"):
        # channels_redis keeps connection pools per event loop. A test that drives the real
        # publisher thread also leaves pools of that thread's loop, which only that loop
        # could close: close this loop's own.
        own = layer._layers.get(asyncio.get_running_loop())
        if own is not None:
            await own.flush()


async def group_size(group: str) -> int:
    """How many channels belong to ``group`` in the configured layer."""
    layer = get_channel_layer()
    if hasattr(layer, "_group_key"):  # channels_redis: a sorted set per group
        connection = layer.connection(layer.consistent_hash(group))
        return await connection.zcard(layer._group_key(group))
    from channels_lite.models import GroupMembership  # channels-lite: rows
    return await GroupMembership.objects.filter(group_name=group).acount()


def session_cookie(user) -> str:
    client = Client()
    client.force_login(user)
    return client.cookies["sessionid"].value


@pytest.fixture
def viewer(make_user):
    # The permission itself, not the group: these tests flush the database, groups and all.
    user = make_user("viewer")
    user.user_permissions.add(Permission.objects.get(
        content_type__app_label="workflows_app", codename="view_run"))
    return session_cookie(user)


@pytest.fixture
def stranger(make_user):
    """Logged in, but without the permission to view runs."""
    return session_cookie(make_user("stranger"))


@pytest.fixture
def superuser(make_user):
    return session_cookie(make_user("root", superuser=True))


@pytest.fixture
def run():
    workflow = RegisteredWorkflow.objects.create(name="demo", title="Demo",
                                                 graph_signature_hash="x")
    return Run.objects.create(workflow=workflow, status="running", current_superstep=2)


def add_events(run, seqs):
    RunEvent.objects.bulk_create(
        RunEvent(run=run, seq=seq, type="executor_completed", superstep=seq,
                 executor_id="step", data={"n": seq}, created_at=timezone.now())
        for seq in seqs)


def socket(path: str, cookie: str | None = None, origin: bytes | None = ORIGIN,
           host: bytes | None = HOST):
    headers = [] if host is None else [(b"host", host)]
    if cookie is not None:
        headers.append((b"cookie", f"sessionid={cookie}".encode()))
    if origin is not None:
        headers.append((b"origin", origin))
    return WebsocketCommunicator(application, path, headers=headers)


async def refusal(communicator) -> int:
    """The close code a refused socket gets (accepted then closed, or denied outright)."""
    connected, code = await communicator.connect()
    if connected:
        message = await communicator.receive_output()
        assert message["type"] == "websocket.close"
        code = message["code"]
    await communicator.disconnect()
    return code


async def publish_events(run, records):
    """Send events the way a worker does (live.events_message + live.asend)."""
    rows = [{"seq": seq, "type": "executor_completed", "superstep": seq, "branch": 0,
             "executor_id": "step", "data": {"n": seq}, "created_at": timezone.now()}
            for seq in records]
    await live.asend(live.events_message(run.pk, rows))


def seqs(message) -> list[int]:
    assert message["type"] == "events", message
    return [event["seq"] for event in message["events"]]


# --------------------------------------------------------------------------- refusals
async def test_anonymous_is_refused(run):
    assert await refusal(socket("/ws/runs/")) == 4403
    assert await refusal(socket(f"/ws/runs/{run.pk}/")) == 4403


async def test_foreign_or_missing_origin_is_refused(viewer, run):
    for path in ("/ws/runs/", f"/ws/runs/{run.pk}/"):
        for origin in (b"http://evil.example", b"http://localhost.evil.example", None):
            communicator = socket(path, viewer, origin=origin)
            # Denied in the handshake, before any consumer runs (daphne answers HTTP 403).
            assert (await communicator.connect())[0] is False, (path, origin)
            await communicator.disconnect()
        communicator = socket(path, viewer, origin=b"http://127.0.0.1:8000",
                              host=b"127.0.0.1:8000")
        assert (await communicator.connect())[0] is True
        await communicator.disconnect()


async def test_user_without_view_permission_is_refused(stranger, run):
    assert await refusal(socket("/ws/runs/", stranger)) == 4403
    assert await refusal(socket(f"/ws/runs/{run.pk}/", stranger)) == 4403


async def test_unknown_run_is_refused(viewer):
    assert await refusal(socket("/ws/runs/00000000-0000-0000-0000-000000000000/", viewer)) \
        == 4404


async def test_superuser_needs_no_explicit_permission(superuser, run):
    communicator = socket(f"/ws/runs/{run.pk}/", superuser)
    assert (await communicator.connect())[0]
    assert await communicator.receive_json_from() == {
        "type": "status", "run_id": str(run.pk), "status": "running", "superstep": 2}
    await communicator.disconnect()


# --------------------------------------------------------------------------- run events
async def test_replay_then_live_without_duplicates(viewer, run):
    await sync_to_async(add_events)(run, [1, 2, 3])
    communicator = socket(f"/ws/runs/{run.pk}/?after=1", viewer)
    assert (await communicator.connect())[0]
    replayed = await communicator.receive_json_from()
    assert seqs(replayed) == [2, 3]
    assert replayed["events"][0] == {
        "seq": 2, "type": "executor_completed", "superstep": 2, "branch": 0,
        "executor_id": "step", "data": {"n": 2},
        "created_at": replayed["events"][0]["created_at"]}
    assert await communicator.receive_json_from() == {
        "type": "status", "run_id": str(run.pk), "status": "running", "superstep": 2}

    # The worker commits 4 and publishes 3 and 4 (3 was already replayed): only 4 is sent.
    await sync_to_async(add_events)(run, [4])
    await publish_events(run, [3, 4])
    assert seqs(await communicator.receive_json_from(WAIT)) == [4]
    # The same message again (e.g. a redelivery): nothing new, nothing sent.
    await publish_events(run, [3, 4])
    assert await communicator.receive_nothing(0.5)
    # Another run's events never reach this socket.
    other = await sync_to_async(Run.objects.create)(workflow_id=run.workflow_id)
    await live.asend([(live.run_group(run.pk), live.events_message(other.pk, [
        {"seq": 5, "type": "x", "superstep": 1, "branch": 0, "executor_id": "",
         "data": None, "created_at": timezone.now()}])[0][1])])
    assert await communicator.receive_nothing(0.5)
    await communicator.disconnect()


async def test_a_live_message_that_skips_events_is_completed_from_the_database(viewer, run):
    await sync_to_async(add_events)(run, [1, 2, 3, 4])
    communicator = socket(f"/ws/runs/{run.pk}/?after=2", viewer)
    assert (await communicator.connect())[0]
    assert seqs(await communicator.receive_json_from()) == [3, 4]
    assert (await communicator.receive_json_from())["type"] == "status"
    await sync_to_async(add_events)(run, [5, 6, 7])
    await publish_events(run, [7])  # the message carrying 5 and 6 was lost
    assert seqs(await communicator.receive_json_from(WAIT)) == [5, 6, 7]
    await communicator.disconnect()


async def test_replay_request_at_any_time_in_batches(viewer, run):
    await sync_to_async(add_events)(run, range(1, 2 * REPLAY_BATCH + 101))
    communicator = socket(f"/ws/runs/{run.pk}/", viewer)
    assert (await communicator.connect())[0]
    # No ?after: no replay, the status only.
    assert (await communicator.receive_json_from())["type"] == "status"

    await communicator.send_json_to({"type": "replay", "after": 0})
    batches = [seqs(await communicator.receive_json_from()) for _ in range(3)]
    assert [len(b) for b in batches] == [REPLAY_BATCH, REPLAY_BATCH, 100]
    assert sum(batches, []) == list(range(1, 2 * REPLAY_BATCH + 101))
    assert (await communicator.receive_json_from())["type"] == "status"

    # A reconnecting page's request from where it is: only what it lacks.
    await communicator.send_json_to({"type": "replay", "after": 2 * REPLAY_BATCH + 98})
    assert seqs(await communicator.receive_json_from()) == [2 * REPLAY_BATCH + 99,
                                                             2 * REPLAY_BATCH + 100]
    assert (await communicator.receive_json_from())["type"] == "status"

    await communicator.send_json_to({"type": "replay", "after": -1})
    assert (await communicator.receive_json_from())["type"] == "error"
    await communicator.send_to(text_data="not json")
    assert (await communicator.receive_json_from())["type"] == "error"
    await communicator.disconnect()


async def test_run_socket_follows_its_runs_status(viewer, run):
    communicator = socket(f"/ws/runs/{run.pk}/?after=0", viewer)
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from())["status"] == "running"

    await sync_to_async(Run.objects.filter(pk=run.pk).update)(status="completed",
                                                               current_superstep=5)
    await live.asend(live.status_message(run.pk, "completed"))
    assert await communicator.receive_json_from(WAIT) == {
        "type": "status", "run_id": str(run.pk), "status": "completed", "superstep": 5}
    # Another run's status change is not this socket's business: it does not even reach it,
    # since a run page is in its run's group only (not in the group of every run).
    await live.asend(live.status_message("00000000-0000-0000-0000-000000000000", "failed"))
    assert await communicator.receive_nothing(0.5)
    assert await group_size(live.RUNS_GROUP) == 0
    await communicator.disconnect()


async def test_events_whose_message_was_lost_arrive_with_the_next_status(viewer, run):
    communicator = socket(f"/ws/runs/{run.pk}/?after=0", viewer)
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from())["type"] == "status"
    # The run's last events are committed but their live message never comes (a full
    # channel dropped it); the status change that follows them does.
    await sync_to_async(add_events)(run, [1, 2, 3])
    await sync_to_async(Run.objects.filter(pk=run.pk).update)(status="completed")
    await live.asend(live.status_message(run.pk, "completed"))
    assert seqs(await communicator.receive_json_from(WAIT)) == [1, 2, 3]
    assert (await communicator.receive_json_from(WAIT))["status"] == "completed"
    await communicator.disconnect()


# --------------------------------------------------------------------------- runs list
async def test_runs_socket_forwards_status_changes(viewer, run):
    communicator = socket("/ws/runs/", viewer)
    assert (await communicator.connect())[0]
    await live.asend(live.status_message(run.pk, "waiting"))
    assert await communicator.receive_json_from(WAIT) == {
        "type": "status", "run_id": str(run.pk), "status": "waiting"}
    await communicator.disconnect()
    # Gone from the group once disconnected.
    assert await group_size(live.RUNS_GROUP) == 0


async def test_memberships_are_renewed_before_they_expire(viewer, run, settings):
    layers = {"default": {**settings.CHANNEL_LAYERS["default"]}}
    layers["default"]["CONFIG"] = {**layers["default"]["CONFIG"], "group_expiry": 1}
    settings.CHANNEL_LAYERS = layers  # a new layer: memberships last a second
    communicator = socket("/ws/runs/", viewer)
    assert (await communicator.connect())[0]
    await asyncio.sleep(1.5)
    await live.asend(live.status_message(run.pk, "waiting"))
    assert (await communicator.receive_json_from(WAIT))["status"] == "waiting"
    await communicator.disconnect()
    await close_layer(get_channel_layer())  # the settings fixture forgets it before fresh_layer


# --------------------------------------------------------------------------- what pages send
async def test_what_the_browser_sends_wrong_gets_an_error_naming_it(viewer, run):
    await sync_to_async(add_events)(run, range(1, 4))
    communicator = socket(f"/ws/runs/{run.pk}/", viewer)
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from())["type"] == "status"
    for text, error in [("not json", "expected a JSON object"),
                        ("[1, 2]", "expected a JSON object"),
                        ('{"type": "dance"}', "unknown message type 'dance'"),
                        ('{"no": "type"}', "unknown message type None"),
                        ('{"type": "replay", "after": "x"}', "after must be a non-negative integer"),
                        ('{"type": "replay", "after": -1}', "after must be a non-negative integer")]:
        await communicator.send_to(text_data=text)
        assert await communicator.receive_json_from() == {"type": "error", "error": error}
    # A replay without "after" starts from the first event.
    await communicator.send_json_to({"type": "replay"})
    assert seqs(await communicator.receive_json_from()) == [1, 2, 3]
    assert (await communicator.receive_json_from())["type"] == "status"
    await communicator.disconnect()


async def test_the_runs_socket_answers_any_message_with_an_error(viewer):
    communicator = socket("/ws/runs/", viewer)
    assert (await communicator.connect())[0]
    await communicator.send_json_to({"type": "replay", "after": 0})
    assert await communicator.receive_json_from() == {
        "type": "error", "error": "unknown message type 'replay'"}
    await communicator.disconnect()


async def test_a_bad_after_in_the_url_is_refused_and_no_replay_happens(viewer, run):
    await sync_to_async(add_events)(run, range(1, 3))
    communicator = socket(f"/ws/runs/{run.pk}/?after=abc", viewer)
    assert (await communicator.connect())[0]
    assert await communicator.receive_json_from() == {
        "type": "error", "error": "after must be a non-negative integer"}
    assert (await communicator.receive_json_from())["type"] == "status"  # and no events
    assert await communicator.receive_nothing(0.3)
    await communicator.disconnect()


async def test_live_events_start_after_the_mark_and_fill_gaps_up_to_the_newest(viewer, run):
    await sync_to_async(add_events)(run, range(1, 8))
    communicator = socket(f"/ws/runs/{run.pk}/?after=2", viewer)
    assert (await communicator.connect())[0]
    assert seqs(await communicator.receive_json_from()) == [3, 4, 5, 6, 7]
    assert (await communicator.receive_json_from())["type"] == "status"
    await sync_to_async(add_events)(run, range(8, 12))
    await publish_events(run, [9])  # 8 was lost on the way; 10 and 11 are not due yet
    assert seqs(await communicator.receive_json_from(WAIT)) == [8, 9]
    await communicator.disconnect()


async def test_a_page_without_a_mark_takes_every_live_event(viewer, run):
    communicator = socket(f"/ws/runs/{run.pk}/", viewer)
    assert (await communicator.connect())[0]
    assert (await communicator.receive_json_from())["type"] == "status"
    await publish_events(run, [1, 2])
    assert seqs(await communicator.receive_json_from(WAIT)) == [1, 2]
    await communicator.disconnect()


async def test_status_is_sent_again_after_a_replay_and_a_deleted_run_closes_the_page(viewer,
                                                                                   run):
    communicator = socket(f"/ws/runs/{run.pk}/", viewer)
    assert (await communicator.connect())[0]
    first = await communicator.receive_json_from()
    assert first == {"type": "status", "run_id": str(run.pk), "status": "running",
                     "superstep": 2}
    await communicator.send_json_to({"type": "replay", "after": 0})
    assert await communicator.receive_json_from() == first  # a replay ends with it
    await live.asend(live.status_message(run.pk, "running"))  # unchanged: nothing sent
    assert await communicator.receive_nothing(0.5)
    await sync_to_async(Run.objects.filter(pk=run.pk).delete)()
    await live.asend(live.status_message(run.pk, "running"))
    assert (await communicator.receive_output(WAIT)) == {"type": "websocket.close",
                                                          "code": 4404}


async def test_a_membership_that_cannot_be_renewed_is_logged_and_tried_again(
        viewer, run, settings, caplog):
    layers = {"default": {**settings.CHANNEL_LAYERS["default"]}}
    layers["default"]["CONFIG"] = {**layers["default"]["CONFIG"], "group_expiry": 1}
    settings.CHANNEL_LAYERS = layers
    layer = get_channel_layer()
    joins = []
    original = layer.group_add

    async def flaky_add(group, channel):
        if group == live.RUNS_GROUP:  # (the socket is in its session's group too)
            joins.append(group)
            if len(joins) == 2:  # the first renewal fails
                raise ConnectionError("layer away")
        await original(group, channel)
    layer.group_add = flaky_add
    communicator = socket("/ws/runs/", viewer)
    assert (await communicator.connect())[0]
    await asyncio.sleep(0.65)  # renewals every group_expiry / 4: two by now
    await communicator.disconnect()
    assert len(joins) >= 3 and set(joins) == {live.RUNS_GROUP}
    failures = [r for r in caplog.records if r.getMessage().startswith("could not renew")]
    assert len(failures) == 1 and failures[0].exc_info is not None
    assert failures[0].args[1:] == (live.RUNS_GROUP,) and failures[0].args[0]
    await close_layer(layer)
