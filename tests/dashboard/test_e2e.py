"""End to end: a real daphne and qcluster, driven from headless Chromium (Playwright).

The operator logs in, starts a document review from the workflows page, watches its
supersteps arrive live on the run page, approves the draft in the generated form, sees the
run complete, resumes it from its entry checkpoint (it asks again), rehydrates a new run from
a checkpoint and cancels that one. Screenshots of the main pages land in
``test-artifacts/screenshots/``.

What the pages promise (ids, classes and data attributes) is the DOM contract of the
dashboard; every selector used here is from it. Checks against the database go through
``Installation`` (read-only SQLite), never through Django in this process.

    .venv/bin/python -m pytest tests/dashboard/test_e2e.py -q
"""

from __future__ import annotations

import json
import re
import uuid
from urllib.parse import urljoin

import pytest

from tests.browser import (NavigationCounter, browser, page, record_live_events,  # noqa: F401
                           screenshot, site, wait_until)

expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=15_000)

RUN_URL = re.compile(r"/runs/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/?$")
EXECUTOR_STATES = {"idle", "running", "waiting", "done", "failed"}
CHECKPOINT_KINDS = {"entry", "superstep", "response"}
SUBMIT = "button:not([type=button]):not([type=reset])"  # a form's submit button


def status(value: str) -> re.Pattern:
    """The exact status text (surrounding whitespace allowed)."""
    return re.compile(rf"^\s*{value}\s*$")


def run_id_of(url: str) -> str:
    found = RUN_URL.search(url.split("?")[0].split("#")[0])
    assert found, f"not a run page: {url}"
    return found.group(1)


def href(page, link) -> str:
    """The absolute address a link of ``page`` points to."""
    value = link.get_attribute("href")
    assert value, "the link has no href"
    return urljoin(page.url, value)


def fields(value):
    """A stored dataclass value (``{"__type__": "dataclass", "fields": ...}``) as a dict."""
    if isinstance(value, dict) and value.get("__type__") == "dataclass":
        return value["fields"]
    return value


def hexid(run_id: str) -> str:
    return uuid.UUID(run_id).hex


def test_harness_logs_in_and_reaches_the_admin(site, page):
    """The harness itself: daphne serves the login page and the bootstrap's operator (a
    superuser) gets into the admin."""
    site.log_in(page)
    page.goto(f"{site.url}/admin/")
    expect(page).to_have_title(re.compile("Site administration"))


def test_start_form_reports_bad_input(site, page):
    runs_before = len(site.installation.list_runs())
    site.log_in(page)
    page.goto(f"{site.url}/workflows/")
    section = page.locator('section.workflow[data-workflow="document-review"]')
    record_live_events(page)  # from the run page on
    form = section.locator("form.start-run")

    form.get_by_label("Edit as JSON").check()  # the generated fields' JSON editor
    form.locator("textarea[name=input-json]").fill('{"title": ')
    with page.expect_navigation():
        form.locator(SUBMIT).first.click()
    error = page.locator('section.workflow[data-workflow="document-review"] .form-error')
    expect(error.first).to_be_visible()
    assert re.search(r"json", error.first.inner_text(), re.IGNORECASE), error.first.inner_text()

    form = page.locator('section.workflow[data-workflow="document-review"] form.start-run')
    form.locator("textarea[name=input-json]").fill(json.dumps({"body": "no title"}))
    with page.expect_navigation():
        form.locator(SUBMIT).first.click()
    error = page.locator('section.workflow[data-workflow="document-review"] .form-error')
    expect(error.first).to_contain_text("title")
    assert RUN_URL.search(page.url) is None, "bad input must not start a run"
    assert len(site.installation.list_runs()) == runs_before


def test_document_review_end_to_end(site, page):
    installation = site.installation
    title = "E2E release notes"
    published = f"published '{title}' (revision 1)"

    site.log_in(page)

    # -- workflows page: graph and start form --------------------------------------------
    page.goto(f"{site.url}/workflows/")
    section = page.locator('section.workflow[data-workflow="document-review"]')
    expect(section).to_have_count(1)
    expect(section.locator("svg.graph")).to_be_visible()
    for name in ("long-loop", "map-reduce", "ticket-router"):
        expect(page.locator(f'section.workflow[data-workflow="{name}"] svg.graph')).to_have_count(1)
    screenshot(page, "01-workflows")

    # No worker runs yet: the run page opens on a queued run, so every superstep it shows
    # afterwards must have arrived live.
    record_live_events(page)  # from the run page on
    form = section.locator("form.start-run")
    form.locator("input[name=title]").fill(title)
    with page.expect_navigation():
        form.locator(SUBMIT).first.click()
    run_id = run_id_of(page.url)
    run_url = page.url
    assert installation.run(run_id)["status"] == "queued"

    # -- run page, live ---------------------------------------------------------------------
    expect(page.locator("#run-status")).to_have_text(status("queued"))
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")
    assert page.locator("#timeline li[data-superstep]").count() == 0
    page.evaluate("window.__e2eSamePage = true")
    navigations = NavigationCounter(page)

    site.start_cluster()
    expect(page.locator("#timeline li[data-superstep]").first).to_be_attached()
    expect(page.locator("#run-status")).to_have_text(status("waiting"))
    installation.wait_status(run_id, "waiting")
    assert navigations.count == 0, f"the run page was reloaded: {navigations.urls}"
    assert page.evaluate("window.__e2eSamePage === true"), "the run page was reloaded"

    # The timeline, graph and event log show what the database holds.
    events = installation.events(run_id)
    completed_steps = {e["superstep"] for e in events if e["type"] == "superstep_completed"}
    expect(page.locator("#timeline li[data-superstep]")).to_have_count(len(completed_steps))
    shown_steps = {int(s) for s in page.locator("#timeline li[data-superstep]").evaluate_all(
        "items => items.map(li => li.dataset.superstep)")}
    assert shown_steps == completed_steps, (shown_steps, completed_steps)

    expect(page.locator("#events li[data-seq]")).to_have_count(len(events))
    shown_seqs = [int(s) for s in page.locator("#events li[data-seq]").evaluate_all(
        "items => items.map(li => li.dataset.seq)")]
    assert sorted(shown_seqs) == [e["seq"] for e in events], "events missed or duplicated"

    # The live events the page announced (benchmarks/browser_latency.py listens to them):
    # each event once, as it arrived, with the worker's timestamp.
    kept = page.evaluate("window.__liveEvents")
    assert sorted(e["seq"] for e in kept) == [e["seq"] for e in events], kept
    assert all(isinstance(e["received_at"], (int, float)) and e["created_at"] and e["type"]
               for e in kept), kept

    graph = page.locator("svg#graph")
    for executor in ("writer", "reviewer", "reviser"):
        expect(graph.locator(f'g.node[data-executor="{executor}"]')).to_have_count(1)
    states = graph.locator("g.node[data-executor]").evaluate_all(
        "nodes => nodes.map(n => [n.dataset.executor, n.dataset.state])")
    assert all(state in EXECUTOR_STATES for _, state in states), states
    # The reviewer asked for a review: the graph shows it waiting on the open request.
    expect(graph.locator('g.node[data-executor="reviewer"]')).to_have_attribute(
        "data-state", "waiting")

    request_forms = page.locator("#requests form.request-form")
    expect(request_forms).to_have_count(1)
    approved = request_forms.locator("select[name=approved]")
    assert approved.locator("option").evaluate_all("os => os.map(o => o.value)") \
        == ["", "true", "false"]
    expect(approved).to_have_value("")  # no decision is made for the approver
    expect(request_forms.locator("input[name=comment]")).to_have_count(1)
    screenshot(page, "03-run-detail-waiting")

    # -- runs list (kept open: its status cell must follow the run live) and inbox ----------
    runs_page = page.context.new_page()
    runs_page.goto(f"{site.url}/runs/")
    row = runs_page.locator(f'#runs tr[data-run="{run_id}"]')
    expect(row.locator("td.status")).to_have_text(status("waiting"))
    screenshot(runs_page, "02-runs-list")
    runs_navigations = NavigationCounter(runs_page)

    inbox = page.context.new_page()
    inbox.goto(f"{site.url}/requests/")
    expect(inbox.locator("form.request-form")).to_have_count(1)
    expect(inbox.locator("form.request-form select[name=approved]")).to_have_count(1)
    screenshot(inbox, "04-requests-inbox")
    inbox.close()

    # -- approve -------------------------------------------------------------------------
    request_forms.locator("select[name=approved]").select_option("true")
    request_forms.locator("input[name=comment]").fill("ship it")
    with page.expect_navigation():
        request_forms.locator("button[type=submit]").click()
    # The answer brings the operator back to the run page (not to a fragment of it).
    assert RUN_URL.search(page.url) and run_id_of(page.url) == run_id, \
        f"answering on the run page landed on {page.url}"
    expect(page.locator("#run-status")).to_have_text(status("completed"))
    expect(page.locator("#outputs li").filter(has_text=published)).to_have_count(1)
    finished = installation.wait_status(run_id, "completed")
    assert finished["outputs"] == [published]
    answered = installation.requests(run_id)
    assert [(r["status"], fields(r["response"])) for r in answered] == \
        [("answered", {"approved": True, "comment": "ship it"})]
    expect(page.locator("#requests form.request-form")).to_have_count(0)
    # The history says who answered, with what; the header when the run started and ended.
    answer = page.locator('#history li[data-action="answer"]')
    expect(answer).to_contain_text("operator answered request")
    expect(answer).to_contain_text('"comment": "ship it"')
    expect(page.locator('#history li[data-action="start"]')).to_contain_text("operator started it")
    expect(page.locator("#run-facts .duration")).to_have_count(1)
    wait_until("the run page to show every event of the run", lambda: page.locator(
        "#events li[data-seq]").count() == len(installation.events(run_id)))
    screenshot(page, "05-run-detail-completed")

    expect(row.locator("td.status")).to_have_text(status("completed"))
    assert runs_navigations.count == 0, f"the runs list was reloaded: {runs_navigations.urls}"

    # -- checkpoint table ------------------------------------------------------------------
    stored = installation.checkpoints(run_id)
    rows = page.locator("#checkpoints tr[data-checkpoint]")
    expect(rows).to_have_count(len(stored))
    shown = rows.evaluate_all("rows => rows.map(r => [r.dataset.checkpoint, "
                              "r.dataset.superstep, r.dataset.kind])")
    assert {cid for cid, _, _ in shown} == set(stored)
    for checkpoint_id, superstep, kind in shown:
        assert kind in CHECKPOINT_KINDS, shown
        assert int(superstep) == stored[checkpoint_id]["superstep"], (shown, stored)
        assert kind == stored[checkpoint_id]["kind"], (shown, stored)
    for part in ("button.resume", "button.rehydrate", "a.export", "a.diff"):
        expect(rows.locator(part)).to_have_count(len(stored))
    entry = page.locator('#checkpoints tr[data-checkpoint][data-kind="entry"]')
    expect(entry).to_have_count(1)
    entry_id = entry.get_attribute("data-checkpoint")

    exported = page.request.get(href(page, entry.locator("a.export")))
    assert exported.ok, exported.status
    assert isinstance(exported.json(), dict)

    step = page.locator('#checkpoints tr[data-checkpoint][data-kind="superstep"]').last
    step_id = step.get_attribute("data-checkpoint")
    checkpoint_page = runs_page.goto(href(page, step.locator("a.diff")))
    assert checkpoint_page.ok, checkpoint_page.status
    assert step_id in runs_page.url, runs_page.url  # the checkpoint's own page
    expect(runs_page.locator("h1")).to_contain_text(step_id[:8])
    screenshot(runs_page, "06-checkpoint-detail")
    runs_page.close()

    # -- resume from the entry checkpoint: the review asks again --------------------------
    events_before = len(installation.events(run_id))
    with page.expect_navigation():
        entry.locator("button.resume").click()
    assert page.dialogs[-1] == ("Resume this run from its checkpoint at superstep 0? Work after "
                                "that checkpoint is set aside as an abandoned branch.")
    assert run_id_of(page.url) == run_id, page.url
    expect(page.locator("#run-status")).to_have_text(status("waiting"))
    expect(page.locator("#requests form.request-form")).to_have_count(1)
    resumed = installation.wait_status(run_id, "waiting")
    assert resumed["started_at"] is not None
    assert len(installation.events(run_id)) > events_before
    assert sorted(r["status"] for r in installation.requests(run_id)) == ["answered", "open"]
    expect(page.locator("#connection")).to_have_attribute("data-state", "live")

    # -- rehydrate a new run from a checkpoint ---------------------------------------------
    source = page.locator(f'#checkpoints tr[data-checkpoint="{entry_id}"]')
    with page.expect_navigation():
        source.locator("button.rehydrate").click()
    # The source run waits on a request: the page said so before starting the new run.
    assert page.dialogs[-1].startswith("Start a new run from superstep 0? This run keeps "
                                       "waiting on its open request reviewer ReviewRequest ("), \
        page.dialogs
    child_id = run_id_of(page.url)
    assert child_id != run_id
    parent_link = page.locator("#lineage a.parent-run")
    expect(parent_link).to_have_count(1)
    assert run_id_of(href(page, parent_link)) == run_id
    child = installation.wait_status(child_id, "waiting", "running", "queued")
    assert child["parent_run_id"] == hexid(run_id)
    expect(page.locator("#run-status")).to_have_text(status("waiting"))
    installation.wait_status(child_id, "waiting")
    # The panels catch up with the new run: its request and its checkpoints.
    expect(page.locator("#requests form.request-form")).to_have_count(1)
    wait_until("the rehydrated run's checkpoints on its page", lambda: page.locator(
        "#checkpoints tr[data-checkpoint]").count() == len(installation.checkpoints(child_id)))
    screenshot(page, "07-rehydrated-run")

    # -- cancel the rehydrated run ----------------------------------------------------------
    cancel = page.locator("form.cancel")
    wait_until("the cancel form to know of the open request", lambda: "will be cancelled" in (
        cancel.get_attribute("data-confirm") or ""))
    with page.expect_navigation():
        cancel.locator(SUBMIT).first.click()
    assert page.dialogs[-1].startswith("Cancel this run? It stops now. The open request "
                                       "reviewer ReviewRequest ("), page.dialogs
    assert run_id_of(page.url) == child_id
    expect(page.locator("#run-status")).to_have_text(status("cancelled"))
    installation.wait_status(child_id, "cancelled")

    with page.expect_navigation():
        page.locator("#lineage a.parent-run").click()
    assert page.url.rstrip("/") == run_url.rstrip("/")
    assert page.js_errors == [], page.js_errors
