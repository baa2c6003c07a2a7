"""End to end: a request raised inside a sub-workflow, answered from the browser.

A ``document-pipeline`` run (intake, then the document-review workflow as its ``review``
step, then archive) waits on the review's request, which surfaces as the pipeline run's
request ``review/<inner id>``. The operator approves it in the Requests inbox's generated
form; the inner review resumes, the archive files what it published, and the run completes.
The workflows page and the run page draw the review step as a box holding its own graph.

    .venv/bin/python -m pytest tests/dashboard/test_e2e_subworkflow.py -q
"""

from __future__ import annotations

import re
import uuid

import pytest

from tests.browser import browser, page, screenshot, site  # noqa: F401

expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=15_000)

INNER = ("review/writer", "review/reviewer", "review/reviser")


def expect_nested_review(graph) -> None:
    """``graph`` draws the review step as a box holding the document-review graph."""
    box = graph.locator('g.subworkflow[data-executor="review"]')
    expect(box).to_have_count(1)
    expect(box.locator("text.group-label")).to_contain_text("review")
    for executor in INNER:
        expect(box.locator(f'g.node[data-executor="{executor}"]')).to_have_count(1)
    for executor in ("intake", "archive"):  # outside the box
        expect(graph.locator(f'g.node[data-executor="{executor}"]')).to_have_count(1)
        expect(box.locator(f'g.node[data-executor="{executor}"]')).to_have_count(0)


def test_a_request_raised_inside_a_sub_workflow_is_answered_in_the_inbox(site, page):  # noqa: F811
    installation = site.installation
    site.start_cluster()
    site.log_in(page)

    # -- the workflows page draws the pipeline with its review step nested --------------------
    page.goto(f"{site.url}/workflows/")
    card = page.locator('[data-workflow="document-pipeline"]')
    expect(card).to_have_count(1)
    card.scroll_into_view_if_needed()
    expect_nested_review(card.locator("svg.graph"))
    screenshot(page, "subworkflow-01-workflows")

    # -- a run waits on the review's request, which is the pipeline run's -----------------------
    run_id = installation.start_run("document-pipeline",
                                    {"title": "Field notes", "audience": "the crew"})
    installation.wait_status(run_id, "waiting")
    request, = installation.requests(run_id)
    assert request["status"] == "open" and request["request_id"].startswith("review/")

    # -- the run page: the box, and the review step waiting on its request ----------------------
    page.goto(f"{site.url}/runs/{run_id}/")
    graph = page.locator("svg#graph")
    expect_nested_review(graph)
    expect(graph.locator('g.subworkflow[data-executor="review"]')).to_have_attribute(
        "data-state", "waiting")
    # Inside the box, the executor that asked waits; the writer ran in that superstep.
    expect(graph.locator('g.node[data-executor="review/reviewer"]')).to_have_attribute(
        "data-state", "waiting")
    expect(graph.locator('g.node[data-executor="review/writer"]')).to_have_attribute(
        "data-state", "done")
    screenshot(page, "subworkflow-02-run-waiting")

    # The run page stays open in a second tab, to follow the inner progress live.
    live = page.context.new_page()
    live_errors: list[str] = []
    live.on("pageerror", lambda error: live_errors.append(str(error)))
    live.goto(f"{site.url}/runs/{run_id}/")
    live_graph = live.locator("svg#graph")
    expect(live_graph.locator('g.node[data-executor="review/reviewer"]')).to_have_attribute(
        "data-state", "waiting")
    expect(live.locator("#connection")).to_have_attribute("data-state", "live")

    # -- approve in the inbox's generated form ----------------------------------------------
    page.goto(f"{site.url}/requests/")
    # The database gives the row's uuid as hex; the page writes it with dashes.
    form = page.locator(f'form.request-form[data-request="{uuid.UUID(request["id"])}"]')
    expect(form).to_have_count(1)
    approved = form.locator("select[name=approved]")
    expect(approved).to_have_value("")  # the approver decides; nothing is chosen for them
    screenshot(page, "subworkflow-03-inbox")
    approved.select_option("true")
    form.locator("input[name=comment]").fill("good to file")
    with page.expect_navigation():
        form.locator("button[type=submit]").click()

    # -- the inner review resumes, the archive files it, the run completes -------------------
    finished = installation.wait_status(run_id, "completed")
    assert finished["outputs"] == ["published 'Field notes' (revision 1), sent to the crew"]
    answered, = installation.requests(run_id)
    assert answered["status"] == "answered"
    assert answered["request_id"] == request["request_id"]

    # Live, in the tab left open: the inner executors ran and nothing waits any more.
    expect(live.locator("#run-status")).to_have_text(re.compile(r"^\s*completed\s*$"))
    for executor in INNER:
        expect(live_graph.locator(f'g.node[data-executor="{executor}"]')).to_have_attribute(
            "data-state", re.compile(r"^(done|idle)$"))
    expect(live_graph.locator('g.subworkflow[data-executor="review"]')).to_have_attribute(
        "data-state", re.compile(r"^(done|idle)$"))
    screenshot(live, "subworkflow-04a-run-live-after-answer")
    assert not live_errors, live_errors
    live.close()

    page.goto(f"{site.url}/runs/{run_id}/")
    expect(page.locator("#run-status")).to_have_text(re.compile(r"^\s*completed\s*$"))
    for executor in INNER:  # drawn from the recorded events: ran, or idle
        expect(page.locator(f'#graph g.node[data-executor="{executor}"]')).to_have_attribute(
            "data-state", re.compile(r"^(done|idle)$"))
    expect(page.locator("#outputs li").filter(has_text="sent to the crew")).to_have_count(1)
    expect_nested_review(page.locator("svg#graph"))
    screenshot(page, "subworkflow-04-run-completed")
    assert not page.js_errors, page.js_errors
