import pytest
from django.contrib.auth.models import Group
from rest_framework.test import APIClient

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _quiet(settings):
    settings.STEPSTONE = {**settings.STEPSTONE, "PUBLISH_EVENTS": False}


def test_api_round_trip(django_user_model):
    from workflows_app.execution import RunExecution
    user = django_user_model.objects.create_user("ops", password="x-pw-123456")
    for g in ("operators", "approvers"):
        user.groups.add(Group.objects.get(name=g))
    client = APIClient()
    assert client.get("/api/runs/").status_code == 401
    client.force_authenticate(user)
    created = client.post("/api/workflows/document-review/runs/", {"input": {"title": "A"}}, format="json")
    assert created.status_code == 201, created.content
    run_id = created.json()["id"]
    RunExecution(run_id).execute()
    request = client.get("/api/requests/?status=open").json()["results"][0]
    assert client.post(f"/api/requests/{request['id']}/respond/", {"response": {"approved": "x"}},
                       format="json").status_code == 400
    ok = client.post(f"/api/requests/{request['id']}/respond/", {"response": {"approved": True}}, format="json")
    assert ok.status_code == 200, ok.content
    again = client.post(f"/api/requests/{request['id']}/respond/", {"response": {"approved": True}}, format="json")
    assert again.status_code == 409 and "answered" in again.json()["detail"]
    cps = client.get(f"/api/runs/{run_id}/checkpoints/").json()["results"]
    detail = client.get(f"/api/checkpoints/{cps[-1]['checkpoint_id']}/")
    assert detail.status_code == 200 and "executor_states" in detail.json()["document"]
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
