"""Dashboard pages: what each role sees and may do; every action goes through services."""

import pytest
from django.urls import reverse

from workflows_app import services
from workflows_app.models import Run
from workflows_app.states import RequestStatus, RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _quiet(quiet_channels):
    """Pages are checked here; their websockets in test_consumers.py."""


@pytest.fixture
def waiting_review(execute):
    return execute(services.start_run("document-review", {"title": "Plan"}))


def test_pages_need_login(client):
    for name in ("dashboard:runs", "dashboard:workflows", "dashboard:requests"):
        response = client.get(reverse(name))
        assert response.status_code == 302 and response["Location"].startswith(reverse("login"))


def test_a_user_without_a_role_is_refused(client, member):
    member()
    assert client.get(reverse("dashboard:runs")).status_code == 403


def test_viewer_sees_pages_without_action_buttons_and_the_server_refuses_actions(
        client, member, waiting_review):
    member("viewers")
    page = client.get(reverse("dashboard:run", args=[waiting_review.pk]))
    html = page.content.decode()
    assert page.status_code == 200 and 'id="run-status"' in html
    assert "button class=\"resume" not in html and 'class="rehydrate' not in html
    assert "Answering needs the approver role" in html
    workflows = client.get(reverse("dashboard:workflows")).content.decode()
    assert 'data-workflow="long-loop"' in workflows and "start-run" not in workflows
    assert client.post(reverse("dashboard:start-run", args=["long-loop"]),
                       {"input": "{}"}).status_code == 403
    assert client.post(reverse("dashboard:run-action", args=[waiting_review.pk, "cancel"])
                       ).status_code == 403
    request = waiting_review.requests.get()
    assert client.post(reverse("dashboard:respond", args=[request.pk]),
                       {"approved": "true"}).status_code == 403
    assert Run.objects.count() == 1 and request.status == RequestStatus.OPEN


def test_operator_starts_a_run_and_bad_input_is_shown_on_the_form(client, member):
    member("operators")
    start = reverse("dashboard:start-run", args=["long-loop"])
    as_json = {"input-as-json": "on"}  # the start form's JSON editor (test_start_forms.py)
    bad = client.post(start, {**as_json, "input-json": '{"rounds": "x"}'}, follow=True)
    assert bad.redirect_chain == [(start, 302)]  # post/redirect/get, failures too
    assert b"form-error" in bad.content and b"rounds: must be a whole number" in bad.content
    not_json = client.post(start, {**as_json, "input-json": "rounds"}, follow=True)
    assert b"not valid JSON" in not_json.content
    assert Run.objects.count() == 0
    good = client.post(reverse("dashboard:start-run", args=["map-reduce"]), {"value": "plain text"})
    run = Run.objects.get()
    assert good.status_code == 302 and good["Location"] == reverse("dashboard:run", args=[run.pk])
    assert run.input == "plain text"  # a string workflow takes text that is not JSON


def test_approver_answers_with_the_generated_form_and_a_second_answer_is_refused(
        client, member, waiting_review):
    user = member("approvers")
    request = waiting_review.requests.get()
    page = client.get(reverse("dashboard:run", args=[waiting_review.pk])).content.decode()
    assert 'select name="approved"' in page and 'name="comment"' in page
    invalid = client.post(reverse("dashboard:respond", args=[request.pk]),
                          {"approved": "maybe", "comment": "typed before"}, follow=True)
    # Post/redirect/get: back on the run page, the form as submitted with its error, once.
    assert invalid.redirect_chain == [(reverse("dashboard:run", args=[waiting_review.pk]), 302)]
    shown = invalid.content.decode()
    assert "form-error" in shown and 'value="typed before"' in shown
    assert "The answer was not recorded" in shown
    again_page = client.get(reverse("dashboard:run", args=[waiting_review.pk])).content.decode()
    assert 'value="typed before"' not in again_page  # shown once: a reload starts afresh
    ok = client.post(reverse("dashboard:respond", args=[request.pk]),
                     {"approved": "false", "comment": "shorter"})
    assert ok.status_code == 302
    request.refresh_from_db()
    assert request.status == RequestStatus.ANSWERED and request.answered_by == user
    assert request.response["fields"] == {"approved": False, "comment": "shorter"}
    again = client.post(reverse("dashboard:respond", args=[request.pk]), {"approved": "true"},
                        follow=True)
    assert b"cannot be answered" in again.content


def test_operator_resumes_and_rehydrates_from_the_checkpoint_table(
        client, member, waiting_review):
    member("operators")
    entry = waiting_review.checkpoints.get(kind="entry")
    rehydrated = client.post(reverse("dashboard:run-action", args=[waiting_review.pk, "rehydrate"]),
                             {"checkpoint_id": entry.pk})
    child = Run.objects.get(parent_run=waiting_review)
    assert rehydrated["Location"] == reverse("dashboard:run", args=[child.pk])
    page = client.get(rehydrated["Location"]).content.decode()
    assert 'class="parent-run"' in page
    resumed = client.post(reverse("dashboard:run-action", args=[waiting_review.pk, "resume"]),
                          {"checkpoint_id": entry.pk})
    assert resumed["Location"] == reverse("dashboard:run", args=[waiting_review.pk])
    waiting_review.refresh_from_db()
    assert waiting_review.status == RunStatus.QUEUED
    conflict = client.post(reverse("dashboard:run-action", args=[waiting_review.pk, "resume"]),
                           {"checkpoint_id": entry.pk}, follow=True)
    assert b"is queued" in conflict.content


def test_requests_inbox_and_checkpoint_page(client, member, waiting_review):
    member("viewers")
    inbox = client.get(reverse("dashboard:requests")).content.decode()
    assert f'data-request="{waiting_review.requests.get().pk}"' in inbox
    head = waiting_review.head_checkpoint
    page = client.get(reverse("dashboard:checkpoint", args=[head.pk])).content.decode()
    assert "Executor states" in page and "pending_requests." in page  # the diff names the request
    export = client.get(reverse("dashboard:checkpoint-export", args=[head.pk]))
    assert export.json()["checkpoint"]["checkpoint_id"] == head.pk
    part = client.get(reverse("dashboard:run-part", args=[waiting_review.pk, "checkpoints"]))
    assert f'data-checkpoint="{head.pk}"' in part.content.decode()


def test_a_request_form_fetched_as_a_panel_still_returns_to_the_run_page(
        client, member, waiting_review):
    member("approvers")
    part = client.get(reverse("dashboard:run-part", args=[waiting_review.pk, "requests"]))
    run_url = reverse("dashboard:run", args=[waiting_review.pk])
    assert f'name="next" value="{run_url}"' in part.content.decode()


def test_labels_point_at_their_fields_and_ids_are_unique_per_request(
        client, member, waiting_review):
    member("approvers")
    pk = waiting_review.requests.get().pk
    page = client.get(reverse("dashboard:requests")).content.decode()
    assert f'for="id_approved-{pk}"' in page and f'id="id_approved-{pk}"' in page


def test_the_run_page_says_who_did_what_and_when_it_ran(client, member, execute, users):
    member("viewers")
    run = execute(services.start_run("document-review", {"title": "Plan"}, users.operator))
    request = run.requests.get()
    services.respond(request.pk, {"approved": False, "comment": "tighter"}, users.approver)
    run = execute(run)
    services.resume_run(run.pk, run.checkpoints.get(kind="entry").pk, users.operator)
    page = client.get(reverse("dashboard:run", args=[run.pk])).content.decode()
    history = page[page.index('id="history"'):]
    history = history[:history.index("</ol>")]
    lines = history.split("<li")[1:]
    assert len(lines) == 3  # newest first
    assert 'data-action="resume"' in lines[0] and "<b>operator</b> resumed it from its " \
        "checkpoint at superstep 0 (it was waiting); 1 open request cancelled" in lines[0]
    assert 'data-action="answer"' in lines[1] and "<b>approver</b> answered request " \
        f"{request.request_id[:8]} with {{&quot;approved&quot;: false, " in lines[1]
    assert "<b>operator</b> started it" in lines[2]
    assert "3 actions" in page
    assert ('<code class="run-input">{&quot;body&quot;: &quot;&quot;, &quot;title&quot;: '
            '&quot;Plan&quot;}</code>') in page
    assert "Started</dt>" in page and 'class="duration"' in page


def test_a_long_history_is_cut_to_the_newest_with_a_link_to_all(client, member, execute,
                                                                  users):
    member("viewers")
    run = execute(services.start_run("long-loop", {"rounds": 1}, users.operator))
    for _ in range(22):
        services.resume_run(run.pk, run.head_checkpoint_id, users.operator)
        run = execute(run)
    page = client.get(reverse("dashboard:run", args=[run.pk])).content.decode()
    assert page.count('data-action="resume"') == 20 and 'data-action="start"' not in page
    assert "the newest 20 of 23" in page
    assert f"/admin/workflows_app/operatoraction/?run={run.pk}" in page


def test_a_resumed_run_still_shows_the_error_it_failed_with(client, member, execute):
    member("viewers")
    failed = execute(services.start_run("long-loop", {"rounds": 5, "fail_at": 3}))
    services.resume_run(failed.pk, failed.head_checkpoint_id)
    page = client.get(reverse("dashboard:run", args=[failed.pk])).content.decode()
    assert "Failed before it was resumed: RuntimeError: told to fail at tick 3" in page
    part = client.get(reverse("dashboard:run-part", args=[failed.pk, "history"]))
    assert part.status_code == 200 and 'data-action="start"' in part.content.decode()


def test_actions_that_leave_work_behind_say_so_before_they_run(client, member, execute):
    member("operators")
    run = execute(services.start_run("document-review", {"title": "Plan"}))
    request = run.requests.get()
    named = f"reviewer ReviewRequest ({request.request_id[:8]})"
    page = client.get(reverse("dashboard:run", args=[run.pk])).content.decode()
    assert ('data-confirm="Resume this run from its checkpoint at superstep 0? Work after that '
            f'checkpoint is set aside as an abandoned branch. The open request {named} will '
            'be cancelled."') in page
    assert (f'data-confirm="Cancel this run? It stops now. The open request {named} will be '
            'cancelled."') in page
    assert (f'data-confirm="Start a new run from superstep 0? This run keeps waiting on its '
            f'open request {named}; the new run asks again."') in page
    services.respond(request.pk, {"approved": True})
    done = execute(run)
    page = client.get(reverse("dashboard:run", args=[done.pk])).content.decode()
    assert "will be cancelled" not in page and "Start a new run" not in page
    assert "set aside as an abandoned branch.\"" in page


def test_cancelling_a_running_run_says_it_stops_at_its_next_checkpoint(client, member):
    member("operators")
    run = services.start_run("long-loop", {"rounds": 3})
    Run.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING)
    page = client.get(reverse("dashboard:run", args=[run.pk])).content.decode()
    assert 'data-confirm="Cancel this run? It stops at its next checkpoint."' in page


def test_error_pages_explain_and_lead_back(client, member):
    member("viewers")
    missing = client.get("/runs/00000000-0000-0000-0000-000000000000/")
    assert missing.status_code == 404
    body = missing.content.decode()
    assert "<h1>Not found</h1>" in body and 'href="/runs/"' in body and "favicon.svg" in body
    refused = client.post("/runs/00000000-0000-0000-0000-000000000000/cancel/")
    assert refused.status_code == 403 and "<h1>Not allowed</h1>" in refused.content.decode()
    icon = client.get("/favicon.ico")
    assert icon.status_code == 301 and icon["Location"].endswith("dashboard/favicon.svg")


def test_the_server_error_page_stands_on_its_own(client):
    from django.views.defaults import server_error
    from django.test import RequestFactory

    page = server_error(RequestFactory().get("/runs/"))
    assert page.status_code == 500
    assert "Something went wrong on our side" in page.content.decode()


def test_a_panel_fetched_on_its_own_reads_only_what_it_shows(client, member, execute):
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    member("viewers")
    run = execute(services.start_run("long-loop", {"rounds": 2}))
    queried = {}
    for part in ("outputs", "history", "header"):
        with CaptureQueriesContext(connection) as queries:
            assert client.get(reverse("dashboard:run-part", args=[run.pk, part])).status_code \
                == 200
        queried[part] = " ".join(q["sql"] for q in queries.captured_queries)
    assert "operatoraction" not in queried["outputs"]  # neither the history nor the facts
    assert "operatoraction" in queried["history"] and "operatoraction" in queried["header"]
    # The error before a resume comes from that action, not from a search of the events;
    # the header looks for warnings among the newest events only (a range of the seq index).
    assert "'failed'" not in queried["header"]
    assert '"workflows_app_runevent"."seq" >' in queried["header"]


def test_a_refused_answer_in_the_inbox_comes_back_to_it(client, member, waiting_review):
    member("approvers")
    request = waiting_review.requests.get()
    inbox = reverse("dashboard:requests")
    refused = client.post(reverse("dashboard:respond", args=[request.pk]),
                          {"approved": "maybe", "next": inbox}, follow=True)
    assert refused.redirect_chain == [(inbox, 302)]
    assert "form-error" in refused.content.decode()
    request.refresh_from_db()
    assert request.status == RequestStatus.OPEN  # nothing recorded
