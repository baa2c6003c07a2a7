"""Browser tests against a real Stepstone: daphne + qcluster + Debian's Chromium.

Plain helpers (used by the tests and by ``benchmarks/browser_latency.py``):

- ``launch_chromium(playwright)``: headless ``/usr/bin/chromium`` through Playwright's own
  driver. The browser comes from Debian (``apt-get install chromium``, done by ``.ci/run``);
  never ``playwright install``.
- ``log_in(page, base_url, username, password)``: the ``/login/`` form.
- ``screenshot(page, name)``: a full-page PNG in ``test-artifacts/screenshots/``.
- ``NavigationCounter(page)``: counts main-frame navigations, to prove an update was live.
- ``record_live_events(page)``: from the next page load on, keeps every event the run page
  announces as it applies a live one (``stepstone:event``), with its arrival time, in
  ``window.__liveEvents`` (the page itself keeps nothing).

Fixtures (import them into a test module: ``from tests.browser import site, browser, page``):

- ``site`` (module scope): a bootstrapped ``Installation`` served by daphne on a free port;
  no qcluster runs until a test calls ``site.start_cluster()``. Everything dies at teardown.
- ``browser`` (module scope): one Chromium per test module, closed before the next module
  (Playwright's sync API keeps an event loop of its own; the asyncio tests that follow must
  not share the thread with it); fails when Chromium is missing (.ci/run installs it).
- ``page`` (function scope): a fresh browser context (no cookies) on the site; confirm
  dialogs are accepted, their texts kept in ``page.dialogs``; when the test fails, a ``FAILED-<test>.png`` screenshot is saved.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.installation import ROOT, Cluster, Installation, WebServer

CHROMIUM = os.environ.get("STEPSTONE_CHROMIUM", "/usr/bin/chromium")
# As root in a closed network: no sandbox, and no background connections to Google's hosts.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]
SCREENSHOTS = ROOT / "test-artifacts" / "screenshots"


# --------------------------------------------------------------------------- helpers
def launch_chromium(playwright: Any, **options: Any) -> Any:
    """Debian's Chromium, headless, through a started ``sync_playwright()`` (or async)."""
    return playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                      args=CHROMIUM_ARGS, **options)


def log_in(page: Any, base_url: str, username: str, password: str) -> None:
    """Log in through the login page; fail with the page's text when it does not take."""
    page.goto(f"{base_url}/login/")
    page.fill("#id_username", username)
    page.fill("#id_password", password)
    with page.expect_navigation():
        page.click("button[type=submit]")
    if re.search(r"/login/", page.url):
        body = page.inner_text("body")
        raise AssertionError(f"login as {username!r} failed; page says:\n{body[:1000]}")


def screenshot(page: Any, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{re.sub(r'[^A-Za-z0-9_.-]+', '-', name)}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


LIVE_EVENT_RECORDER = """
window.__liveEvents = [];
document.addEventListener("stepstone:event", (e) =>
  window.__liveEvents.push({...e.detail, received_at: Date.now()}));
"""


def record_live_events(page: Any) -> None:
    """Keep the live events of every page loaded from now on in ``window.__liveEvents``:
    ``{seq, type, created_at, received_at}`` each, ``received_at`` being ``Date.now()``
    when the page applied the event."""
    page.add_init_script(LIVE_EVENT_RECORDER)


class NavigationCounter:
    """Counts the page's main-frame navigations (a reload is one) from now on."""

    def __init__(self, page: Any) -> None:
        self.page = page
        self.urls: list[str] = []
        page.on("framenavigated", self._on_navigated)

    def _on_navigated(self, frame: Any) -> None:
        if frame == self.page.main_frame:
            self.urls.append(frame.url)

    @property
    def count(self) -> int:
        return len(self.urls)


@dataclass
class Site:
    """An installation served by daphne: what a browser test needs to reach it."""

    installation: Installation
    web: WebServer
    username: str
    password: str
    clusters: list[Cluster] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.web.url

    def start_cluster(self, workers: int = 2) -> Cluster:
        cluster = self.installation.start_cluster(workers=workers)
        self.clusters.append(cluster)
        return cluster

    def log_in(self, page: Any) -> None:
        log_in(page, self.url, self.username, self.password)

    def logs(self) -> str:
        return self.installation.log_tails(60)


def open_site(data_dir: Path, **settings: Any) -> Site:
    """Bootstrap an installation in ``data_dir`` and serve it; the caller closes
    ``site.installation``. The bootstrap's operator (a superuser) is the login."""
    installation = Installation(data_dir, **settings).bootstrap()
    try:
        if installation.operator is None:  # a reused data dir: make a login of our own
            installation.create_user("e2e-operator", "e2e-pw-5f3a9c", superuser=True)
            username, password = "e2e-operator", "e2e-pw-5f3a9c"
        else:
            username, password = installation.operator
        web = installation.start_web()
    except BaseException:
        installation.close()
        raise
    return Site(installation, web, username, password)


# --------------------------------------------------------------------------- fixtures
@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A bootstrapped installation served by daphne; no qcluster until a test starts one."""
    served = open_site(tmp_path_factory.mktemp("site"))
    yield served
    served.installation.close()


@pytest.fixture(scope="module")
def browser():
    if not os.access(CHROMIUM, os.X_OK):
        # Fail, never skip: a green run must not hide a missing install step.
        pytest.fail(f"no Chromium at {CHROMIUM}: apt-get install chromium (.ci/run does)")
    from playwright import sync_api  # the `test` extra installs it

    with sync_api.sync_playwright() as playwright:
        chromium = launch_chromium(playwright)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser, site, request):
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    context.set_default_timeout(15_000)
    tab = context.new_page()
    dialogs: list[str] = []  # what each confirm() asked, in order; all are accepted
    tab.dialogs = dialogs  # type: ignore[attr-defined]

    def accept(dialog) -> None:
        dialogs.append(dialog.message)
        dialog.accept()
    tab.on("dialog", accept)
    errors: list[str] = []
    tab.on("pageerror", lambda error: errors.append(str(error)))
    tab.js_errors = errors  # type: ignore[attr-defined] - the page's uncaught exceptions
    failed_before = request.session.testsfailed
    yield tab
    if request.session.testsfailed > failed_before or getattr(request.node, "_e2e_failed", False):
        for number, other in enumerate(context.pages):
            try:
                screenshot(other, f"FAILED-{request.node.name}-{number}")
            except Exception:  # pragma: no cover - the page may be gone
                pass
    context.close()


def wait_until(what: str, probe, timeout: float = 15, interval: float = 0.05) -> Any:
    """Poll ``probe`` (in the test process) until it returns something truthy."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        last = probe()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last: {last!r}")
