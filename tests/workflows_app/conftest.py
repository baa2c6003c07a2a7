import pytest

from workflows_app.execution import RunExecution
from workflows_app.models import Run


@pytest.fixture(autouse=True)
def _quiet_channels(settings):
    """In-process tests check rows, not websockets (those have tests of their own)."""
    settings.STEPSTONE = {**getattr(settings, "STEPSTONE", {}), "PUBLISH_EVENTS": False}


@pytest.fixture
def execute():
    """Execute a run in this process the way a worker does; return the reloaded run."""
    def run_task(run) -> Run:
        RunExecution(run.pk).execute()
        return Run.objects.get(pk=run.pk)
    return run_task


@pytest.fixture
def operator(django_user_model):
    return django_user_model.objects.create_user("op", password="pw-123456-x")
