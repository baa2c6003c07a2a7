"""Data migrations, run against a real database moved back to the schema before them and
forward again."""

import hashlib
import importlib
import json
import zlib

import pytest
from django.contrib.auth.models import Group
from django.db import connection
from django.db.migrations.executor import MigrationExecutor

from workflows_app import services
from workflows_app.branches import RunLine
from workflows_app.models import Checkpoint, Run, RunBranch
from workflows_app.states import RunStatus

BEFORE_LIFECYCLE = ("workflows_app", "0004_document_zstandard")
BEFORE_BRANCHES = ("workflows_app", "0006_drop_restore_from_and_row_outputs")
LATEST = ("workflows_app", "0007_run_branches")

pytestmark = pytest.mark.django_db(transaction=True)


def migrate_to(target: tuple[str, str]):
    """Move the schema to ``target``; return the historical models there."""
    executor = MigrationExecutor(connection)
    executor.migrate([target])
    return executor.loader.project_state([target]).apps


@pytest.fixture
def back_before_lifecycle():
    """Call it to move the schema back to before 0005 (it returns the models there); the
    schema is moved forward to the latest after the test, whatever happened."""
    yield lambda: migrate_to(BEFORE_LIFECYCLE)
    migrate_to(LATEST)


def test_rows_written_before_deltas_are_migrated_to_whole_records(execute,
                                                                   back_before_lifecycle):
    run = execute(services.start_run("long-loop", {"rounds": 2}))
    documents = [row.decoded() for row in run.checkpoints.order_by("created_at")]
    old_apps = back_before_lifecycle()
    old = old_apps.get_model("workflows_app", "Checkpoint")
    # Rewrite the rows as the release before 0003 stored them: the bare document, all whole,
    # with each superstep's outputs in a column of their own.
    for row, document in zip(old.objects.filter(run_id=run.pk).order_by("created_at"),
                             documents):
        bare = zlib.compress(json.dumps(document, separators=(",", ":")).encode(), 1)
        outputs = [3] if document["superstep"] == 4 else []
        old.objects.filter(pk=row.pk).update(document=bare, base=None, outputs=outputs,
                                             content_hash=hashlib.sha256(bare).hexdigest())
    migration = importlib.import_module("workflows_app.migrations.0003_checkpoint_deltas")
    migration.wrap_documents_in_records(old_apps, None)
    migrate_to(LATEST)
    rows = list(run.checkpoints.order_by("created_at"))
    assert [row.record()["outputs"] for row in rows] == [[], [], [], [], [3]]
    assert [row.decoded() for row in rows] == documents


def test_a_resume_queued_before_the_upgrade_continues_from_its_checkpoint(
        execute, back_before_lifecycle):
    finished = execute(services.start_run("long-loop", {"rounds": 3}))
    rehydrated = services.rehydrate_run(finished.pk, finished.checkpoints.get(superstep=2).pk)
    entry = finished.checkpoints.get(superstep=0)
    old_run = back_before_lifecycle().get_model("workflows_app", "Run")
    # As 0004's services left them: a queued resume, a queued rehydrate.
    old_run.objects.filter(pk=finished.pk).update(status=RunStatus.QUEUED, restore_from=entry.pk)
    old_run.objects.filter(pk=rehydrated.pk).update(restore_from=rehydrated.source_checkpoint_id,
                                                    head_checkpoint=None)
    migrate_to(LATEST)
    resumed, child = Run.objects.get(pk=finished.pk), Run.objects.get(pk=rehydrated.pk)
    assert (resumed.head_checkpoint_id, resumed.current_superstep) == (entry.pk, 0)
    assert child.head_checkpoint_id == child.source_checkpoint_id
    assert (execute(resumed).outputs, execute(child).outputs) == ([6], [6])


def test_the_groups_keep_seeing_workflows_under_the_models_new_name(back_before_lifecycle):
    old_apps = back_before_lifecycle()
    groups = importlib.import_module("workflows_app.migrations.0002_groups")
    with connection.schema_editor() as editor:  # the groups as 0002 made them
        groups.create_groups(old_apps, editor)
    migrate_to(LATEST)
    codenames = set(Group.objects.get(name="viewers").permissions.values_list("codename",
                                                                              flat=True))
    assert "view_registeredworkflow" in codenames and "view_workflow" not in codenames
    assert Checkpoint._meta.get_field("run").related_model is Run


def test_runs_resumed_before_branches_get_them_from_their_resume_actions(execute, users):
    run = execute(services.start_run("long-loop", {"rounds": 15}))  # supersteps 1..30
    services.resume_run(run.pk, run.checkpoints.get(superstep=20).pk, users.operator)
    run = execute(run)
    services.resume_run(run.pk, run.checkpoints.get(superstep=10, branch=0).pk)
    run = execute(run)
    expected = {(b.number, b.parent, b.from_superstep, b.kept_seq, b.first_seq)
                for b in RunBranch.objects.filter(run=run)}
    event_branches = dict(run.events.values_list("seq", "branch"))
    checkpoint_branches = dict(run.checkpoints.values_list("checkpoint_id", "branch"))
    try:
        migrate_to(BEFORE_BRANCHES)  # the columns and the branches are gone
    finally:
        migrate_to(LATEST)  # and made again from the resume actions
    run = Run.objects.get(pk=run.pk)
    assert run.branch == 2
    assert {(b.number, b.parent, b.from_superstep, b.kept_seq, b.first_seq)
            for b in RunBranch.objects.filter(run=run)} == expected
    assert dict(run.events.values_list("seq", "branch")) == event_branches
    assert dict(run.checkpoints.values_list("checkpoint_id", "branch")) == checkpoint_branches
    line = RunLine(run)
    assert line.event_count(max(event_branches)) == line.events().count()
