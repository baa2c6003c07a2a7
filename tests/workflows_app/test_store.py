"""Checkpoint rows that hold only what changed (``checkpoint_rows.py``, read by
``Checkpoint.objects.read_chain``), against real SQLite."""

import hashlib
import math
import zlib

import pytest
from django.db.models import RestrictedError

from workflows_app import services
from workflows_app.checkpoint_rows import DatabaseCheckpointStorage
from workflows_app.engine import WorkflowCheckpoint, WorkflowCheckpointError
from workflows_app.engine.deltas import skip_path
from workflows_app.models import Checkpoint, Run
from workflows_app.states import RunStatus

pytestmark = pytest.mark.django_db


def rows_of(run) -> list[Checkpoint]:
    return list(Checkpoint.objects.filter(run=run).order_by("created_at"))


def test_a_run_stores_its_first_checkpoint_whole_and_the_rest_as_skip_deltas(execute):
    run = execute(services.start_run("long-loop", {"rounds": 20}))
    rows = rows_of(run)
    assert len(rows) == 41
    assert [r.base_id is None for r in rows] == [True] + [False] * 40
    by_id = {r.pk: r for r in rows}
    for row in rows:
        path = [row.chain_position]
        current = row
        while current.base_id:
            current = by_id[current.base_id]
            path.append(current.chain_position)
        assert path == skip_path(row.chain_position)  # log2(n) + 1 rows at most
    # Every row reads back as a checkpoint, with the run's outputs as they were then.
    for row in rows:
        run_id, links = Checkpoint.objects.read_chain(row.pk)
        assert run_id == run.pk and links[-1].key == row.pk
        checkpoint = WorkflowCheckpoint.from_dict(links[-1].record["checkpoint"])
        assert (checkpoint.checkpoint_id, checkpoint.superstep) == (row.pk, row.superstep)
    assert Checkpoint.objects.read_record(rows[-1].pk)["outputs"] == [210]
    assert Checkpoint.objects.read_record(rows[-2].pk)["outputs"] == []


def test_deltas_hold_what_changed_not_the_whole_state(execute):
    run = execute(services.start_run("long-loop", {"rounds": 40}))
    rows = rows_of(run)
    # Row 64's base is row 0 (whole); a row whose base is its parent holds one step's change.
    small = [r.json_bytes for r in rows if r.chain_position % 2 == 1]
    assert max(small) < rows[0].json_bytes * 2
    assert sum(r.size_bytes for r in rows) < len(rows) * max(r.size_bytes for r in rows[:2]) * (
        math.log2(len(rows)) + 1)


def test_a_new_task_goes_on_with_deltas_against_the_runs_own_rows(execute):
    run = execute(services.start_run("document-review", {"title": "A"}))
    waiting_head = run.head_checkpoint_id
    services.respond(run.requests.get().pk, {"approved": True})
    run = execute(run)
    assert run.status == RunStatus.COMPLETED
    after = [r for r in rows_of(run) if r.created_at > Checkpoint.objects.get(
        pk=waiting_head).created_at]
    assert after and all(r.base_id is not None for r in after)


def test_a_rehydrated_run_starts_its_own_chain(execute):
    source = execute(services.start_run("document-review", {"title": "A"}))
    child = execute(services.rehydrate_run(source.pk, source.head_checkpoint_id))
    services.respond(child.requests.get().pk, {"approved": True})
    child = execute(child)
    assert child.status == RunStatus.COMPLETED
    rows = rows_of(child)
    assert rows[0].base_id is None  # never stored against another run's rows
    assert not Checkpoint.objects.filter(run=child, base__run=source).exists()


def test_a_row_others_are_stored_against_cannot_be_deleted_alone(execute):
    run = execute(services.start_run("long-loop", {"rounds": 3}))
    first = rows_of(run)[0]
    with pytest.raises(RestrictedError):
        first.delete()
    Run.objects.filter(pk=run.pk).delete()  # the whole run may go
    assert not Checkpoint.objects.filter(run_id=run.pk).exists()


def test_a_corrupt_base_is_named_with_the_checkpoint_read(execute):
    run = execute(services.start_run("long-loop", {"rounds": 3}))
    rows = rows_of(run)
    head, base = rows[-1], Checkpoint.objects.get(pk=rows[-1].base_id)
    data = bytearray(base.document)
    data[3] ^= 0xFF
    Checkpoint.objects.filter(pk=base.pk).update(document=bytes(data))
    with pytest.raises(WorkflowCheckpointError) as raised:
        Checkpoint.objects.read_chain(head.pk)
    assert f"checkpoint {base.pk} (a base of checkpoint {head.pk}) is corrupt" in str(raised.value)
    with pytest.raises(WorkflowCheckpointError, match="not found"):
        Checkpoint.objects.read_chain("no-such-checkpoint")


@pytest.mark.django_db(transaction=True)
def test_the_engine_runs_on_the_database_storage_with_deltas_and_resumes_from_it():
    import asyncio

    from workflows_app import registry
    from workflows_app.models import RegisteredWorkflow

    services.sync_workflows()
    run = Run.objects.create(workflow=RegisteredWorkflow.objects.get(name="long-loop"), input=None,
                             status=RunStatus.CANCELLED)  # driven here, not by a worker
    definition = registry.get_definition("long-loop")
    from workflows_app.examples import LoopInput

    storage = DatabaseCheckpointStorage(run)
    result = asyncio.run(definition.build().run(LoopInput(rounds=4), checkpoint_storage=storage))
    assert result.get_outputs() == [10]
    rows = rows_of(run)
    assert [r.base_id is None for r in rows] == [True] + [False] * (len(rows) - 1)
    run.refresh_from_db()
    assert run.head_checkpoint_id == rows[-1].pk

    newest = WorkflowCheckpoint.from_dict(rows[-1].decoded())

    async def engine_calls():
        fresh = DatabaseCheckpointStorage(run)
        latest = await fresh.get_latest("long-loop")
        assert latest.checkpoint_id == rows[-1].pk
        assert await fresh.list_checkpoint_ids("long-loop") == [r.pk for r in rows]
        assert await fresh.list_checkpoint_ids() == [r.pk for r in rows]
        assert await fresh.list_checkpoint_ids("another-workflow") == []
        assert await fresh.get_latest("another-workflow") is None
        listed = await fresh.list_checkpoints()
        assert [c.checkpoint_id for c in listed] == [r.pk for r in rows]
        assert [c.superstep for c in listed] == [r.superstep for r in rows]
        assert await fresh.list_checkpoints("another-workflow") == []
        # A new instance resumes from the middle and stores its rows as deltas again.
        resumed = await definition.build().run(checkpoint_id=rows[3].pk,
                                               checkpoint_storage=fresh)
        assert resumed.get_outputs() == [10]
        with pytest.raises(WorkflowCheckpointError, match="already exists"):
            await fresh.save(newest)
        with pytest.raises(WorkflowCheckpointError, match="stored as deltas against it"):
            await fresh.delete(rows[0].pk)
        assert await fresh.delete(rows[-1].pk) is True
        assert await fresh.delete(rows[-1].pk) is False

    asyncio.run(engine_calls())
    newer = [r for r in rows_of(run) if r.pk not in {x.pk for x in rows}]
    assert newer and all(r.base_id is not None for r in newer)
