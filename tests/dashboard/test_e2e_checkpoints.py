"""End to end, the checkpoint pages: a real daphne and qcluster driven from Debian's
Chromium. The operator opens a checkpoint of a finished run, compares it with another one,
downloads its export, imports it on the import page (a bad file first), lands on the new
run, and resumes that run from its checkpoint's page after confirming. Screenshots land in
``test-artifacts/screenshots/``.

    .venv/bin/python -m pytest tests/dashboard/test_e2e_checkpoints.py -q
"""

from __future__ import annotations

import json
import re

import pytest

from tests.browser import browser, page, screenshot, site  # noqa: F401

expect = pytest.importorskip("playwright.sync_api").expect
expect.set_options(timeout=15_000)

RUN_URL = re.compile(r"/runs/([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})/?$")


def run_id_of(url: str) -> str:
    found = RUN_URL.search(url.split("?")[0].split("#")[0])
    assert found, f"not a run page: {url}"
    return found.group(1)


def test_export_import_compare_and_resume_from_a_checkpoint_page(site, page, tmp_path):
    installation = site.installation
    site.start_cluster()
    source_id = installation.start_run("long-loop", {"rounds": 4})
    review_id = installation.start_run("document-review", {"title": "Checkpoint pages"})
    source = installation.wait_status(source_id, "completed")
    review = installation.wait_status(review_id, "waiting")
    site.log_in(page)

    # -- a checkpoint holding a request: dataclasses shown as their plain fields ----------
    page.goto(f"{site.url}/checkpoints/{review['head_checkpoint_id']}/")
    expect(page.locator('#diff tr[data-path^="pending_requests."]')).to_have_count(1)
    assert "__type__" not in page.inner_text("body")
    expect(page.locator("#diff")).to_contain_text('"title": "Checkpoint pages"')
    screenshot(page, "checkpoint-00-waiting-review")

    # -- the checkpoint page of a finished run -------------------------------------------
    page.goto(f"{site.url}/runs/{source_id}/")
    row = page.locator('#checkpoints tr[data-checkpoint][data-superstep="2"]').first
    checkpoint_id = row.get_attribute("data-checkpoint")
    with page.expect_navigation():
        row.locator("a.diff").click()
    assert f"/checkpoints/{checkpoint_id}/" in page.url
    expect(page.locator("h1")).to_contain_text(checkpoint_id[:8])
    actions = page.locator("#checkpoint-actions")
    expect(actions.locator("button.resume")).to_be_enabled()
    expect(actions.locator("button.rehydrate")).to_be_enabled()
    expect(page.locator("#diff h2")).to_contain_text("Changes since the previous checkpoint")
    assert "__type__" not in page.inner_text("body")  # plain JSON, no encoding envelopes
    screenshot(page, "checkpoint-01-page")

    # -- compare with a later checkpoint of the run, by its superstep ---------------------
    page.fill("#compare", "4")
    with page.expect_navigation():
        page.locator("#compare-form button[type=submit]").click()
    assert page.url.endswith("?compare=4"), page.url
    expect(page.locator("#diff h2")).to_contain_text("Changes from superstep 2")
    expect(page.locator("#diff h2")).to_contain_text("to superstep 4")
    superstep = page.locator('#diff tr[data-path="superstep"] code.value')
    expect(superstep).to_have_text(["2", "4"])
    screenshot(page, "checkpoint-02-compare")

    # -- download its export ---------------------------------------------------------------
    with page.expect_download() as download:
        actions.locator("a.export").click()
    exported = tmp_path / download.value.suggested_filename
    download.value.save_as(exported)
    document = json.loads(exported.read_text())
    assert document["checkpoint"]["checkpoint_id"] == checkpoint_id

    # -- the import page, from the runs page: a bad file first, then the export -----------
    page.goto(f"{site.url}/runs/")
    with page.expect_navigation():
        page.locator("a.import-checkpoint").click()
    expect(page.locator("h1")).to_have_text("Import a checkpoint")
    expect(page.locator(".import-explained")).to_contain_text("attributed to you")
    screenshot(page, "checkpoint-03-import")
    runs_before = len(installation.list_runs())
    not_json = tmp_path / "notes.json"
    not_json.write_text("these are notes, not a checkpoint")
    page.set_input_files("#import-file", str(not_json))
    with page.expect_navigation():
        page.locator("#import-form button[type=submit]").click()
    expect(page.locator(".import-error")).to_contain_text("notes.json cannot be imported: "
                                                          "it is not JSON")
    assert len(installation.list_runs()) == runs_before
    screenshot(page, "checkpoint-04-import-refused")

    page.set_input_files("#import-file", str(exported))
    with page.expect_navigation():
        page.locator("#import-form button[type=submit]").click()
    imported_id = run_id_of(page.url)
    assert imported_id != source_id
    expect(page.locator(".messages li.success")).to_contain_text(
        "was imported as this new run (it was already stored here, so this run holds a copy")
    imported = installation.run(imported_id)
    assert (imported["status"], imported["current_superstep"]) == ("cancelled", 2)
    (copied_id,) = installation.checkpoints(imported_id)
    assert copied_id != checkpoint_id
    screenshot(page, "checkpoint-05-imported-run")

    # -- resume the new run from its checkpoint's page ---------------------------------------
    page.goto(f"{site.url}/checkpoints/{copied_id}/")
    expect(page.locator(".imported-from")).to_contain_text(checkpoint_id[:8])
    resume = page.locator("#checkpoint-actions form").filter(has=page.locator("button.resume"))
    asked = resume.get_attribute("data-confirm")
    assert asked.startswith("Resume this run from its checkpoint at superstep 2? "), asked
    with page.expect_navigation():
        resume.locator("button.resume").click()
    assert page.dialogs == [asked]
    assert run_id_of(page.url) == imported_id
    finished = installation.wait_status(imported_id, "completed")
    assert finished["outputs"] == source["outputs"]
    page.reload()  # live updates are test_e2e.py's subject; this page is read once done
    expect(page.locator("#run-status")).to_have_text(re.compile(r"^\s*completed\s*$"))
