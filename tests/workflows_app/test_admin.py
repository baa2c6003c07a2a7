"""The admin shows the audit trail and its actions go through the services."""

import pytest
from django.urls import reverse

from workflows_app import services
from workflows_app.models import Run
from workflows_app.states import RunStatus

pytestmark = pytest.mark.django_db


@pytest.fixture
def finished_run(execute):
    return execute(services.start_run("long-loop", {"rounds": 3}))


def test_checkpoint_page_shows_lineage_decoded_state_and_diff(admin_client, finished_run):
    head = finished_run.head_checkpoint
    page = admin_client.get(reverse("admin:workflows_app_checkpoint_change", args=[head.pk]))
    assert page.status_code == 200
    html = page.content.decode()
    assert head.previous_id in html  # link to the previous checkpoint
    assert "executor_states.counter.total" in html  # the diff names what changed
    assert "&quot;seen&quot;" in html or '"seen"' in html  # decoded JSON
    assert "a delta against" in html and head.base_id in html  # how it is stored
    entry = finished_run.checkpoints.get(kind="entry")
    page = admin_client.get(reverse("admin:workflows_app_checkpoint_change", args=[entry.pk]))
    assert "the whole record" in page.content.decode()


def test_a_corrupt_checkpoint_page_names_the_problem(admin_client, finished_run):
    head = finished_run.head_checkpoint
    type(head).objects.filter(pk=head.pk).update(document=b"garbage")
    page = admin_client.get(reverse("admin:workflows_app_checkpoint_change", args=[head.pk]))
    assert page.status_code == 200
    assert f"checkpoint {head.pk} is corrupt" in page.content.decode()


def test_checkpoints_are_read_only_and_filterable(admin_client, finished_run):
    url = reverse("admin:workflows_app_checkpoint_changelist")
    listing = admin_client.get(url, {"kind": "entry"})
    assert listing.status_code == 200
    assert listing.context["cl"].result_count == 1
    head = finished_run.head_checkpoint
    post = admin_client.post(reverse("admin:workflows_app_checkpoint_change", args=[head.pk]),
                             {"superstep": 0})
    assert post.status_code == 403


def test_run_page_links_to_its_events_and_checkpoints(admin_client, finished_run):
    page = admin_client.get(reverse("admin:workflows_app_run_change", args=[finished_run.pk]))
    assert page.status_code == 200
    events = finished_run.events.count()
    assert f"?run={finished_run.pk}\">{events} events".encode() in page.content
    listing = admin_client.get(reverse("admin:workflows_app_runevent_changelist"),
                               {"run": str(finished_run.pk), "type": "superstep_completed"})
    assert listing.context["cl"].result_count == finished_run.current_superstep


def test_admin_actions_call_the_services(admin_client, finished_run):
    url = reverse("admin:workflows_app_checkpoint_changelist")
    entry = finished_run.checkpoints.get(kind="entry")
    admin_client.post(url, {"action": "rehydrate_from", "_selected_action": [entry.pk]})
    child = Run.objects.get(parent_run=finished_run)
    assert child.source_checkpoint == entry and child.status == RunStatus.QUEUED

    exported = admin_client.post(url, {"action": "export", "_selected_action": [entry.pk]})
    assert exported["Content-Type"] == "application/json"
    assert exported.json()["checkpoint"]["checkpoint_id"] == entry.pk

    admin_client.post(url, {"action": "resume_from", "_selected_action": [entry.pk]})
    finished_run.refresh_from_db()
    assert finished_run.status == RunStatus.QUEUED and finished_run.head_checkpoint == entry
