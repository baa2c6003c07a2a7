"""The edit-and-fork page of a checkpoint: editors pre-filled with plain JSON, refusals shown
on the form with nothing created, and a fork that lands on the new run's page, whose history
says who forked it from which checkpoint with what changes."""

import html
import json
import re

import pytest
from django.urls import reverse

from workflows_app import services
from workflows_app.models import Checkpoint, OperatorAction, PendingRequest, Run
from workflows_app.states import RunStatus


@pytest.fixture(autouse=True)
def _quiet(quiet_channels):
    """Pages are checked here; their websockets in test_consumers.py."""


@pytest.fixture
def source(execute):
    """Superstep 2 of a completed 3-round long loop (output 6): the counter's total is 1
    and Tick(1) waits for the ticker."""
    run = execute(services.start_run("long-loop", {"rounds": 3}))
    assert run.outputs == [6]
    return run.checkpoints.get(superstep=2)


def _rows():
    return (Run.objects.count(), Checkpoint.objects.count(), PendingRequest.objects.count(),
            OperatorAction.objects.count())


def _editors(page: str) -> dict[str, str]:
    return {name: html.unescape(text) for name, text in
            re.findall(r'<textarea[^>]*name="([^"]+)"[^>]*>(.*?)</textarea>', page, re.S)}


def _url(checkpoint) -> str:
    return reverse("dashboard:checkpoint-fork", args=[checkpoint.pk])


def test_operators_are_offered_edit_and_fork_and_viewers_are_not(client, member, source):
    member("operators")
    page = client.get(reverse("dashboard:checkpoint", args=[source.pk])).content.decode()
    assert _url(source) in page and "Edit and fork" in page
    member("viewers")
    page = client.get(reverse("dashboard:checkpoint", args=[source.pk])).content.decode()
    assert _url(source) not in page
    assert client.get(_url(source)).status_code == 403
    before = _rows()
    assert client.post(_url(source), {"state:counter": "{}"}).status_code == 403
    assert _rows() == before


def test_the_editors_hold_the_current_values_as_plain_json(client, member, source):
    member("operators")
    page = client.get(_url(source))
    assert page.status_code == 200
    editors = _editors(page.content.decode())
    assert json.loads(editors["state:counter"]) == {"seen": [1], "total": 1}
    assert json.loads(editors["state:ticker"]) == {"sent": 1}
    assert json.loads(editors["message:0"]) == {"n": 1, "rounds": 3, "fail_at": None,
                                                "step_ms": 0}
    assert 'name="remove:message:0"' in page.content.decode()


def test_a_fork_lands_on_the_new_run_whose_history_says_who_changed_what(
        client, member, source, execute):
    user = member("operators")
    editors = _editors(client.get(_url(source)).content.decode())
    editors["state:counter"] = json.dumps({"seen": [1], "total": 100})
    answer = client.post(_url(source), editors)
    assert answer.status_code == 302
    fork = Run.objects.exclude(pk=source.run_id).get()
    assert answer["Location"] == reverse("dashboard:run", args=[fork.pk])
    assert fork.head_checkpoint.kind == "edited" and fork.head_checkpoint.previous_id == source.pk

    page = client.get(answer["Location"]).content.decode()
    assert f"Forked from checkpoint {source.pk[:8]}" in page
    assert "Forked (with edits) from" in page and "Rehydrated from" not in page  # the header
    history = html.unescape(page)
    assert (f"forked it from checkpoint {source.pk[:8]} of run {str(source.run_id)[:8]} at "
            f"superstep 2, editing executor_states.counter.total from 1 to 100") in history
    assert user.get_username() in history
    assert execute(fork).outputs == [105]


def test_a_removed_message_forks_a_run_with_nothing_to_do(client, member, source, execute):
    member("operators")
    editors = _editors(client.get(_url(source)).content.decode())
    answer = client.post(_url(source), {**editors, "remove:message:0": "on"})
    assert answer.status_code == 302
    fork = Run.objects.exclude(pk=source.run_id).get()
    done = execute(fork)
    assert done.status == RunStatus.COMPLETED and done.outputs == []


@pytest.mark.parametrize("change, problem", [
    ({}, "nothing was changed"),
    ({"state:counter": "{not json"}, "Executor “counter” state: not JSON"),
    ({"state:counter": "[1]"}, "must be a JSON object"),
    ({"message:0": json.dumps({"n": "two"})}, "edits[0].data"),
    ({"state:counter": json.dumps({"seen": [1], "total": 1, "extra": 2}),
      "message:0": "3"}, "edits[1].data"),
])
def test_refused_edits_are_shown_on_the_form_and_change_nothing(client, member, source, change,
                                                                 problem):
    member("operators")
    editors = _editors(client.get(_url(source)).content.decode())
    before = _rows()
    answer = client.post(_url(source), {**editors, **change})
    assert answer.status_code == 400
    page = html.unescape(answer.content.decode())
    assert "Nothing was forked" in page and problem in page
    for name, text in change.items():  # what was submitted is kept
        assert _editors(answer.content.decode())[name] == text
    assert _rows() == before


def test_an_edited_checkpoint_says_who_edited_it_and_its_diff_is_the_edit(client, member,
                                                                         source, operator):
    fork = services.fork_checkpoint(source.pk, [
        {"op": "set_executor_state", "executor_id": "counter", "key": "total", "value": 9}],
        operator)
    member("viewers")
    page = html.unescape(client.get(reverse("dashboard:checkpoint",
                                            args=[fork.head_checkpoint_id])).content.decode())
    edited = re.sub(r"<[^>]+>", "", re.search(r'<dd class="edited-by">(.*?)</dd>', page).group(1))
    assert edited == (f"by {operator.get_username()}, from checkpoint {source.pk[:8]} (run "
                      f"{str(source.run_id)[:8]}): 1 change, the diff to the previous "
                      f"checkpoint below")
    diff = re.findall(r'<tr data-path="([^"]+)" data-change="([^"]+)">', page)
    assert diff == [("executor_states.counter.total", "changed")]


def test_the_history_cuts_long_changes(client, member, source, operator):
    long_list = list(range(200))
    fork = services.fork_checkpoint(source.pk, [
        {"op": "set_executor_state", "executor_id": "counter", "key": "seen",
         "value": long_list}], operator)
    member("viewers")
    page = html.unescape(client.get(reverse("dashboard:run", args=[fork.pk])).content.decode())
    assert "editing executor_states.counter.seen from [1] to [0, 1, 2," in page
    assert json.dumps(long_list) not in page and "…" in page
