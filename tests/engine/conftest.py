"""Fixtures of the engine tests (pure Python: nothing here needs Django)."""

from __future__ import annotations

import pytest

from workflows_app.engine import FileCheckpointStorage, InMemoryCheckpointStorage


@pytest.fixture
def memory_storage() -> InMemoryCheckpointStorage:
    return InMemoryCheckpointStorage()


@pytest.fixture(params=["memory", "file"])
def storage(request, tmp_path):
    """Each checkpoint storage the engine ships, in turn."""
    if request.param == "memory":
        return InMemoryCheckpointStorage()
    return FileCheckpointStorage(tmp_path / "checkpoints")
