"""The websocket handshake of a real daphne, as the black-box probe met it: which pages may
open a socket, what an unrouted path answers, and a logout closing an open socket. The
client is a raw socket speaking the handshake, so the test sees HTTP statuses and close
codes exactly as a browser's network stack does; the last test is Chromium's view of a
logout in another tab."""

from __future__ import annotations

import base64
import http.cookiejar
import os
import re
import socket
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import BinaryIO

import pytest

from tests.browser import browser, page, site  # noqa: F401

expect = pytest.importorskip("playwright.sync_api").expect

VIEWER = ("probe-viewer", "probe-pw-61c2e0")
OPCODE_TEXT, OPCODE_CLOSE = 0x1, 0x8


@dataclass
class Handshake:
    status: int
    connection: socket.socket
    stream: BinaryIO

    def frame(self) -> tuple[int, bytes]:
        """The next frame from the server: (opcode, payload). Server frames are unmasked."""
        first, second = self.stream.read(2)
        length = second & 0x7F
        if length == 126:
            length = int.from_bytes(self.stream.read(2), "big")
        elif length == 127:
            length = int.from_bytes(self.stream.read(8), "big")
        return first & 0x0F, self.stream.read(length)

    def close(self) -> None:
        self.stream.close()
        self.connection.close()


def open_socket(port: int, path: str, origin: str | None, cookie: str | None = None,
                ) -> Handshake:
    connection = socket.create_connection(("127.0.0.1", port), timeout=10)
    lines = [f"GET {path} HTTP/1.1", f"Host: 127.0.0.1:{port}", "Upgrade: websocket",
             "Connection: Upgrade", "Sec-WebSocket-Version: 13",
             f"Sec-WebSocket-Key: {base64.b64encode(os.urandom(16)).decode()}"]
    if origin is not None:
        lines.append(f"Origin: {origin}")
    if cookie is not None:
        lines.append(f"Cookie: sessionid={cookie}")
    connection.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
    stream = connection.makefile("rb")
    status = int(stream.readline().split()[1])
    while stream.readline() not in (b"\r\n", b""):  # the rest of the response's head
        pass
    return Handshake(status, connection, stream)


class Browser:
    """A logged-in HTTP client of the site (the login form, its cookies)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.jar = http.cookiejar.CookieJar()
        self.opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(self.jar))

    def cookie(self, name: str) -> str:
        return next(c.value for c in self.jar if c.name == name)

    def post(self, path: str, fields: dict[str, str]) -> None:
        fields = {"csrfmiddlewaretoken": self.cookie("csrftoken"), **fields}
        self.opener.open(urllib.request.Request(
            self.url + path, data=urllib.parse.urlencode(fields).encode(),
            headers={"Origin": self.url, "Referer": self.url + path}), timeout=10)

    def log_in(self, username: str, password: str) -> str:
        form = self.opener.open(self.url + "/login/", timeout=10).read().decode()
        assert re.search(r'name="csrfmiddlewaretoken"', form)
        self.post("/login/", {"username": username, "password": password})
        return self.cookie("sessionid")


@pytest.fixture(scope="module")
def viewer_site(site):  # noqa: F811
    site.installation.create_user(*VIEWER, permissions=("workflows_app.view_run",))
    run_id = site.installation.start_run("long-loop", {"rounds": 2})  # queued: no cluster
    return site, run_id


def test_only_the_sites_own_origin_reads_a_runs_events(viewer_site):
    site, run_id = viewer_site
    port, path = site.web.port, f"/ws/runs/{run_id}/"
    cookie = Browser(site.url).log_in(*VIEWER)
    # The probe's page on another port of the host, the same host over https, a foreign
    # site, and a client that sends no Origin: all refused by the handshake.
    for origin in ("http://127.0.0.1:8199", f"https://127.0.0.1:{port}",
                   "http://evil.example", None):
        handshake = open_socket(port, path, origin, cookie)
        handshake.close()
        assert handshake.status == 403, origin
    own = open_socket(port, path, site.url, cookie)
    try:
        assert own.status == 101
        opcode, payload = own.frame()
        assert opcode == OPCODE_TEXT and b'"type": "status"' in payload
    finally:
        own.close()


def test_an_unrouted_path_is_refused_not_a_server_error(viewer_site):
    site, _ = viewer_site
    for path in ("/ws/nothing/", "/ws/runs/not-a-run/", "/"):
        handshake = open_socket(site.web.port, path, site.url)  # and no login
        handshake.close()
        assert handshake.status == 403, path


def test_logging_out_closes_the_open_socket(viewer_site):
    site, run_id = viewer_site
    browser = Browser(site.url)
    cookie = browser.log_in(*VIEWER)
    page = open_socket(site.web.port, f"/ws/runs/{run_id}/", site.url, cookie)
    try:
        assert page.status == 101
        assert page.frame()[0] == OPCODE_TEXT  # the run's status
        browser.post("/logout/", {})
        opcode, payload = page.frame()
        assert (opcode, int.from_bytes(payload[:2], "big")) == (OPCODE_CLOSE, 4403)
    finally:
        page.close()


def test_a_page_whose_session_logs_out_in_another_tab_stops_and_says_so(
        viewer_site, page):  # noqa: F811
    site, run_id = viewer_site
    page.goto(f"{site.url}/login/")
    page.fill("#id_username", VIEWER[0])
    page.fill("#id_password", VIEWER[1])
    with page.expect_navigation():
        page.click("button[type=submit]")
    page.goto(f"{site.url}/runs/{run_id}/")
    banner = page.locator("#connection-banner")
    expect(banner).to_have_attribute("data-state", "live", timeout=15_000)
    other_tab = page.context.new_page()
    other_tab.goto(f"{site.url}/runs/")
    with other_tab.expect_navigation():
        other_tab.click("nav form button[type=submit]")  # Log out
    expect(banner).to_have_attribute("data-state", "refused", timeout=15_000)
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("Reload the page")
    # Refused for good: the page does not knock again (no reconnection is attempted).
    sockets_before = len(site.web.log_path.read_text().split("WSCONNECTING"))
    page.wait_for_timeout(2000)
    assert len(site.web.log_path.read_text().split("WSCONNECTING")) == sockets_before


def test_the_server_logged_no_error(viewer_site):
    site, _ = viewer_site
    log = site.web.log_path.read_text(errors="replace")
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    assert not re.search(r'" 5\d\d ', log), log[-3000:]
    assert "WARNING dashboard.origin: websocket to /ws/runs/" in log  # refusals are told
