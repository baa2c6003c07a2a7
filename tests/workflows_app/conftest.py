"""Fixtures of the workflows_app tests (the shared ones are in tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.installation import Installation
from workflows_app import services


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
def _quiet(quiet_channels):
    """In-process tests check rows, not websockets (those have tests of their own)."""


@pytest.fixture
def portable(execute):
    """An export of a waiting document review whose rows are gone (as if from elsewhere)."""
    run = execute(services.start_run("document-review", {"title": "Elsewhere"}))
    document = services.export_checkpoint(run.head_checkpoint_id)
    run.delete()
    return document
