"""A run of a workflow holding a sub-workflow (``document-pipeline``: the document review as
one step), executed as a worker executes it: the request made inside the review is a request
of the pipeline run, answered with ``services.respond``, and the review continues inside."""

import pytest

from workflows_app import services
from workflows_app.models import Checkpoint
from workflows_app.states import RequestStatus, RunStatus

pytestmark = pytest.mark.django_db


def test_a_request_inside_the_sub_workflow_is_answered_through_the_run(execute, operator):
    run = execute(services.start_run("document-pipeline", {"title": "Q3", "audience": "board"}))
    assert run.status == RunStatus.WAITING
    request = run.requests.get()
    assert request.request_id.startswith("review/")
    assert request.source_executor_id == "review"
    assert request.request_data["fields"]["revision"] == 1
    assert request.response_schema["properties"]["approved"]["type"] == "boolean"

    services.respond(request.pk, {"approved": False, "comment": "shorter"}, operator)
    run = execute(run)
    assert run.status == RunStatus.WAITING
    second = run.requests.get(status=RequestStatus.OPEN)
    assert second.request_id.startswith("review/") and second.request_id != request.request_id
    assert second.request_data["fields"]["revision"] == 2  # the review's loop ran inside

    services.respond(second.pk, {"approved": True}, operator)
    run = execute(run)
    assert run.status == RunStatus.COMPLETED
    assert run.outputs == ["published 'Q3' (revision 2), sent to board"]


def test_a_rehydrated_run_answers_the_request_pending_inside(execute, operator):
    run = execute(services.start_run("document-pipeline", {"title": "Q4"}))
    waiting = Checkpoint.objects.get(pk=run.head_checkpoint_id)
    services.respond(run.requests.get().pk, {"approved": True}, operator)
    assert execute(run).outputs == ["published 'Q4' (revision 1), sent to everyone"]

    # From the checkpoint taken while the review waited: the review's state comes back
    # from the pipeline's checkpoint, and its request is open again in the new run.
    again = execute(services.rehydrate_run(run.pk, waiting.pk, operator))
    assert again.status == RunStatus.WAITING
    request = again.requests.get(status=RequestStatus.OPEN)
    assert request.request_id.startswith("review/")
    services.respond(request.pk, {"approved": False, "comment": "again"}, operator)
    again = execute(again)
    assert again.requests.get(status=RequestStatus.OPEN).request_data["fields"]["revision"] == 2


def test_the_worker_records_the_inner_progress_and_the_graph_marks_the_inner_reviewer(
        execute, operator):
    from dashboard.run_windows import executor_states, newest_superstep
    from workflows_app.branches import RunLine
    from workflows_app.models import RunEvent

    run = execute(services.start_run("document-pipeline", {"title": "Q3"}))
    rows = list(RunEvent.objects.filter(run=run).order_by("seq").values_list(
        "type", "executor_id", "superstep"))
    # The review's inner executors ran within the pipeline's superstep of the review, in
    # order, between the review's own invoked and completed; no inner superstep events.
    review_step = next(s for t, e, s in rows if t == "executor_invoked" and e == "review")
    inside = [(t, e) for t, e, s in rows if s == review_step and t.startswith("executor_")]
    assert inside[0] == ("executor_invoked", "review")
    assert inside[-1] == ("executor_completed", "review")
    assert ("executor_invoked", "review/writer") in inside
    assert inside.index(("executor_invoked", "review/writer")) < inside.index(
        ("executor_invoked", "review/reviewer"))
    assert [s for t, _, s in rows if t == "superstep_started"] == sorted(
        {s for t, _, s in rows if t == "superstep_started"})
    # The request's row names the inner executor that asked; its request row the box.
    asked = [(e, s) for t, e, s in rows if t == "request_info"]
    assert asked == [("review/reviewer", review_step)]
    request = run.requests.get()
    assert request.source_executor_id == "review"

    line = RunLine(run)
    states = executor_states(line, run, newest_superstep(line), [request])
    assert states["review/reviewer"] == "waiting"
    assert states["review"] == "waiting"
    assert states["review/writer"] == "done"

    services.respond(request.pk, {"approved": True}, operator)
    run = execute(run)
    assert run.status == RunStatus.COMPLETED
    line = RunLine(run)
    states = executor_states(line, run, newest_superstep(line), [])
    assert "waiting" not in states.values()


def test_the_event_log_filter_offers_the_inner_executors(execute, client, make_user):
    from django.urls import reverse

    run = execute(services.start_run("document-pipeline", {"title": "Q3"}))
    client.force_login(make_user("viewer", "viewers"))
    page = client.get(reverse("dashboard:run", args=[run.pk])).content.decode()
    for executor in ("intake", "review", "review/writer", "review/reviewer", "archive"):
        assert f"<option>{executor}</option>" in page, executor
    filtered = client.get(reverse("dashboard:run", args=[run.pk]),
                          {"executor": "review/reviewer"}).content.decode()
    assert "<b>request_info</b> review/reviewer" in filtered
    assert "review/writer" not in filtered.split('id="events"')[-1].split("</ol>")[0]
