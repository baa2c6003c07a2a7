"""Fixtures of the workflows_app tests."""

from __future__ import annotations

import pytest

from tests.installation import Installation
from workflows_app.worker import RunExecution
from workflows_app.models import Run


@pytest.fixture
def make_installation(tmp_path):
    """A factory of bootstrapped, isolated installations; their clusters die at teardown."""
    made: list[Installation] = []

    def make(name: str = "site", **settings) -> Installation:
        installation = Installation(tmp_path / name, **settings)
        made.append(installation)
        return installation.bootstrap()

    yield make
    errors = []
    for installation in made:
        try:
            installation.close()
        except Exception as error:  # pragma: no cover - keep killing the others
            errors.append(error)
    if errors:  # pragma: no cover
        raise errors[0]


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


@pytest.fixture
def test_workflows(monkeypatch):
    """Register the workflows of ``tests/workflows_app/workflows.py`` for one test."""
    from workflows_app import registry
    from tests.workflows_app.workflows import FACTORIES

    for name, factory in FACTORIES.items():
        monkeypatch.setitem(registry._definitions, name,
                            registry.WorkflowDefinition(name, name, "", factory))
