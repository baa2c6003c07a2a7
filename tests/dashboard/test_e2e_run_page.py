"""The run page in a real browser against real daphne and qcluster: windows on a long run,
panels that stay live during a fast one, branches after a resume, and the activity trail with
the confirmations that precede each risky action."""

import re

import pytest
from playwright.sync_api import expect

from tests.browser import NavigationCounter, browser, page, screenshot, site  # noqa: F401


@pytest.fixture(scope="module")
def cluster(site):  # noqa: F811
    return site.start_cluster()


def _supersteps(page, selector):  # noqa: F811
    """The supersteps a list shows (newest first, as the page lists them), oldest first."""
    shown = [int(s) for s in page.locator(selector).evaluate_all(
        "items => items.map(item => item.dataset.superstep)")]
    assert shown == sorted(shown, reverse=True), shown
    return shown[::-1]


def test_a_long_run_is_shown_in_windows_and_jumps_to_a_superstep(site, page, cluster):  # noqa: F811
    run_id = site.installation.start_run("long-loop", {"rounds": 150})  # 300 supersteps
    site.installation.wait_status(run_id, "completed", timeout=120)
    site.log_in(page)
    page.goto(f"{site.url}/runs/{run_id}/")
    assert _supersteps(page, "#timeline li[data-superstep]") == list(range(251, 301))
    expect(page.locator("#timeline-count")).to_have_text(re.compile(r"251–300 of 1–300"))
    events = site.installation.events(run_id)
    expect(page.locator("#events li[data-seq]")).to_have_count(100)
    expect(page.locator("#events-count")).to_contain_text(f"100 of {len(events)}")
    expect(page.locator("#checkpoints tbody tr")).to_have_count(20)
    expect(page.locator("#checkpoints-count")).to_contain_text("1–20 of 301")
    screenshot(page, "run-page-long-run")

    with page.expect_navigation():
        page.locator("#timeline-panel a.earlier").click()
    assert _supersteps(page, "#timeline li[data-superstep]") == list(range(201, 251))

    page.fill("#jump-at", "42")
    with page.expect_navigation():
        page.locator("form.jump button").click()
    expect(page.locator('#timeline li.target[data-superstep="42"]')).to_have_count(1)
    # Scrolled to inside its list (50 supersteps do not fit the list's height).
    expect(page.locator('#timeline li.target[data-superstep="42"]')).to_be_in_viewport()
    expect(page.locator('#checkpoints tr.target[data-superstep="42"]')).to_have_count(1)
    first_seq = int(page.locator("#events li[data-seq]").last.get_attribute("data-seq"))
    assert next(e for e in events if e["seq"] == first_seq)["superstep"] == 42
    screenshot(page, "run-page-jump-to-42")


def test_panels_stay_live_and_bounded_during_a_fast_run(site, page, cluster):  # noqa: F811
    site.log_in(page)
    run_id = site.installation.start_run("long-loop", {"rounds": 400, "step_ms": 10})
    page.goto(f"{site.url}/runs/{run_id}/")
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    navigations = NavigationCounter(page)
    newest_rows, sizes = [], []
    while site.installation.run(run_id)["status"] in ("queued", "running"):
        newest = page.locator("#checkpoints tbody tr[data-superstep]").first
        if newest.count():
            newest_rows.append(int(newest.get_attribute("data-superstep")))
        sizes.append((page.locator("#timeline li").count(),
                      page.locator("#events li").count()))
        page.wait_for_timeout(300)
    # The checkpoint table followed the run while supersteps kept arriving (a refresh that
    # waited for a pause would have shown nothing new until the end).
    assert len(set(newest_rows)) >= 5, newest_rows
    assert newest_rows == sorted(newest_rows), newest_rows
    assert all(steps <= 50 and events <= 100 for steps, events in sizes), sizes
    expect(page.locator("#run-status")).to_have_text("completed")
    expect(page.locator("#checkpoints tbody tr[data-superstep]").first).to_have_attribute(
        "data-superstep", "800")
    assert _supersteps(page, "#timeline li[data-superstep]") == list(range(751, 801))
    assert navigations.count == 0, navigations.urls


def test_a_resume_starts_a_branch_shown_apart_from_the_abandoned_work(site, page, cluster):  # noqa: F811
    run_id = site.installation.start_run("long-loop", {"rounds": 30})  # 60 supersteps
    site.installation.wait_status(run_id, "completed", timeout=60)
    site.log_in(page)
    page.goto(f"{site.url}/runs/{run_id}/?at=20")
    row = page.locator('#checkpoints tr[data-superstep="20"][data-kind="superstep"]')
    with page.expect_navigation():
        row.locator("button.resume").click()
    assert "set aside as an abandoned branch" in page.dialogs[-1], page.dialogs
    site.installation.wait_status(run_id, "completed", timeout=60)
    page.goto(f"{site.url}/runs/{run_id}/")
    expect(page.locator('#branches li[data-branch="1"].current')).to_have_count(1)
    expect(page.locator('#branches li[data-branch="0"].kept')).to_contain_text(
        "the run as first started")
    expect(page.locator('#branches li[data-branch="1"]')).to_contain_text(
        "resumed from superstep 20 of branch 0")
    steps = _supersteps(page, "#timeline li[data-superstep]")
    assert steps == list(range(11, 61)), steps  # one line: each superstep once
    rows = page.locator("#checkpoints tbody tr[data-superstep]").evaluate_all(
        "rows => rows.map(r => [Number(r.dataset.superstep), Number(r.dataset.branch)])")
    assert rows == [[s, 1] for s in range(60, 40, -1)], rows
    screenshot(page, "run-page-after-resume")

    page.goto(f"{site.url}/runs/{run_id}/?branch=0")
    expect(page.locator(".banner-abandoned")).to_contain_text(
        "which the run left after superstep 20")
    assert _supersteps(page, "#timeline li[data-superstep]")[-1] == 60
    screenshot(page, "run-page-branch-0")


def test_the_activity_trail_and_the_confirmations(site, page, cluster):  # noqa: F811
    run_id = site.installation.start_run("document-review", {"title": "Trail"})
    site.installation.wait_status(run_id, "waiting", timeout=60)
    site.log_in(page)
    page.goto(f"{site.url}/runs/{run_id}/")
    expect(page.locator('#graph g.node[data-executor="reviewer"]')).to_have_attribute(
        "data-state", "waiting")

    with page.expect_navigation():
        page.locator("form.cancel button").click()
    assert re.search(r"The open request reviewer ReviewRequest \(\w{8}\) will be cancelled",
                     page.dialogs[-1]), page.dialogs
    expect(page.locator("#run-status")).to_have_text("cancelled")
    expect(page.locator("#history li").first).to_contain_text("cancelled it (it was waiting)")

    newest = page.locator("#checkpoints tbody tr[data-superstep]").first
    superstep = newest.get_attribute("data-superstep")
    with page.expect_navigation():
        newest.locator("button.resume").click()
    assert page.dialogs[-1].startswith(f"Resume this run from its checkpoint at superstep "
                                       f"{superstep}?"), page.dialogs
    site.installation.wait_status(run_id, "waiting", timeout=60)
    page.reload()
    form = page.locator("#requests form.request-form")
    form.locator("select[name=approved]").select_option("true")
    form.locator("input[name=comment]").fill("fine")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()
    site.installation.wait_status(run_id, "completed", timeout=60)
    page.reload()
    trail = page.locator("#history li").all_inner_texts()
    who = site.username
    assert re.search(rf"{who} answered request \w{{8}} with .*\"approved\": true", trail[0]), trail
    assert re.search(rf"{who} resumed it from its checkpoint at superstep {superstep} "
                     rf"\(it was cancelled\)", trail[1]), trail
    assert re.search(rf"{who} cancelled it \(it was waiting\)", trail[2]), trail
    assert "started it" in trail[-1], trail
    screenshot(page, "run-page-activity-trail")
