"""End to end: starting runs from the generated start forms in Chromium, against a real
daphne (no worker is needed: a started run waits queued).

The operator starts a long loop from its fields; then refuses to be refused quietly: an
unknown field typed in the JSON editor and a wrong value in a field each land on the start
page with a summary at the top and the error on the field, the page's URL is a GET (a
reload posts nothing) and what was typed is still there. Screenshots of the workflows
page and of the refused start land in ``test-artifacts/screenshots/``.

    .venv/bin/python -m pytest tests/dashboard/test_e2e_start.py -q
"""

from __future__ import annotations

import re

import pytest

from tests.browser import browser, page, screenshot, site  # noqa: F401

expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=15_000)

RUN_URL = re.compile(r"/runs/([0-9a-f-]{36})/$")


def posts_of(page) -> list[str]:
    """The URLs of every POST the page sends from now on."""
    posted: list[str] = []
    page.on("request", lambda request: posted.append(request.url)
            if request.method == "POST" else None)
    return posted


def test_start_forms_start_runs_and_show_refusals_without_resubmitting(site, page):
    installation = site.installation
    site.log_in(page)
    page.goto(f"{site.url}/workflows/")
    loop = page.locator("form#start-long-loop")
    expect(loop.locator("input[name=rounds]")).to_have_value("20")
    expect(loop.locator("textarea[name=input-json]")).to_be_hidden()  # until asked for
    expect(page.locator("form#start-map-reduce textarea[name=value]")).to_be_visible()
    screenshot(page, "start-01-workflows-generated-forms")

    # -- a run from the fields --------------------------------------------------------------
    loop.locator("input[name=rounds]").fill("3")
    with page.expect_navigation():
        loop.get_by_role("button", name="Start run").click()
    run_id = RUN_URL.search(page.url).group(1)
    assert installation.run(run_id)["input"]["fields"]["rounds"] == 3

    # -- an unknown field through the JSON editor ---------------------------------------------
    runs_before = len(installation.list_runs())
    page.goto(f"{site.url}/workflows/")
    loop = page.locator("form#start-long-loop")
    loop.get_by_label("Edit as JSON").check()
    editor = loop.locator("textarea[name=input-json]")
    expect(editor).to_be_visible()
    editor.fill('{"round": 5}')
    with page.expect_navigation():
        loop.get_by_role("button", name="Start run").click()
    start_page = f"{site.url}/workflows/long-loop/start/"
    assert page.url == start_page, page.url  # redirected: the address is a GET
    summary = page.locator(".error-summary")
    expect(summary).to_be_visible()
    expect(summary).to_contain_text('unknown field "round" (expected: rounds, fail_at, step_ms)')
    assert summary.bounding_box()["y"] < 300, "the summary is at the top of the page"
    expect(page.locator("form#start-long-loop .json-editor .form-error")).to_contain_text(
        'unknown field "round"')
    expect(page.locator("form#start-long-loop textarea[name=input-json]")).to_have_value(
        '{"round": 5}')
    screenshot(page, "start-02-refused-unknown-field")

    # Reloading the refused start posts nothing and starts nothing.
    posted = posts_of(page)
    page.reload()
    assert posted == [] and page.url == start_page
    expect(page.locator(".error-summary")).to_have_count(0)  # shown once
    assert len(installation.list_runs()) == runs_before

    # -- a wrong value in a field -------------------------------------------------------------
    page.goto(f"{site.url}/workflows/")
    form = page.locator("form#start-document-review")
    form.locator("input[name=title]").fill("")
    form.locator("input[name=body]").fill("kept as typed")
    with page.expect_navigation():
        form.get_by_role("button", name="Start run").click()
    assert page.url == f"{site.url}/workflows/document-review/start/"
    summary = page.locator(".error-summary")
    expect(summary).to_contain_text("Title: a value is required")
    expect(page.locator("form#start-document-review .field.has-error")).to_contain_text(
        "a value is required")
    expect(page.locator("form#start-document-review input[name=body]")).to_have_value(
        "kept as typed")
    # The summary's link goes to the field.
    summary.get_by_role("link").first.click()
    expect(page.locator("#start-document-review-title")).to_be_focused()
    screenshot(page, "start-03-refused-field")

    posted = posts_of(page)
    page.reload()
    assert posted == []
    assert len(installation.list_runs()) == runs_before
    assert page.js_errors == []
