"""The checkpoint page (plain state, a diff to any checkpoint of its run, Resume and
Rehydrate) and the import page (upload an export, get a new run, or a named refusal)."""

import copy
import html
import json
import re
from types import SimpleNamespace

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from dashboard.views import checkpoints as checkpoint_views
from workflows_app import services
from workflows_app.diffs import diff_documents
from workflows_app.models import Checkpoint, OperatorAction, PendingRequest, Run
from workflows_app.states import ActionKind, RunStatus

pytestmark = pytest.mark.django_db

IMPORT_URL = "/checkpoints/import/"


@pytest.fixture(autouse=True)
def _quiet(quiet_channels):
    """Pages are checked here; their websockets in test_consumers.py."""


@pytest.fixture
def loop(execute):
    """A completed long loop: an entry checkpoint and one per superstep."""
    run = execute(services.start_run("long-loop", {"rounds": 4}))
    assert run.status == RunStatus.COMPLETED
    return run


@pytest.fixture
def review(execute):
    """A document review waiting on its approval request."""
    run = execute(services.start_run("document-review", {"title": "Plan"}))
    assert run.status == RunStatus.WAITING
    return run


def _page(client, checkpoint, **query):
    return client.get(reverse("dashboard:checkpoint", args=[checkpoint.pk]), query)


def _forms(page_html: str) -> dict[str, dict[str, str]]:
    """The action forms of a page by action (resume, rehydrate): their attributes and the
    checkpoint they carry."""
    found = {}
    for form in re.finditer(r"<form\b([^>]*)>(.*?)</form>", page_html, re.S):
        attributes = dict(re.findall(r'([\w-]+)="([^"]*)"', form.group(1)))
        action = attributes.get("action", "")
        carried = re.search(r'name="checkpoint_id" value="([^"]+)"', form.group(2))
        if carried:
            found.setdefault(action.rstrip("/").rsplit("/", 1)[-1], []).append(
                {**{k: html.unescape(v) for k, v in attributes.items()},
                 "checkpoint_id": carried.group(1)})
    return found


def _upload(content, name="checkpoint.json"):
    data = content if isinstance(content, bytes) else json.dumps(content).encode()
    return SimpleUploadedFile(name, data, content_type="application/json")


def _rows():
    return (Run.objects.count(), Checkpoint.objects.count(), PendingRequest.objects.count(),
            OperatorAction.objects.count())


# --------------------------------------------------------------------------- actions
def test_operators_get_resume_and_rehydrate_with_the_run_pages_confirmations(
        client, member, review):
    member("operators")
    entry = review.checkpoints.get(kind="entry")
    forms = _forms(_page(client, entry).content.decode())
    run_page = _forms(client.get(reverse("dashboard:run", args=[review.pk])).content.decode())
    same_row = {action: next(f for f in run_page[action] if f["checkpoint_id"] == entry.pk)
                for action in ("resume", "rehydrate")}
    for action in ("resume", "rehydrate"):
        (form,) = forms[action]
        assert form["checkpoint_id"] == entry.pk
        assert form["action"] == reverse("dashboard:run-action", args=[review.pk, action])
        assert form["method"] == "post"
        # The very texts of the run page (its _confirmations), about this checkpoint.
        assert form["data-confirm"] == same_row[action]["data-confirm"]
    named = f"reviewer ReviewRequest ({review.requests.get().request_id[:8]})"
    assert forms["resume"][0]["data-confirm"].startswith(
        "Resume this run from its checkpoint at superstep 0? ")
    assert forms["resume"][0]["data-confirm"].endswith(
        f"The open request {named} will be cancelled.")
    assert forms["rehydrate"][0]["data-confirm"] == (
        f"Start a new run from superstep 0? This run keeps waiting on its open request "
        f"{named}; the new run asks again.")


def test_resuming_from_the_checkpoint_page_moves_the_run_to_that_checkpoint(
        client, member, loop):
    member("operators")
    second = loop.checkpoints.get(superstep=2)
    (form,) = _forms(_page(client, second).content.decode())["resume"]
    answer = client.post(form["action"], {"checkpoint_id": form["checkpoint_id"]})
    assert answer.status_code == 302
    assert answer["Location"] == reverse("dashboard:run", args=[loop.pk])
    loop.refresh_from_db()
    assert (loop.status, loop.head_checkpoint_id) == (RunStatus.QUEUED, second.pk)
    assert loop.actions.filter(kind=ActionKind.RESUME, checkpoint_id=second.pk).exists()


def test_resume_is_not_offered_while_the_run_is_active_but_rehydrate_is(client, member, loop):
    member("operators")
    checkpoint = loop.checkpoints.get(superstep=1)
    for status in (RunStatus.QUEUED, RunStatus.RUNNING):
        Run.objects.filter(pk=loop.pk).update(status=status)
        page = _page(client, checkpoint).content.decode()
        forms = _forms(page)
        assert "resume" not in forms and len(forms["rehydrate"]) == 1
        assert f"the run is {status}: resume once it stops" in page


def test_viewers_see_the_checkpoint_without_actions(client, member, review):
    member("viewers")
    page = _page(client, review.head_checkpoint)
    assert page.status_code == 200
    assert _forms(page.content.decode()) == {}
    assert 'class="resume' not in page.content.decode()
    assert 'class="export' in page.content.decode()  # exporting is reading


# --------------------------------------------------------------------------- plain values
def test_sections_and_the_diff_show_plain_json_without_envelopes(client, member, review):
    member("viewers")
    head = review.head_checkpoint
    assert "__type__" in json.dumps(head.decoded())  # what the page must not show
    page = _page(client, head).content.decode()
    empty = re.search(r'<p class="muted empty-sections">Empty: (.*?)\.</p>', page)
    for name, key in checkpoint_views.SECTIONS:  # a card each, or named as empty
        if head.decoded()[key]:
            assert f"<h2>{name}</h2>" in page, name
        else:
            assert name in empty.group(1).split(", "), name
    assert page.count('<pre class="json">') == sum(
        1 for _, key in checkpoint_views.SECTIONS if head.decoded()[key])
    assert "__type__" not in page and "&quot;fields&quot;" not in page
    request_id = review.requests.get().request_id
    # the request the review waits on, added since the previous checkpoint, as plain fields
    row = re.search(rf'<tr data-path="pending_requests.{request_id}" data-change="added">'
                    r"(.*?)</tr>", page, re.S)
    assert row, page
    after = json.loads(html.unescape(re.findall(r'<code class="value">(.*?)</code>',
                                                row.group(1), re.S)[-1]))
    assert after["data"] == {"body": after["data"]["body"], "revision": 1, "title": "Plan"}
    assert after["source_executor_id"] == "reviewer"


def test_the_diff_is_computed_on_plain_values_down_to_the_changed_field():
    def draft(title):
        return {"__type__": "dataclass", "class": "examples.Draft",
                "fields": {"title": title, "revision": 1}}

    def document(title, superstep):
        return {"superstep": superstep, "executor_states": {"writer": {"draft": draft(title)}},
                "shared_state": {}, "messages": [], "pending_requests": {},
                "fan_in_buffers": {}}

    before = SimpleNamespace(decoded=lambda: document("Old", 1))
    after = SimpleNamespace(decoded=lambda: document("New", 2))
    assert checkpoint_views.plain_changes(before, after) == [
        {"path": "superstep", "change": "changed", "before": 1, "after": 2},
        {"path": "executor_states.writer.draft.title", "change": "changed",
         "before": "Old", "after": "New"}]
    # on the encoded documents the change stops at the envelope
    encoded = diff_documents(document("Old", 1), document("New", 2))
    assert encoded[1]["path"] == "executor_states.writer.draft"


def test_long_values_are_cut_and_say_how_long_they_were():
    row = checkpoint_views._change_row({"path": "shared_state.big", "change": "added",
                                        "after": "x" * 1000})
    assert row["before"] is None
    assert row["after"].startswith('"xxx') and row["after"].endswith("… (1,002 characters)")
    assert len(row["after"]) < 450


# --------------------------------------------------------------------------- compare
def _total(checkpoint) -> int:
    return checkpoint.decoded()["executor_states"]["counter"]["total"]


def test_compare_with_a_superstep_number_diffs_oldest_first(client, member, loop):
    member("viewers")
    first, fourth = loop.checkpoints.get(superstep=1), loop.checkpoints.get(superstep=4)
    for page_of, other in ((fourth, "1"), (first, "4")):  # from either end
        page = _page(client, page_of, compare=other)
        body = page.content.decode()
        assert page.status_code == 200
        assert re.search(r"Changes from superstep 1\s.*?to superstep 4", body, re.S)
        superstep = re.search(r'<tr data-path="superstep".*?</tr>', body, re.S).group(0)
        assert re.findall(r'<code class="value">(.*?)</code>', superstep) == ["1", "4"]
        total = re.search(r'<tr data-path="executor_states.counter.total".*?</tr>', body, re.S)
        assert re.findall(r'<code class="value">(.*?)</code>', total.group(0)) == [
            str(_total(first)), str(_total(fourth))]
    default = _page(client, fourth).content.decode()
    assert "Changes since the previous checkpoint" in default
    assert re.findall(r'<code class="value">(.*?)</code>', re.search(
        r'<tr data-path="superstep".*?</tr>', default, re.S).group(0)) == ["3", "4"]


def test_compare_with_an_id_or_its_first_characters(client, member, loop):
    member("viewers")
    entry, third = loop.checkpoints.get(kind="entry"), loop.checkpoints.get(superstep=3)
    for query in (entry.pk, entry.pk[:8], f"  {entry.pk[:6]} "):
        body = _page(client, third, compare=query).content.decode()
        assert re.search(r"Changes from superstep 0\s.*?to superstep 3", body, re.S), query
        assert f'href="/checkpoints/{entry.pk}/"' in body


def test_a_checkpoint_of_another_run_is_refused_by_name(client, member, loop, review):
    member("viewers")
    theirs = review.head_checkpoint
    page = _page(client, loop.head_checkpoint, compare=theirs.pk)
    body = html.unescape(page.content.decode())
    assert page.status_code == 400
    assert (f"checkpoint {theirs.pk} belongs to run {review.pk} (document-review), not to "
            f"run {loop.pk}: only checkpoints of the same run can be compared") in body
    assert "Changes since the previous checkpoint" in body  # the page is still there


@pytest.mark.parametrize("query, words", [
    ("99", "has no checkpoint at superstep 99"),
    ("99999999999", "has no checkpoint at superstep 99999999999"),
    ("zzzz", "has no checkpoint whose id is or starts with 'zzzz'"),
    ("abc", "has no checkpoint whose id is or starts with 'abc'"),
])
def test_a_compare_that_names_nothing_says_so(client, member, loop, query, words):
    member("viewers")
    page = _page(client, loop.head_checkpoint, compare=query)
    assert page.status_code == 400
    assert words in html.unescape(page.content.decode())


def test_comparing_a_checkpoint_with_itself_is_refused(client, member, loop):
    member("viewers")
    head = loop.head_checkpoint
    for query in (head.pk, str(head.superstep)):
        page = _page(client, head, compare=query)
        assert page.status_code == 400
        assert "compare-error" in page.content.decode()


def test_a_superstep_with_several_checkpoints_offers_them_all(client, member, execute, review):
    member("viewers")
    services.respond(review.requests.get().pk, {"approved": True})
    done = execute(review)
    shared = [c for c in done.checkpoints.order_by("created_at")
              if done.checkpoints.filter(superstep=c.superstep).count() > 1]
    assert len(shared) >= 2  # a response checkpoint shares its superstep number
    entry = done.checkpoints.get(kind="entry")
    body = _page(client, entry, compare=str(shared[0].superstep)).content.decode()
    assert f"names {len(shared)} checkpoints of this run; choose one" in html.unescape(body)
    for checkpoint in shared:
        assert f'href="?compare={checkpoint.pk}"' in body


def test_the_page_lists_no_checkpoints_of_a_long_run_and_reads_as_much_as_for_a_short_one(
        client, member, execute):
    member("viewers")
    queries = []
    for rounds in (3, 40):
        run = execute(services.start_run("long-loop", {"rounds": rounds}))
        with CaptureQueriesContext(connection) as captured:
            body = _page(client, run.checkpoints.get(superstep=3), compare="2").content.decode()
        assert "Changes from superstep 2" in body
        queries.append(len(captured.captured_queries))
    assert queries[0] == queries[1], queries
    long_run = run
    assert long_run.checkpoints.count() > 40
    middle = long_run.checkpoints.get(superstep=20)
    body = _page(client, middle, compare="5").content.decode()
    assert "<select" not in body
    shown = {c for c in long_run.checkpoints.values_list("checkpoint_id", flat=True)
             if c in body}
    # this one, the one compared with, previous, next, first and head: not the other 35
    assert len(shown) <= 6


# --------------------------------------------------------------------------- import page
def test_the_import_page_explains_and_needs_the_operate_role(client, member, make_user):
    member("viewers")
    assert client.get(IMPORT_URL).status_code == 403
    assert client.post(IMPORT_URL, {"file": _upload({})}).status_code == 403
    runs = client.get(reverse("dashboard:runs")).content.decode()
    assert "import-checkpoint" not in runs
    client.force_login(make_user("op", "operators"))
    page = client.get(IMPORT_URL).content.decode()
    assert 'type="file"' in page and 'enctype="multipart/form-data"' in page
    assert "new run" in page and "attributed to you (op)" in page and "ready to resume" in page
    runs = client.get(reverse("dashboard:runs")).content.decode()
    assert f'class="import-checkpoint button-link" href="{IMPORT_URL}"' in runs


def test_importing_an_export_makes_a_waiting_run_and_shows_it(client, member, execute):
    user = member("operators")
    source = execute(services.start_run("document-review", {"title": "Far"}))
    document = services.export_checkpoint(source.head_checkpoint_id)
    source.delete()  # as if it came from another installation
    answer = client.post(IMPORT_URL, {"file": _upload(document)})
    run = Run.objects.get()
    assert answer.status_code == 302
    assert answer["Location"] == reverse("dashboard:run", args=[run.pk])
    assert (run.status, run.created_by, run.head_checkpoint_id) == (
        RunStatus.WAITING, user, document["checkpoint"]["checkpoint_id"])
    action = run.actions.get()
    assert (action.kind, action.user) == (ActionKind.IMPORT, user)
    shown = client.get(answer["Location"]).content.decode()
    assert (f"Checkpoint {document['checkpoint']['checkpoint_id'][:8]} (superstep "
            f"{run.current_superstep}) was imported as this new run; it waits on its 1 open "
            f"request.") in html.unescape(shown)


def test_importing_into_the_installation_that_exported_it_makes_a_new_run(
        client, member, loop):
    member("operators")
    second = loop.checkpoints.get(superstep=2)
    answer = client.post(IMPORT_URL, {"file": _upload(services.export_checkpoint(second.pk))})
    run = Run.objects.exclude(pk=loop.pk).get()
    assert answer["Location"] == reverse("dashboard:run", args=[run.pk])
    assert run.status == RunStatus.CANCELLED and run.head_checkpoint_id != second.pk
    shown = html.unescape(client.get(answer["Location"]).content.decode())
    assert "it was already stored here, so this run holds a copy of it" in shown
    assert "resume it from its checkpoint to continue" in shown
    copy_page = _page(client, run.head_checkpoint).content.decode()
    assert f'a copy of checkpoint <a href="/checkpoints/{second.pk}/">' in copy_page


def _tampered(document):
    altered = copy.deepcopy(document)
    altered["checkpoint"]["superstep"] += 1
    return altered


def _rehashed(document):
    body = json.dumps(document["checkpoint"], separators=(",", ":"))
    return {**document, "content_hash": services._export_hash(json.loads(body))}


def _other_graph(document):
    altered = copy.deepcopy(document)
    altered["checkpoint"]["graph_signature_hash"] = "0" * 64
    altered["checkpoint"]["checkpoint_id"] = "from-another-graph"
    return _rehashed(altered)


def _unknown_workflow(document):
    return {**document, "workflow": "no-such-workflow"}


def _same_id_other_content(document):
    return _rehashed(_tampered(document))


@pytest.mark.parametrize("make, words", [
    (lambda d: b"{not json", "it is not JSON: Expecting property name enclosed in double "
                             "quotes at line 1, column 2"),
    (lambda d: b"\xff\xfe\x00garbage", "it is not UTF-8 text"),
    (lambda d: {**d, "format": "zip"}, "not a Stepstone checkpoint export"),
    (lambda d: {**d, "version": 7}, "unsupported export version 7"),
    (_tampered, "the checkpoint does not match its hash"),
    (_unknown_workflow, "no workflow named 'no-such-workflow'"),
    (_other_graph, "has a different graph than the one that wrote this checkpoint"),
    (_same_id_other_content, "is already stored here"),
])
def test_a_bad_file_is_named_on_the_import_page_and_creates_nothing(
        client, member, loop, make, words):
    member("operators")
    document = services.export_checkpoint(loop.checkpoints.get(superstep=2).pk)
    before = _rows()
    answer = client.post(IMPORT_URL, {"file": _upload(make(document), "bad.json")})
    body = html.unescape(answer.content.decode())
    assert answer.status_code == 400
    assert words in body and "<strong>bad.json</strong> cannot be imported: " in body
    assert "Nothing was created." in body and 'type="file"' in body
    assert _rows() == before


def test_no_file_and_a_file_too_large_are_refused(client, member, monkeypatch):
    member("operators")
    answer = client.post(IMPORT_URL, {})
    assert answer.status_code == 400 and b"no file was chosen" in answer.content
    monkeypatch.setattr(checkpoint_views, "MAX_IMPORT_BYTES", 100)
    answer = client.post(IMPORT_URL, {"file": _upload(b" " * 101, "big.json")})
    assert answer.status_code == 400
    assert ("<strong>big.json</strong> cannot be imported: it is 101\xa0bytes; a checkpoint "
            "export may be at most 100\xa0bytes. Nothing was created.") in \
        html.unescape(answer.content.decode())
    assert Run.objects.count() == 0
