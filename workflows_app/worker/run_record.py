"""The checkpoint storage the engine writes through inside a worker.

A row holds the run's *record* at a checkpoint: the engine's checkpoint and the run's
outputs so far (``checkpoint_rows``). ``save`` does not commit: it turns the checkpoint
into a row (encoding it, so a value checkpoints cannot hold fails the run right there) and
stages it; the worker commits it together with the event that announces it
(``superstep_completed``, or ``started`` for an entry or response checkpoint). ``load``
reads a record once: the engine gets the checkpoint, this storage the outputs to continue
from and the rows to store the next deltas against.
"""

from __future__ import annotations

from typing import Any

from ..checkpoint_rows import CheckpointWriter, DatabaseCheckpointStorage
from ..engine import WorkflowCheckpoint
from ..models import Checkpoint


class RunRecordStorage(DatabaseCheckpointStorage):
    """One run's checkpoints inside a worker. It calls the ORM directly: the task's event
    loop is private to it (see ``execution``)."""

    def __init__(self, run_id: Any) -> None:
        self.run_id = run_id
        self.writer = CheckpointWriter(run_id)
        self.outputs: list[Any] = []  # the run's encoded outputs along its lineage
        self.outputs_unsaved = True  # the run row does not hold these outputs yet
        self.staged: list[Checkpoint] = []

    def add_output(self, encoded: Any) -> None:
        self.outputs.append(encoded)
        self.outputs_unsaved = True

    async def save(self, checkpoint: WorkflowCheckpoint) -> str:
        self.staged.append(self.writer.row(checkpoint, self.outputs))
        return checkpoint.checkpoint_id

    async def load(self, checkpoint_id: str) -> WorkflowCheckpoint:
        owner, links = Checkpoint.objects.read_chain(checkpoint_id)
        self.writer.continue_from(owner, links)
        record = links[-1].record
        self.outputs = list(record["outputs"])
        self.outputs_unsaved = True
        return WorkflowCheckpoint.from_dict(record["checkpoint"])

    def take_staged(self) -> list[Checkpoint]:
        """The rows saved since the last call, oldest first."""
        rows, self.staged = self.staged, []
        return rows
