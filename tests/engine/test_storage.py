"""Checkpoint storages: the protocol, in memory and on disk."""

from __future__ import annotations

import json
import logging
import os
import uuid

import pytest

from workflows_app.engine import (CheckpointStorage, FileCheckpointStorage,
                                  InMemoryCheckpointStorage, WorkflowCheckpoint,
                                  WorkflowCheckpointError)

from .workflows import Point, build_pingpong

_clock = iter(range(10**6))


def make_checkpoint(workflow_name: str = "wf", superstep: int = 1, **fields) -> WorkflowCheckpoint:
    """A checkpoint with increasing timestamps, so save order and time order agree."""
    defaults = dict(
        checkpoint_id=str(uuid.uuid4()), workflow_name=workflow_name,
        graph_signature_hash="hash", previous_checkpoint_id=None,
        timestamp=f"2024-01-01T00:00:00.{next(_clock):06d}+00:00", superstep=superstep,
        messages=[{"source_id": None, "target_id": "a", "data": Point(1, 2)}],
        shared_state={"items": [1, 2]}, executor_states={"a": {"seen": {"x"}}},
        metadata={"kind": "superstep"})
    defaults.update(fields)
    return WorkflowCheckpoint(**defaults)


def test_both_storages_follow_the_protocol(tmp_path):
    assert isinstance(InMemoryCheckpointStorage(), CheckpointStorage)
    assert isinstance(FileCheckpointStorage(tmp_path), CheckpointStorage)


async def test_save_and_load(storage):
    checkpoint = make_checkpoint()
    assert await storage.save(checkpoint) == checkpoint.checkpoint_id
    loaded = await storage.load(checkpoint.checkpoint_id)
    assert loaded == checkpoint
    assert loaded is not checkpoint
    assert loaded.messages[0]["data"] == Point(1, 2)
    assert loaded.executor_states == {"a": {"seen": {"x"}}}


async def test_a_save_is_a_snapshot_and_a_load_is_the_callers_copy(storage):
    checkpoint = make_checkpoint()
    await storage.save(checkpoint)
    checkpoint.shared_state["items"].append(3)  # the run goes on changing its objects
    checkpoint.messages[0]["data"].x = 99
    loaded = await storage.load(checkpoint.checkpoint_id)
    assert loaded.shared_state == {"items": [1, 2]}
    assert loaded.messages[0]["data"] == Point(1, 2)
    loaded.shared_state["items"].clear()  # the caller changes what it loaded
    loaded.executor_states["a"]["seen"].add("y")
    again = await storage.load(checkpoint.checkpoint_id)
    assert again.shared_state == {"items": [1, 2]}
    assert again.executor_states == {"a": {"seen": {"x"}}}


async def test_list_with_and_without_workflow_name(storage):
    a1, b1, a2 = make_checkpoint("a"), make_checkpoint("b"), make_checkpoint("a", superstep=2)
    for checkpoint in (a1, b1, a2):
        await storage.save(checkpoint)
    assert await storage.list_checkpoint_ids("a") == [a1.checkpoint_id, a2.checkpoint_id]
    assert await storage.list_checkpoint_ids("b") == [b1.checkpoint_id]
    assert await storage.list_checkpoint_ids("nobody") == []
    assert await storage.list_checkpoint_ids() == [c.checkpoint_id for c in (a1, b1, a2)]
    listed = await storage.list_checkpoints("a")
    assert [c.checkpoint_id for c in listed] == [a1.checkpoint_id, a2.checkpoint_id]
    assert all(isinstance(c, WorkflowCheckpoint) for c in listed)
    assert len(await storage.list_checkpoints()) == 3


async def test_get_latest(storage):
    assert await storage.get_latest("a") is None
    assert await storage.get_latest() is None
    a1, b1, a2 = make_checkpoint("a"), make_checkpoint("b"), make_checkpoint("a", superstep=2)
    for checkpoint in (a1, b1, a2):
        await storage.save(checkpoint)
    assert (await storage.get_latest("a")).checkpoint_id == a2.checkpoint_id
    assert (await storage.get_latest("b")).checkpoint_id == b1.checkpoint_id
    assert (await storage.get_latest()).checkpoint_id == a2.checkpoint_id
    assert await storage.get_latest("nobody") is None


async def test_delete(storage):
    a1, a2 = make_checkpoint("a"), make_checkpoint("a", superstep=2)
    await storage.save(a1)
    await storage.save(a2)
    assert await storage.delete(a2.checkpoint_id) is True
    assert await storage.delete(a2.checkpoint_id) is False
    assert await storage.list_checkpoint_ids("a") == [a1.checkpoint_id]
    assert (await storage.get_latest("a")).checkpoint_id == a1.checkpoint_id
    with pytest.raises(WorkflowCheckpointError, match="not found"):
        await storage.load(a2.checkpoint_id)
    assert await storage.delete(a1.checkpoint_id) is True
    assert await storage.get_latest("a") is None


async def test_loading_a_missing_id_raises(storage):
    with pytest.raises(WorkflowCheckpointError, match="not found"):
        await storage.load(str(uuid.uuid4()))


async def test_any_text_round_trips(storage):
    text = {"accents": "héllo ✓ 漢字 🚀", "lone surrogate": "file-\udcff", "nul": "a\x00b"}
    checkpoint = make_checkpoint(shared_state=text)
    await storage.save(checkpoint)
    assert (await storage.load(checkpoint.checkpoint_id)).shared_state == text


async def test_an_unencodable_checkpoint_stores_nothing(storage):
    checkpoint = make_checkpoint(shared_state={"bad": object()})
    with pytest.raises(WorkflowCheckpointError, match=r"shared state\['bad'\]"):
        await storage.save(checkpoint)
    assert await storage.list_checkpoint_ids() == []


async def test_a_real_run_saves_loadable_checkpoints(storage):
    await build_pingpong(storage).run(0)
    checkpoints = await storage.list_checkpoints("pingpong")
    assert [c.superstep for c in checkpoints] == list(range(8))
    assert (await storage.get_latest("pingpong")).superstep == 7


# --------------------------------------------------------------------------- files
async def test_file_storage_writes_one_json_file_per_checkpoint_and_no_temp_files(tmp_path):
    storage = FileCheckpointStorage(tmp_path)
    checkpoints = [make_checkpoint() for _ in range(3)]
    for checkpoint in checkpoints:
        await storage.save(checkpoint)
    await storage.save(checkpoints[0])  # overwriting is atomic too
    names = sorted(p.name for p in tmp_path.iterdir() if p.is_file())
    assert names == sorted(f"{c.checkpoint_id}.json" for c in checkpoints)
    leftovers = [p for p in tmp_path.rglob("*") if p.name.endswith(".tmp")]
    assert leftovers == []
    document = json.loads((tmp_path / f"{checkpoints[1].checkpoint_id}.json").read_text())
    assert document["checkpoint_id"] == checkpoints[1].checkpoint_id
    assert document["messages"][0]["data"]["__type__"] == "dataclass"


async def test_a_failed_write_leaves_no_temp_file_and_no_checkpoint(tmp_path, monkeypatch):
    storage = FileCheckpointStorage(tmp_path)

    def full_disk(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", full_disk)
    checkpoint = make_checkpoint()
    with pytest.raises(OSError, match="No space left"):
        await storage.save(checkpoint)
    monkeypatch.undo()
    assert [p for p in tmp_path.rglob("*") if p.is_file()] == []
    with pytest.raises(WorkflowCheckpointError, match="not found"):
        await storage.load(checkpoint.checkpoint_id)


@pytest.mark.parametrize("bad_id", [
    "../x", "/etc/passwd", "a/b", "a\\b", "..", ".hidden", "", "x" * 300, "a..b", "with space",
])
async def test_path_escaping_ids_are_refused(tmp_path, bad_id):
    folder = tmp_path / "store"
    storage = FileCheckpointStorage(folder)
    with pytest.raises(WorkflowCheckpointError, match="invalid checkpoint id"):
        await storage.save(make_checkpoint(checkpoint_id=bad_id))
    with pytest.raises(WorkflowCheckpointError, match="invalid checkpoint id"):
        await storage.load(bad_id)
    with pytest.raises(WorkflowCheckpointError, match="invalid checkpoint id"):
        await storage.delete(bad_id)
    assert sorted(p.name for p in tmp_path.rglob("*") if p.is_file()) == []


async def test_a_corrupt_file_is_skipped_when_listing_and_refused_when_loaded(tmp_path, caplog):
    storage = FileCheckpointStorage(tmp_path)
    good = make_checkpoint("a")
    await storage.save(good)
    (tmp_path / "broken.json").write_text('{"checkpoint_id": "broken", "truncat')
    (tmp_path / "wrongshape.json").write_text('{"checkpoint_id": "wrongshape"}')
    with caplog.at_level(logging.WARNING, logger="workflows_app.engine.storage"):
        assert await storage.list_checkpoint_ids() == [good.checkpoint_id]
    warned = " ".join(r.getMessage() for r in caplog.records if r.levelno == logging.WARNING)
    assert "broken.json" in warned and "wrongshape.json" in warned
    with pytest.raises(WorkflowCheckpointError, match="broken.json is corrupt"):
        await storage.load("broken")
    with pytest.raises(WorkflowCheckpointError, match="no 'workflow_name' field"):
        await storage.load("wrongshape")
    assert (await storage.get_latest("a")).checkpoint_id == good.checkpoint_id


async def test_a_file_holding_another_checkpoint_id_is_refused(tmp_path):
    storage = FileCheckpointStorage(tmp_path)
    original = make_checkpoint()
    await storage.save(original)
    (tmp_path / f"{original.checkpoint_id}.json").rename(tmp_path / "impostor.json")
    with pytest.raises(WorkflowCheckpointError, match="holds checkpoint"):
        await storage.load("impostor")


async def test_get_latest_does_not_decode_every_file(tmp_path, monkeypatch):
    storage = FileCheckpointStorage(tmp_path, fsync=False)
    for superstep in range(40):
        await storage.save(make_checkpoint("busy", superstep=superstep))
    wanted = make_checkpoint("quiet")
    await storage.save(wanted)
    for superstep in range(40, 60):
        await storage.save(make_checkpoint("busy", superstep=superstep))

    decoded = []
    original = WorkflowCheckpoint.from_dict.__func__

    def counting_from_dict(cls, document):
        decoded.append(document.get("checkpoint_id"))
        return original(cls, document)

    monkeypatch.setattr(WorkflowCheckpoint, "from_dict", classmethod(counting_from_dict))
    latest = await storage.get_latest("quiet")
    assert latest.checkpoint_id == wanted.checkpoint_id
    assert decoded == [wanted.checkpoint_id]
    decoded.clear()
    assert (await storage.get_latest("busy")).superstep == 59
    assert len(decoded) == 1
    # a fresh storage object over the same folder (a new process) is just as quick
    decoded.clear()
    assert (await FileCheckpointStorage(tmp_path).get_latest("quiet")).checkpoint_id == \
        wanted.checkpoint_id
    assert len(decoded) == 1


async def test_get_latest_after_deleting_the_latest_falls_back_to_the_newest_left(tmp_path):
    storage = FileCheckpointStorage(tmp_path)
    first, second = make_checkpoint("a"), make_checkpoint("a", superstep=2)
    await storage.save(first)
    await storage.save(second)
    await storage.delete(second.checkpoint_id)
    assert (await storage.get_latest("a")).checkpoint_id == first.checkpoint_id


# --------------------------------------------------------------------------- deltas
def growing_lineage(length: int) -> list[WorkflowCheckpoint]:
    """Checkpoints of one lineage whose executor state grows by one item each time."""
    lineage, previous = [], None
    for step in range(length):
        checkpoint = make_checkpoint(
            superstep=step, previous_checkpoint_id=previous,
            executor_states={"a": {"log": [f"{i:04d}:" + "x" * 100 for i in range(step)]}})
        lineage.append(checkpoint)
        previous = checkpoint.checkpoint_id
    return lineage


async def test_a_lineage_is_stored_as_skip_deltas_and_loads_back_exactly(storage):
    lineage = growing_lineage(40)
    for checkpoint in lineage:
        await storage.save(checkpoint)
    for checkpoint in lineage:
        assert (await storage.load(checkpoint.checkpoint_id)).to_dict() == checkpoint.to_dict()
    sizes = [storage.stored_size(c.checkpoint_id) for c in lineage]
    whole = len(json.dumps(lineage[-1].to_dict(), separators=(",", ":")))
    assert sizes[-1] < whole / 5  # the newest holds what changed, not the whole log
    assert sum(sizes) < sum(len(json.dumps(c.to_dict())) for c in lineage) / 3
    assert [c.checkpoint_id for c in await storage.list_checkpoints("wf")] == [
        c.checkpoint_id for c in lineage]


async def test_deleting_or_saving_again_a_base_keeps_the_others_loadable(storage):
    lineage = growing_lineage(9)
    for checkpoint in lineage:
        await storage.save(checkpoint)
    assert await storage.delete(lineage[0].checkpoint_id)  # the base of every even one
    await storage.save(lineage[4])  # saved again: its dependents must not change
    for checkpoint in lineage[1:]:
        assert (await storage.load(checkpoint.checkpoint_id)).to_dict() == checkpoint.to_dict()
    assert await storage.delete(lineage[0].checkpoint_id) is False


async def test_a_lineage_continued_after_a_load_goes_on_with_deltas(storage):
    lineage = growing_lineage(12)
    for checkpoint in lineage[:6]:
        await storage.save(checkpoint)
    fresh = type(storage)(storage.path) if isinstance(storage, FileCheckpointStorage) else storage
    await fresh.load(lineage[5].checkpoint_id)  # as a resume does
    for checkpoint in lineage[6:]:
        await fresh.save(checkpoint)
    assert fresh.stored_size(lineage[-1].checkpoint_id) < fresh.stored_size(
        lineage[0].checkpoint_id) * 3
    assert (await fresh.load(lineage[-1].checkpoint_id)).to_dict() == lineage[-1].to_dict()


async def test_a_corrupt_base_file_is_named_when_a_delta_on_it_is_loaded(tmp_path):
    storage = FileCheckpointStorage(tmp_path)
    lineage = growing_lineage(3)
    for checkpoint in lineage:
        await storage.save(checkpoint)
    base = json.loads((tmp_path / f"{lineage[2].checkpoint_id}.json").read_text())["delta_of"]
    (tmp_path / f"{base}.json").write_text('{"truncat')
    with pytest.raises(WorkflowCheckpointError, match=f"{base}.json is corrupt"):
        await storage.load(lineage[2].checkpoint_id)


@pytest.mark.parametrize("seed", range(6))
async def test_any_mix_of_saves_branches_and_deletes_loads_back_what_was_saved(tmp_path, seed):
    """Lineages that branch (a resume from an older checkpoint), with deletes and re-saves in
    between: every checkpoint still stored loads back exactly as it was saved."""
    import random

    rng = random.Random(seed)
    for storage in (InMemoryCheckpointStorage(), FileCheckpointStorage(tmp_path / str(seed))):
        saved: dict[str, WorkflowCheckpoint] = {}
        tip: WorkflowCheckpoint | None = None
        for step in range(60):
            action = rng.random()
            if action < 0.12 and saved:  # resume from an older checkpoint: a new branch
                tip = await storage.load(rng.choice(list(saved)))
            elif action < 0.2 and len(saved) > 1:
                victim = rng.choice(list(saved))
                assert await storage.delete(victim)
                del saved[victim]
                tip = None if tip is not None and tip.checkpoint_id == victim else tip
            elif action < 0.25 and saved:  # the same id saved again, with other content
                again = saved[rng.choice(list(saved))]
                again = make_checkpoint(checkpoint_id=again.checkpoint_id,
                                        previous_checkpoint_id=again.previous_checkpoint_id,
                                        shared_state={"again": step})
                await storage.save(again)
                saved[again.checkpoint_id] = again
            else:
                log = list(tip.executor_states.get("a", {}).get("log", [])) if tip else []
                log.append(f"{step}:" + "x" * rng.randint(0, 50))
                if rng.random() < 0.1:
                    log = log[1:]  # not an append: a whole replacement
                tip = make_checkpoint(previous_checkpoint_id=tip and tip.checkpoint_id,
                                      executor_states={"a": {"log": log, "n": step}},
                                      shared_state={"last": step, "flag": step % 2 == 0})
                await storage.save(tip)
                saved[tip.checkpoint_id] = tip
            for checkpoint_id, checkpoint in saved.items():
                loaded = await storage.load(checkpoint_id)
                assert loaded.to_dict() == checkpoint.to_dict(), (seed, step, checkpoint_id)
