"""Engine warnings reach a run's history and its page (issue 15, item 5).

A message no edge delivers is dropped, as MAF drops it, with a ``warning`` event that names
the sender and the message's type; the worker records it as a ``RunEvent`` like every engine
event, and the run page's header lists the newest warnings so an operator notices them.
"""

from __future__ import annotations

from html import escape

import pytest
from django.urls import reverse

from workflows_app import registry, services
from workflows_app.engine import Executor, WorkflowBuilder, WorkflowContext, handler
from workflows_app.states import RunStatus

pytestmark = pytest.mark.django_db

DROPPED = "dropped a message of type str sent by executor 'speaker': it has no outgoing edges"


class LastWord(Executor):
    """Yields its input, then sends it on, though no edge leaves it: a MAF workflow's last
    step that sends anyway."""

    @handler
    async def speak(self, text: str, ctx: WorkflowContext[str, str]) -> None:
        await ctx.yield_output(text)
        await ctx.send_message(text.upper())


def build_last_word():
    return WorkflowBuilder(name="last-word", start_executor=LastWord("speaker")).build()


def warning_seq(run) -> int:
    return run.events.get(type="warning").seq


@pytest.fixture
def last_word(monkeypatch):
    """Register the ``last-word`` workflow for one test (as ``test_workflows`` does)."""
    monkeypatch.setitem(registry._definitions, "last-word", registry.WorkflowDefinition(
        "last-word", "Last word", "", build_last_word))


def test_the_worker_records_the_warning_and_the_run_completes(last_word, execute):
    run = execute(services.start_run("last-word", "hello"))
    assert run.status == RunStatus.COMPLETED and run.outputs == ["hello"]
    warning = run.events.get(type="warning")
    assert warning.executor_id == "speaker" and warning.superstep == 1
    assert warning.data == {"message": DROPPED, "message_type": "str"}
    # in the superstep that sent it, before the superstep's end
    completed = run.events.get(type="superstep_completed", superstep=1)
    assert warning.seq < completed.seq


def test_the_run_page_lists_the_newest_warnings_in_its_header(last_word, execute, users,
                                                               client):
    run = execute(services.start_run("last-word", "hello"))
    client.force_login(users.viewer)
    page = client.get(reverse("dashboard:run", args=[run.pk])).content.decode()
    header = page[page.index('id="run-header"'):page.index('id="events-panel"')]
    assert 'id="run-warnings"' in header
    assert f"superstep 1, speaker: {escape(DROPPED)}" in header
    assert 'href="?type=warning#events-panel"' in header
    # the event log has it too, with the sender, and filters on it
    events = page[page.index('id="events-panel"'):]
    assert f'data-seq="{warning_seq(run)}" data-type="warning"' in events
    filtered = client.get(reverse("dashboard:run", args=[run.pk]) + "?type=warning")
    assert filtered.content.decode().count('data-type="warning"') == 1
    # the header panel, refreshed on its own while the run is watched, shows it too
    part = client.get(reverse("dashboard:run-part", args=[run.pk, "header"])).content.decode()
    assert escape(DROPPED) in part


def test_a_run_without_warnings_shows_no_warnings_line(test_workflows, execute, users,
                                                        client):
    run = execute(services.start_run("emitter", {"rounds": 2}))
    client.force_login(users.viewer)
    page = client.get(reverse("dashboard:run", args=[run.pk])).content.decode()
    assert 'id="run-warnings"' not in page
