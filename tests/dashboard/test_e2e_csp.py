"""End to end, the Content-Security-Policy (issue 14): the dashboard, the admin, the browsable
API and the API docs work in Chromium under the site's real policy (daphne + qcluster), with
no violation reported and the live sockets connected; the policy is enforced (an injected
inline script is refused and reported); and 'self' alone lets the pages open their
websockets. See tests/browser.py.

    .venv/bin/python -m pytest tests/dashboard/test_e2e_csp.py -q
"""

from __future__ import annotations

import re

import pytest

from tests.browser import (CHROMIUM, CHROMIUM_ARGS, browser, log_in, page,  # noqa: F401
                           screenshot, site)

expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=15_000)

# Kept by the page from its first script on (an init script runs before the page's own and
# is not subject to the policy): every violation the browser reports to the page.
VIOLATION_RECORDER = """
window.__violations = [];
document.addEventListener("securitypolicyviolation", (e) => window.__violations.push(
  {directive: e.violatedDirective, blocked: e.blockedURI, source: e.sourceFile,
   sample: e.sample}));
"""


@pytest.fixture(scope="module")
def finished_run(site):
    """A long loop run to its end by a real worker: its page, checkpoints and admin rows."""
    if not site.clusters:
        site.start_cluster(workers=1)
    run_id = site.installation.start_run("long-loop", {"rounds": 3})
    site.installation.wait_status(run_id, "completed")
    checkpoint = next(iter(site.installation.checkpoints(run_id)))
    return run_id, checkpoint


@pytest.fixture
def watched(page, site):
    """The logged-in page, recording violations, console errors and websockets."""
    page.add_init_script(VIOLATION_RECORDER)
    page.console_errors = []  # type: ignore[attr-defined]
    page.on("console", lambda message: page.console_errors.append(message.text)
            if message.type == "error" else None)
    page.sockets = {}  # type: ignore[attr-defined] - url -> {"frames": n, "closed": bool}

    def opened(socket) -> None:
        seen = page.sockets.setdefault(socket.url, {"frames": 0, "closed": False})
        socket.on("framereceived", lambda _: seen.__setitem__("frames", seen["frames"] + 1))
        socket.on("close", lambda _: seen.__setitem__("closed", True))
    page.on("websocket", opened)
    site.log_in(page)
    return page


def _no_violations(page, what: str) -> None:
    violations = page.evaluate("window.__violations")
    policy_errors = [e for e in page.console_errors if "Content Security Policy" in e]
    assert violations == [] and policy_errors == [], (what, violations, policy_errors)
    assert page.js_errors == [], (what, page.js_errors)


def _wait(page, what: str, probe, timeout: float = 15):
    """Poll ``probe`` while Playwright delivers the page's events (``time.sleep`` would not
    let it: the sync API dispatches them only while the test calls into it)."""
    for _ in range(int(timeout / 0.05)):
        found = probe()
        if found:
            return found
        page.wait_for_timeout(50)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; sockets: "
                         f"{page.sockets}")


def _socket(page, path: str, *, received: bool = True) -> dict:
    """The page's websocket whose address contains ``path`` (once it has received a message,
    unless ``received`` is false)."""
    return _wait(page, f"the socket to {path}", lambda: next(
        (seen for url, seen in page.sockets.items()
         if path in url and (seen["frames"] or not received)), None))


def test_the_dashboard_admin_and_api_pages_work_under_the_policy(watched, site, finished_run):
    page = watched
    run_id, checkpoint = finished_run
    base = site.url

    page.goto(f"{base}/runs/{run_id}/")
    expect(page.locator("#run-page")).to_be_visible()
    # The run page's scripts start from a static file: its live parts connect.
    _socket(page, "/ws/requests/")
    run_socket = _socket(page, f"/ws/runs/{run_id}/?after=", received=False)
    page.wait_for_timeout(300)
    assert not run_socket["closed"]
    expect(page.locator("#connection-banner")).to_be_hidden()
    screenshot(page, "csp-run-page")
    _no_violations(page, "run page")

    page.goto(f"{base}/workflows/")
    expect(page.locator("svg").first).to_be_visible()  # the graph diagrams
    _no_violations(page, "workflows page")

    page.goto(f"{base}/runs/")
    expect(page.locator("#connection")).to_have_text("live")
    _no_violations(page, "runs page")

    for url, shows in ((f"{base}/admin/", "Site administration"),
                       (f"{base}/admin/workflows_app/run/", run_id[:8]),
                       (f"{base}/admin/workflows_app/checkpoint/{checkpoint}/change/",
                        "executor_states")):
        page.goto(url)
        expect(page.locator("#content")).to_contain_text(shows)
        _no_violations(page, url)
    # The admin's stored JSON keeps its look through admin.css, not a style attribute.
    assert page.locator("pre.stored-json").first.evaluate(
        "e => getComputedStyle(e).whiteSpace") == "pre-wrap"
    screenshot(page, "csp-admin-checkpoint")

    page.goto(f"{base}/api/runs/")  # DRF's browsable API (inline styles allowed there only)
    expect(page.locator(".response-info")).to_contain_text(run_id)
    _no_violations(page, "browsable API")

    page.goto(f"{base}/api/docs/")
    expect(page.locator(".swagger-ui .info .title")).to_contain_text("Stepstone API")
    expect(page.locator(".opblock-tag-section").first).to_be_visible()
    screenshot(page, "csp-api-docs")
    _no_violations(page, "API docs")


def test_the_policy_is_enforced_and_reported(watched, site):
    page = watched
    page.goto(f"{site.url}/runs/")
    page.evaluate("""() => {
        const script = document.createElement("script");
        script.textContent = "window.__ran = true";
        document.body.append(script);
    }""")
    page.wait_for_function("window.__violations.length > 0")
    assert page.evaluate("window.__ran === undefined")
    (violation,) = page.evaluate("window.__violations")
    assert violation["directive"].startswith("script-src")


def test_self_alone_lets_the_pages_open_their_websockets(browser, site):
    """Chromium treats the page's own ws:// origin as 'self' (CSP Level 3): with the policy
    stripped of the websocket origin the middleware adds, the live sockets still connect.
    (A response rewritten by the test counts as from an unknown address, so this browser
    skips the checks of local network access, which would refuse its sockets to loopback.)"""
    local = browser.browser_type.launch(
        executable_path=CHROMIUM, headless=True,
        args=CHROMIUM_ARGS + ["--disable-features=LocalNetworkAccessChecks"])
    try:
        page = local.new_context().new_page()
        page.add_init_script(VIOLATION_RECORDER)
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text)
                if message.type == "error" else None)
        log_in(page, site.url, site.username, site.password)
        origin = re.sub(r"^http", "ws", site.url)
        rewritten = []

        def without_websocket_origin(route) -> None:
            response = route.fetch()
            headers = dict(response.headers)
            policy = headers["content-security-policy"]
            headers["content-security-policy"] = policy.replace(" " + origin, "")
            rewritten.append(headers["content-security-policy"])
            route.fulfill(response=response, headers=headers)
        page.route(re.compile(r".*/runs/$"), without_websocket_origin)
        page.goto(f"{site.url}/runs/")
        expect(page.locator("#connection")).to_have_text("live")
        assert rewritten and "connect-src 'self';" in rewritten[0] + ";"
        assert origin not in rewritten[0]
        assert page.evaluate("window.__violations") == [], errors
    finally:
        local.close()
