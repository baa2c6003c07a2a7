"""The websockets' edges, through the real ASGI application (origin check, sessions,
routing, consumers) and channel layer, as in test_consumers.py: which pages may open a
socket (``dashboard.origin``), sockets closing when their session ends or their user may no
longer view runs (``dashboard.socket_access``), and bad paths and frames refused cleanly."""

from __future__ import annotations

import json
import logging

import pytest
from asgiref.sync import sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth.models import Group, Permission
from django.contrib.sessions.models import Session
from django.test import Client
from django.utils import timezone

from dashboard import consumers
from dashboard.consumers import MAX_MESSAGE_BYTES
from dashboard.socket_access import session_group
from stepstone.asgi import application
from tests.conftest import PASSWORD
from tests.dashboard.test_consumers import (WAIT, add_events, fresh_layer, group_size,  # noqa: F401
                                            refusal, run, seqs, socket, viewer)

pytestmark = pytest.mark.django_db(transaction=True, databases="__all__")

SITE = b"127.0.0.1:8102"  # the Host header of the sockets below: the site they reach
PATHS = ["/ws/runs/", "/ws/requests/", "/ws/runs/{run}/"]
RECHECK = 0.3  # seconds between access re-checks in the tests that shorten them


def paths(run) -> list[str]:
    return [path.format(run=run.pk) for path in PATHS]


async def handshake(communicator) -> bool:
    """Whether the socket was accepted; a refused handshake is a close before the accept
    (the server answers HTTP 403), never an exception."""
    connected, _ = await communicator.connect()
    await communicator.disconnect()
    return connected


async def first_message_type(communicator) -> str:
    """The type of the first output after an accepted handshake (or "websocket.close")."""
    message = await communicator.receive_output(WAIT)
    if message["type"] == "websocket.send":
        return json.loads(message["text"])["type"]
    return message["type"]


@pytest.fixture
def recheck_often(monkeypatch):
    monkeypatch.setattr(consumers._LiveConsumer, "recheck_seconds", RECHECK)


@pytest.fixture
def watcher(make_user):
    """A viewer through a group (as the roles are), logged in with a password: (user,
    Client, session key)."""
    group = Group.objects.create(name="watchers")
    group.permissions.add(Permission.objects.get(content_type__app_label="workflows_app",
                                                 codename="view_run"))
    user = make_user("watcher")
    user.groups.add(group)
    client = Client()
    assert client.login(username="watcher", password=PASSWORD)
    return user, client, client.cookies["sessionid"].value


# --------------------------------------------------------------------------- origin
@pytest.mark.parametrize("origin", [
    b"http://127.0.0.1:8199",          # another port of the same host (the probe's page)
    b"https://127.0.0.1:8102",         # another scheme
    b"http://127.0.0.1",               # the default port is another port
    b"http://localhost:8102",          # another host name, though the same machine
    b"http://127.0.0.1:8102.evil.example",
    b"http://evil.example",
    b"null",                           # sandboxed frames, file:// pages
    None,                              # no browser omits it: a script may set any
])
async def test_a_page_of_another_origin_cannot_open_a_socket(viewer, run, origin, caplog):
    for path in paths(run):
        assert not await handshake(socket(path, viewer, origin=origin, host=SITE)), path
    refused = [r for r in caplog.records if r.name == "dashboard.origin"]
    assert len(refused) == 3 and all(r.levelno == logging.WARNING for r in refused)


async def test_the_sites_own_origin_opens_every_socket(viewer, run):
    for path in paths(run):
        communicator = socket(path, viewer, origin=b"http://127.0.0.1:8102", host=SITE)
        assert (await communicator.connect())[0], path
        await communicator.disconnect()


async def test_two_origin_headers_are_refused(viewer, run):
    communicator = WebsocketCommunicator(application, "/ws/runs/", headers=[
        (b"host", SITE), (b"origin", b"http://127.0.0.1:8102"),
        (b"origin", b"http://evil.example"), (b"cookie", f"sessionid={viewer}".encode())])
    assert not await handshake(communicator)


async def test_a_host_outside_allowed_hosts_is_no_origin_of_ours(viewer, run):
    # A rebound DNS name pointing at this machine: Origin and Host agree, but the host is
    # not one this site answers to.
    communicator = socket("/ws/runs/", viewer, origin=b"http://rebound.example:8102",
                          host=b"rebound.example:8102")
    assert not await handshake(communicator)


def secure(app):
    """``app`` reached over ``wss://`` (the scope's scheme, as a TLS server sets it)."""
    async def over_tls(scope, receive, send):
        await app({**scope, "scheme": "wss"}, receive, send)
    return over_tls


async def test_over_wss_the_own_origin_is_https(viewer, run):
    def tls_socket(origin: bytes):
        return WebsocketCommunicator(secure(application), "/ws/runs/", headers=[
            (b"host", SITE), (b"origin", origin), (b"cookie", f"sessionid={viewer}".encode())])
    assert await handshake(tls_socket(b"https://127.0.0.1:8102"))
    assert not await handshake(tls_socket(b"http://127.0.0.1:8102"))


async def test_csrf_trusted_origins_may_open_sockets(viewer, run, settings):
    settings.CSRF_TRUSTED_ORIGINS = ["https://stepstone.example.com", "https://*.corp.example"]
    for origin, allowed in [(b"https://stepstone.example.com", True),
                            (b"https://ops.corp.example", True),
                            (b"https://corp.example", True),
                            (b"http://stepstone.example.com", False),   # scheme
                            (b"https://stepstone.example.com:8443", False),  # port
                            (b"http://ops.corp.example", False),
                            (b"https://corp.example.evil", False),
                            (b"https://evilcorp.example", False)]:
        # Behind a proxy the Host daphne sees is the proxy's upstream name.
        communicator = socket("/ws/runs/", viewer, origin=origin, host=b"127.0.0.1:8000")
        assert await handshake(communicator) is allowed, origin


async def test_the_proxys_scheme_counts_as_djangos_does(viewer, run, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.ALLOWED_HOSTS = ["stepstone.example.com"]
    for proto, origin, allowed in [(b"https", b"https://stepstone.example.com", True),
                                   (b"https", b"http://stepstone.example.com", False),
                                   (b"http", b"https://stepstone.example.com", False)]:
        communicator = WebsocketCommunicator(application, "/ws/runs/", headers=[
            (b"host", b"stepstone.example.com"), (b"x-forwarded-proto", proto),
            (b"origin", origin), (b"cookie", f"sessionid={viewer}".encode())])
        assert await handshake(communicator) is allowed, (proto, origin)


# --------------------------------------------------------------------------- logout
async def test_logout_closes_the_sessions_open_sockets_at_once(watcher, run):
    user, client, session_key = watcher
    pages = [socket(path, session_key) for path in paths(run)]
    for page in pages:
        assert (await page.connect())[0]
    # The same user's other session (another browser) is not the one logging out.
    other = Client()
    await sync_to_async(other.force_login)(user)
    elsewhere = socket("/ws/runs/", other.cookies["sessionid"].value)
    assert (await elsewhere.connect())[0]
    assert await group_size(session_group(session_key)) == 3

    response = await sync_to_async(client.post)("/logout/")
    assert response.status_code == 302
    for page in pages:
        message = await page.receive_output(WAIT)
        while message["type"] == "websocket.send":  # what it sent before (status, count)
            message = await page.receive_output(WAIT)
        assert message == {"type": "websocket.close", "code": 4403}
        await page.disconnect()
    assert await elsewhere.receive_nothing(0.5)
    await elsewhere.disconnect()
    # And a new socket of the ended session is refused, as before.
    assert await refusal(socket("/ws/runs/", session_key)) == 4403
    assert await group_size(session_group(session_key)) == 0


def test_the_session_group_never_names_the_session_key():
    key = "k" * 32
    group = session_group(key)
    assert key not in group and group == session_group(key) != session_group("j" * 32)
    assert len(group) < 100  # channels' limit on group names


# --------------------------------------------------------------------------- re-checks
def remove_from_group(user):
    user.groups.clear()


def deactivate(user):
    user.is_active = False
    user.save(update_fields=["is_active"])


def change_password(user):
    user.set_password("another-pw-8d1f")
    user.save()


def expire_session(user):
    Session.objects.update(expire_date=timezone.now() - timezone.timedelta(seconds=1))


def delete_sessions(user):  # clearsessions, the admin, a logout elsewhere
    Session.objects.all().delete()


@pytest.mark.parametrize("end_access", [remove_from_group, deactivate, change_password,
                                        expire_session, delete_sessions])
async def test_a_socket_closes_within_the_recheck_once_its_access_ended(
        watcher, run, recheck_often, end_access):
    user, client, session_key = watcher
    pages = [socket(path, session_key) for path in paths(run)]
    for page in pages:
        assert (await page.connect())[0]
    assert (await pages[1].receive_json_from())["type"] == "requests"
    assert (await pages[2].receive_json_from())["type"] == "status"
    # Several re-checks pass while access holds: nothing is closed.
    assert await pages[0].receive_nothing(RECHECK * 2.5)
    for page in pages[1:]:
        assert await page.receive_nothing(0.01)
    await sync_to_async(end_access)(user)
    for page in pages:
        assert await page.receive_output(RECHECK * 3 + WAIT) == {
            "type": "websocket.close", "code": 4403}
        await page.disconnect()


async def test_access_holds_across_rechecks(watcher, run, recheck_often):
    _, _, session_key = watcher
    page = socket("/ws/runs/", session_key)
    assert (await page.connect())[0]
    assert await page.receive_nothing(RECHECK * 4)
    await page.disconnect()


async def test_a_replay_is_refused_once_access_ended_even_before_the_recheck(watcher, run):
    user, _, session_key = watcher
    await sync_to_async(add_events)(run, [1, 2])
    page = socket(f"/ws/runs/{run.pk}/", session_key)
    assert (await page.connect())[0]
    assert (await page.receive_json_from())["type"] == "status"
    await sync_to_async(remove_from_group)(user)
    await page.send_json_to({"type": "replay", "after": 0})
    assert await page.receive_output(WAIT) == {"type": "websocket.close", "code": 4403}
    await page.disconnect()


# --------------------------------------------------------------------------- bad paths
@pytest.mark.parametrize("path", ["/ws/nothing/", "/ws/runs/not-a-uuid/", "/", "/ws/runs",
                                  "/ws/runs/00000000-0000-0000-0000-000000000000/extra/"])
async def test_an_unrouted_path_is_refused_at_the_handshake(path, viewer):
    for cookie in (None, viewer):
        # Before the fix the router raised (daphne: HTTP 500); now a close before the accept.
        assert await socket(path, cookie).connect() == (False, 1000), path


# --------------------------------------------------------------------------- bad frames
async def run_page(viewer, run):
    page = socket(f"/ws/runs/{run.pk}/", viewer)
    assert (await page.connect())[0]
    assert (await page.receive_json_from())["type"] == "status"
    return page


async def test_a_deeply_nested_frame_is_answered_with_an_error(viewer, run, caplog):
    await sync_to_async(add_events)(run, [1])
    page = await run_page(viewer, run)
    deep_list = "[" * 1000 + "]" * 1000
    deep_in_object = '{"type": "replay", "after": ' + "[" * 30000 + "]" * 30000 + "}"
    for text in (deep_list, deep_in_object):
        await page.send_to(text_data=text)
        assert await page.receive_json_from() == {"type": "error",
                                                  "error": "message nested too deeply"}
    # Nested less deeply than the parser's limit, under a key that is echoed: bounded.
    await page.send_to(text_data='{"type": ' + "[" * 500 + "]" * 500 + "}")
    error = await page.receive_json_from()
    assert error["type"] == "error" and len(error["error"]) < 100
    # The socket is still the page's: a replay works.
    await page.send_json_to({"type": "replay", "after": 0})
    assert seqs(await page.receive_json_from()) == [1]
    await page.disconnect()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


async def test_an_oversized_or_binary_frame_is_answered_with_an_error(viewer, run):
    page = await run_page(viewer, run)
    limit = f"message too large (at most {MAX_MESSAGE_BYTES} bytes)"
    padding = " " * MAX_MESSAGE_BYTES
    await page.send_to(text_data='{"type": "replay"}' + padding)
    assert await page.receive_json_from() == {"type": "error", "error": limit}
    # Bytes, not characters: 30,000 three-byte characters are 90,000 bytes.
    await page.send_to(text_data=json.dumps({"type": "x", "pad": "\u20ac" * 30000},
                                            ensure_ascii=False))
    assert await page.receive_json_from() == {"type": "error", "error": limit}
    await page.send_to(bytes_data=b'{"type": "replay"}')
    assert await page.receive_json_from() == {"type": "error",
                                              "error": "expected a JSON text message"}
    await page.send_json_to({"type": "replay", "after": 0})  # still open
    assert (await page.receive_json_from())["type"] == "status"
    await page.disconnect()


async def test_an_after_of_thousands_of_digits_is_an_error_not_a_crash(viewer, run, caplog):
    digits = "9" * 4301  # more than int() parses from text
    page = socket(f"/ws/runs/{run.pk}/?after={digits}", viewer)
    assert (await page.connect())[0]
    assert await page.receive_json_from() == {
        "type": "error", "error": "after must be a non-negative integer"}
    assert (await page.receive_json_from())["type"] == "status"
    for text in ('{"type": "replay", "after": "%s"}' % digits,
                 '{"type": "replay", "after": %s}' % digits,  # a JSON number: not parsed
                 '{"type": "replay", "after": 1e999}'):
        await page.send_to(text_data=text)
        assert (await page.receive_json_from())["type"] == "error", text[:40]
    assert await page.receive_nothing(0.3)  # nothing closed
    await page.disconnect()
    assert not [r for r in caplog.records if r.levelno >= logging.ERROR]


# --------------------------------------------------------------------------- failures
async def test_a_failing_handler_closes_with_1011_and_logs_the_traceback_server_side(
        viewer, run, monkeypatch, caplog):
    page = await run_page(viewer, run)

    async def broken(self):
        raise RuntimeError("database away")
    monkeypatch.setattr(consumers.RunEventsConsumer, "read_status", broken)
    await page.send_json_to({"type": "replay", "after": 0})
    assert await page.receive_output(WAIT) == {"type": "websocket.close", "code": 1011}
    await page.disconnect()  # raises if the exception escaped the consumer
    [failure] = [r for r in caplog.records if r.name == "dashboard.consumers"
                 and r.levelno == logging.ERROR]
    assert failure.exc_info and "database away" in str(failure.exc_info[1])


async def test_a_failure_at_connect_refuses_the_handshake(viewer, run, monkeypatch):
    async def broken(self):
        raise RuntimeError("database away")
    monkeypatch.setattr(consumers.RunEventsConsumer, "run_exists", broken)
    communicator = socket(f"/ws/runs/{run.pk}/", viewer)
    assert await communicator.connect() == (False, 1011)
    await communicator.disconnect()


async def test_a_recheck_that_cannot_read_closes_rather_than_trusts(
        watcher, run, recheck_often, monkeypatch):
    _, _, session_key = watcher
    page = socket("/ws/runs/", session_key)
    assert (await page.connect())[0]

    def broken(session_key):
        raise RuntimeError("session store away")
    monkeypatch.setattr(consumers, "session_viewer", broken)
    assert await page.receive_output(RECHECK + WAIT) == {"type": "websocket.close",
                                                         "code": 1011}
    await page.disconnect()
