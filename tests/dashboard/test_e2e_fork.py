"""End to end, edit-and-fork: a real daphne and qcluster driven from Debian's Chromium. The
operator opens a checkpoint of a finished long loop, edits the counter's total on its Edit
and fork page (a refused edit first), lands on the new run, and sees it complete with the
edited result and a history naming the change. Screenshots land in
``test-artifacts/screenshots/``.

    .venv/bin/python -m pytest tests/dashboard/test_e2e_fork.py -q
"""

from __future__ import annotations

import json
import re

import pytest

from tests.browser import browser, page, screenshot, site  # noqa: F401

expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=15_000)

RUN_URL = re.compile(r"/runs/([0-9a-f-]{36})/?$")


def test_edit_a_checkpoint_and_fork_a_run_that_completes_with_the_edit(site, page):
    installation = site.installation
    site.start_cluster()
    source_id = installation.start_run("long-loop", {"rounds": 3})
    source = installation.wait_status(source_id, "completed")
    assert source["outputs"] == [6]
    checkpoint_id = next(cid for cid, c in installation.checkpoints(source_id).items()
                         if c["superstep"] == 2)
    site.log_in(page)

    page.goto(f"{site.url}/checkpoints/{checkpoint_id}/")
    with page.expect_navigation():
        page.locator("#checkpoint-actions a.fork").click()
    assert page.url.endswith(f"/checkpoints/{checkpoint_id}/fork/"), page.url
    counter = page.locator('textarea[name="state:counter"]')
    assert json.loads(counter.input_value()) == {"seen": [1], "total": 1}

    # -- a refused edit: shown on the form, the typed text kept, nothing created -----------
    page.locator('textarea[name="message:0"]').fill('{"n": "two"}')
    with page.expect_navigation():
        page.locator("#fork-form button[type=submit]").click()
    expect(page.locator(".fork-error")).to_contain_text("edits[0].data")
    expect(page.locator('textarea[name="message:0"]')).to_have_value('{"n": "two"}')
    screenshot(page, "fork-01-refused")
    assert len(installation.list_runs()) == 1

    # -- the edit that forks ---------------------------------------------------------------
    page.locator('textarea[name="message:0"]').fill(
        '{"n": 1, "rounds": 3, "fail_at": null, "step_ms": 0}')
    counter.fill('{"seen": [1], "total": 100}')
    screenshot(page, "fork-02-edited")
    with page.expect_navigation():
        page.locator("#fork-form button[type=submit]").click()
    found = RUN_URL.search(page.url.split("?")[0].split("#")[0])
    assert found, page.url
    fork_id = found.group(1)
    assert fork_id != source_id
    finished = installation.wait_status(fork_id, "completed")
    assert finished["outputs"] == [105]  # 100 + 2 + 3
    page.reload()
    expect(page.locator("#history-panel")).to_contain_text(
        f"forked it from checkpoint {checkpoint_id[:8]}")
    expect(page.locator("#history-panel")).to_contain_text(
        "executor_states.counter.total from 1 to 100")
    expect(page.locator("#outputs")).to_contain_text("105")
    screenshot(page, "fork-03-new-run")
