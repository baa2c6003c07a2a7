"""Fixtures of the whole suite (tests/README.md tells how the suite is organised).

Users and roles: ``make_user(name, *groups, superuser=False)`` makes an account in the
groups the migrations create (``viewers``, ``operators``, ``approvers``); ``users`` has one
of each (plus ``nobody`` and a superuser ``admin``); ``operator`` is a plain account for
services that only record who acted. Runs in this process: ``execute(run)`` executes a run
exactly as a worker's task does and returns it reloaded. ``test_workflows`` registers the
workflows of ``tests/workflows_app/workflows.py`` for one test. ``quiet_channels`` stops
the worker's live updates (tests that check rows, not websockets).
"""

from __future__ import annotations

from types import SimpleNamespace

import pytest

PASSWORD = "pw-123456-x"


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """On PostgreSQL (DATABASE_URL), close connections after each use: the threads that
    serve async code in tests would otherwise keep theirs open, and the test database could
    not be dropped at the end of the session."""
    from django.conf import settings

    for database in settings.DATABASES.values():
        if database["ENGINE"] != "django.db.backends.sqlite3":
            database["CONN_MAX_AGE"] = 0


@pytest.fixture
def make_user(django_user_model, settings):
    """``make_user(name, *groups, superuser=False)``: an account with ``PASSWORD``."""
    from django.contrib.auth.models import Group

    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]  # fast

    def make(username: str, *groups: str, superuser: bool = False):
        if superuser:
            return django_user_model.objects.create_superuser(username, password=PASSWORD)
        user = django_user_model.objects.create_user(username, password=PASSWORD)
        user.groups.set(Group.objects.filter(name__in=groups))
        return user
    return make


@pytest.fixture
def users(make_user):
    """One account of each role."""
    return SimpleNamespace(
        nobody=make_user("nobody"),
        viewer=make_user("viewer", "viewers"),
        operator=make_user("operator", "operators"),
        approver=make_user("approver", "approvers"),
        admin=make_user("admin", superuser=True),
    )


@pytest.fixture
def operator(make_user):
    return make_user("op")


@pytest.fixture
def quiet_channels(settings):
    settings.STEPSTONE = {**getattr(settings, "STEPSTONE", {}), "PUBLISH_EVENTS": False}


@pytest.fixture
def execute():
    """Execute a run in this process the way a worker does; return the reloaded run."""
    from workflows_app.models import Run
    from workflows_app.worker import RunExecution

    def run_task(run) -> Run:
        RunExecution(run.pk).execute()
        return Run.objects.get(pk=run.pk)
    return run_task


@pytest.fixture
def test_workflows(monkeypatch):
    """Register the workflows of ``tests/workflows_app/workflows.py`` for one test."""
    from tests.workflows_app.workflows import FACTORIES
    from workflows_app import registry

    for name, factory in FACTORIES.items():
        monkeypatch.setitem(registry._definitions, name,
                            registry.WorkflowDefinition(name, name, "", factory))


@pytest.fixture
def after_commit(monkeypatch, django_capture_on_commit_callbacks):
    """What is done once a transaction commits, recorded instead of done: ``enqueued`` run
    ids (tasks put on the queue) and ``announced`` (run id, status) pairs (live updates).
    Use ``with after_commit.capture(): ...`` around the calls whose commit is checked."""
    from workflows_app import lifecycle, live

    record = SimpleNamespace(enqueued=[], announced=[])
    monkeypatch.setattr(lifecycle, "enqueue_run", lambda run_id: record.enqueued.append(run_id))
    monkeypatch.setattr(live, "publish_status",
                        lambda run_id, status: record.announced.append((run_id, str(status))))
    record.capture = lambda: django_capture_on_commit_callbacks(execute=True)
    return record
