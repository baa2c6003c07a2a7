"""End to end, the live lists: the runs list's superstep column, the Requests inbox and the
navigation's count change without a reload; a page that loses its server says so, with its
actions disabled, until the server is back; switch-case edges carry their case. A real
daphne and qcluster, driven from Debian's Chromium (see tests/browser.py).

    .venv/bin/python -m pytest tests/dashboard/test_e2e_live_lists.py -q
"""

from __future__ import annotations

import re
import time
import uuid

import pytest

from tests.browser import NavigationCounter, browser, page, screenshot, site, wait_until  # noqa: F401

expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=15_000)

SUBMIT = "button:not([type=button]):not([type=reset])"
BANNER = re.compile(r"^Disconnected from the server \u2014 last update at "
                    r"\d\d:\d\d:\d\d\. Reconnecting\u2026$")
# What Chromium itself logs while the server is away (not the page's script throwing).
OUTAGE_CONSOLE = re.compile(r"WebSocket connection to 'ws://[^']+' failed|"
                            r"Failed to load resource: net::ERR_CONNECTION_REFUSED")


@pytest.fixture(scope="module")
def workers(site):
    """One qcluster for the module's runs."""
    if not site.clusters:
        site.start_cluster()
    return site


@pytest.fixture
def console_errors(page):
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text)
            if message.type == "error" else None)
    return errors


def open_requests(site) -> int:
    return sum(1 for r in site.installation.requests() if r["status"] == "open")


def start_review(site, title: str) -> str:
    run_id = site.installation.start_run("document-review", {"title": title})
    site.installation.wait_status(run_id, "waiting")
    return run_id


def open_request_of(site, run_id: str) -> str:
    """The id (as pages show it) of the run's open request."""
    row = next(r for r in site.installation.requests(run_id) if r["status"] == "open")
    return str(uuid.UUID(row["id"]))


def test_the_runs_list_follows_a_long_runs_supersteps_without_a_reload(workers, page):
    site = workers
    site.log_in(page)
    page.goto(f"{site.url}/runs/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    navigations = NavigationCounter(page)

    run_id = site.installation.start_run("long-loop", {"rounds": 60, "step_ms": 60})
    row = page.locator(f'#runs tr[data-run="{run_id}"]')
    expect(row).to_have_count(1)  # a run the page did not show: the table reloads itself
    cell = row.locator("td.superstep")
    seen: list[int] = []

    def sample():
        value = int(cell.inner_text().strip() or 0)
        if not seen or seen[-1] != value:
            seen.append(value)
        return row.locator("td.status").inner_text().strip() == "completed"
    shot = False
    deadline = time.monotonic() + 60
    while not sample():
        assert time.monotonic() < deadline, f"the run did not complete; cell went {seen}"
        if not shot and seen[-1] >= 30:
            screenshot(page, "live-runs-list")
            shot = True
        time.sleep(0.1)
    final = site.installation.run(run_id)
    assert final["status"] == "completed"
    # The cell ends where the run did, having moved step by step on the way (some values
    # skipped by the pacing, none going back), all without a reload.
    expect(cell).to_have_text(str(final["current_superstep"]))
    seen.append(int(cell.inner_text()))
    assert len(set(seen)) >= 5, seen
    assert seen == sorted(seen), seen
    assert navigations.count == 0
    assert page.js_errors == []

    # The run's page has the live script once, from the base template, and goes live with its
    # own socket and the count's.
    page.goto(f"{site.url}/runs/{run_id}/")
    assert page.locator('script[src*="dashboard/live.js"]').count() == 1
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    expect(page.locator("#open-requests")).to_have_attribute("data-count", re.compile(r"^\d+$"))
    assert page.js_errors == []


def test_the_inbox_gains_and_loses_requests_live_and_keeps_what_is_typed(workers, page):
    site = workers
    first = start_review(site, "Inbox first")
    site.log_in(page)
    page.goto(f"{site.url}/requests/")
    other_tab = page.context.new_page()
    other_errors: list[str] = []
    other_tab.on("pageerror", lambda error: other_errors.append(str(error)))
    other_tab.goto(f"{site.url}/workflows/")
    count, other_count = page.locator("#open-requests"), other_tab.locator("#open-requests")
    before = open_requests(site)
    expect(count).to_have_text(str(before))
    expect(other_count).to_have_text(str(before))
    navigations = NavigationCounter(page)

    # The operator starts answering the first request; the focus stays in its comment.
    mine = page.locator(f'form.request-form[data-request="{open_request_of(site, first)}"]')
    mine.locator("select[name=approved]").select_option("true")
    comment = mine.locator("input[name=comment]")
    comment.fill("looks good so far")
    comment.focus()

    # A new request arrives: its card is added, the count goes up on every page.
    second = start_review(site, "Inbox second")
    theirs = page.locator(f'form.request-form[data-request="{open_request_of(site, second)}"]')
    expect(theirs).to_have_count(1)
    expect(count).to_have_text(str(before + 1))
    expect(other_count).to_have_text(str(before + 1))
    # Newest first, as the page renders the list; the form being typed into kept all.
    ids = page.locator("#requests form.request-form").evaluate_all(
        "forms => forms.map(f => f.dataset.request)")
    assert ids.index(theirs.get_attribute("data-request")) < ids.index(
        mine.get_attribute("data-request"))
    expect(comment).to_have_value("looks good so far")
    expect(comment).to_be_focused()
    expect(mine.locator("select[name=approved]")).to_have_value("true")
    screenshot(page, "live-inbox")

    # Someone else answers the new request: its card goes, the count comes down.
    site.installation.respond(open_request_of(site, second),
                              {"approved": True, "comment": "from elsewhere"})
    expect(theirs).to_have_count(0)
    expect(count).to_have_text(str(before))
    expect(other_count).to_have_text(str(before))
    expect(comment).to_have_value("looks good so far")
    assert navigations.count == 0

    # The first request is answered elsewhere while its form has the focus: the card stays,
    # marked, with its buttons disabled, until the focus leaves it.
    site.installation.respond(open_request_of(site, first),
                              {"approved": True, "comment": "beaten to it"})
    expect(mine).to_have_attribute("data-gone", "")
    expect(mine.locator(".gone-note")).to_contain_text("No longer open")
    expect(mine.locator(SUBMIT)).to_be_disabled()
    expect(comment).to_have_value("looks good so far")
    screenshot(page, "live-inbox-gone")
    page.locator("h1").click()  # the focus leaves the card
    expect(mine).to_have_count(0)
    expect(count).to_have_text(str(before - 1))
    assert navigations.count == 0
    assert page.js_errors == [] and other_errors == []


def test_switch_case_edges_show_their_case(workers, page):
    site = workers
    site.log_in(page)
    page.goto(f"{site.url}/workflows/")
    graph = page.locator('section.workflow[data-workflow="ticket-router"] svg.graph')
    expect(graph).to_be_visible()
    labels = graph.locator("g.edge-label").evaluate_all(
        "labels => labels.map(g => [g.dataset.target, g.textContent])")
    assert labels == [["urgent-desk", "is_urgent"], ["billing-desk", "is_billing"],
                      ["general-desk", "default"]]
    # Each label's text fits its pill, and the pills stay clear of the executors' boxes
    # and of one another.
    boxes = graph.locator("g.node rect").evaluate_all(
        "rects => rects.map(r => r.getBoundingClientRect().toJSON())")
    pills = graph.locator("g.edge-label").evaluate_all("labels => labels.map(g => ({"
                                                        "pill: g.querySelector('rect').getBoundingClientRect().toJSON(),"
                                                        "text: g.querySelector('text').getBoundingClientRect().toJSON()}))")

    def overlap(a, b):
        return (a["left"] < b["right"] and b["left"] < a["right"]
                and a["top"] < b["bottom"] and b["top"] < a["bottom"])
    for number, label in enumerate(pills):
        assert label["pill"]["left"] <= label["text"]["left"] \
            and label["text"]["right"] <= label["pill"]["right"], label
        assert not any(overlap(label["pill"], box) for box in boxes), label
        assert not any(overlap(label["pill"], other["pill"]) for other in pills[number + 1:])
    graph.scroll_into_view_if_needed()
    whole = screenshot(page, "switch-case-labels")
    graph.screenshot(path=str(whole.with_name("switch-case-labels-graph.png")))


def test_a_page_that_loses_its_server_says_so_and_disables_its_actions(workers, page,
                                                                       console_errors):
    site = workers
    site.log_in(page)
    page.goto(f"{site.url}/workflows/")
    banner = page.locator("#connection-banner")
    actions = page.locator(f"form.start-run {SUBMIT}")
    expect(actions.first).to_be_enabled()
    expect(banner).to_be_hidden()
    # The page is live once its socket is open and has heard from the server.
    wait_until("the navigation's socket", lambda: page.evaluate(
        "document.getElementById('open-requests').dataset.count !== undefined"))
    page.wait_for_timeout(500)
    assert actions.count() >= 4

    port = site.web.port
    site.web.kill()
    expect(banner).to_be_visible()
    expect(banner).to_have_text(BANNER)
    for index in range(actions.count()):
        expect(actions.nth(index)).to_be_disabled()
    # The header's log-out is no action on runs: it stays.
    expect(page.locator("header form button")).to_be_enabled()
    page.wait_for_timeout(2500)  # a few reconnection attempts against a closed port
    screenshot(page, "disconnected-banner")
    assert page.js_errors == []

    site.web = site.installation.start_web(port=port)
    expect(banner).to_be_hidden(timeout=20_000)
    for index in range(actions.count()):
        expect(actions.nth(index)).to_be_enabled()
    assert page.js_errors == []
    unexpected = [e for e in console_errors if not OUTAGE_CONSOLE.search(e)]
    assert unexpected == [], unexpected
    assert console_errors, "the outage should have left the browser's own connection errors"
