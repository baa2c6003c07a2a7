"""``WorkflowGraph``: the validated shape of a workflow, fixed once ``build()`` made it.

It holds the executors, the start executor and the edge groups, the routing tables the
runner reads every superstep, which state hooks each executor implements, and the graph's
signature: the readable description a checkpoint records (and its hash), so a checkpoint is
restored only into the graph that wrote it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from .checkpoints import WorkflowCheckpoint
from .edges import EdgeGroup, FanInEdgeGroup
from .errors import WorkflowCheckpointError
from .executors import Executor, overrides


def edge_group_signature(group: EdgeGroup) -> str:
    """A readable, stable line for one edge group ("direct: a -> b if mod.cond")."""
    line = f"{group.kind}: {', '.join(group.sources)} -> {', '.join(group.targets)}"
    conditions = [c for c in group.conditions() if c is not None]
    return f"{line} by {'; '.join(conditions)}" if conditions else line


def describe_graph_difference(old: Any, new: dict[str, Any]) -> str:
    """Say what differs between two graph signatures: executors and edges added/removed."""
    if not isinstance(old, dict):
        return "the checkpoint does not record the graph it was written by"
    parts = []
    if old.get("start") != new["start"]:
        parts.append(f"start executor changed from '{old.get('start')}' to '{new['start']}'")
    for label, key in (("executors", "executors"), ("edges", "edges")):
        before, after = set(old.get(key) or ()), set(new[key])
        if after - before:
            parts.append(f"{label} added: {'; '.join(sorted(after - before))}")
        if before - after:
            parts.append(f"{label} removed: {'; '.join(sorted(before - after))}")
    return ", ".join(parts) or "the graph signatures differ"


class WorkflowGraph:
    """Executors joined by edge groups, with a start executor. Immutable once built."""

    def __init__(self, executors: dict[str, Executor], start_executor_id: str,
                 edge_groups: list[EdgeGroup]) -> None:
        self.executors = executors
        self.start_executor_id = start_executor_id
        self.edge_groups = edge_groups
        self.outgoing: dict[str, list[EdgeGroup]] = {}
        for group in edge_groups:
            for source in group.sources:
                self.outgoing.setdefault(source, []).append(group)
        self.fan_in_groups = [g for g in edge_groups if isinstance(g, FanInEdgeGroup)]
        executor_lines = [f"{e.id}: {e.type_name}" for e in executors.values()]
        edge_lines = [edge_group_signature(g) for g in edge_groups]
        for e in executors.values():
            # A sub-workflow's graph is part of this one (its state is in our checkpoints):
            # its lines, prefixed with the wrapping executor's id, so a difference inside
            # it is named like one outside.
            inner = getattr(e, "subgraph_signature", None)
            if inner is not None:
                executor_lines += [f"{e.id}/{line}" for line in inner["executors"]]
                edge_lines.append(f"{e.id}/start: {inner['start']}")
                edge_lines += [f"{e.id}/{line}" for line in inner["edges"]]
        self.signature = {
            "start": start_executor_id,
            "executors": sorted(executor_lines),
            "edges": sorted(edge_lines),
        }
        self.signature_hash = hashlib.sha256(json.dumps(
            self.signature, sort_keys=True, separators=(",", ":")).encode()).hexdigest()

        # Executor state is saved through one of two pairs of hooks (an executor may use
        # both): "state-key hooks", on_checkpointing / on_checkpoint_restored, which write
        # and read keys through ctx.queue_state_update / ctx.read_state; and "state-dict
        # hooks", on_checkpoint_save / on_checkpoint_restore, which return and take the
        # whole dict (MAF Python's style). Only executors that override a hook are called,
        # so checkpoints skip the no-ops.
        listed = list(executors.values())
        self.state_key_savers = [e for e in listed if overrides(e, "on_checkpointing")]
        self.state_key_restorers = [e for e in listed if overrides(e, "on_checkpoint_restored")]
        self.state_dict_savers = [e for e in listed if overrides(e, "on_checkpoint_save")]
        self.state_dict_restorers = [e for e in listed if overrides(e, "on_checkpoint_restore")]
        key_hooked = {e.id for e in self.state_key_savers + self.state_key_restorers}
        # Their saved dict comes back through on_checkpoint_restore only: the runner keeps
        # no keys for them between checkpoints.
        self.state_dict_only = {e.id for e in self.state_dict_savers + self.state_dict_restorers
                                } - key_hooked

    @property
    def start_executor(self) -> Executor:
        return self.executors[self.start_executor_id]

    def check_restorable(self, checkpoint: WorkflowCheckpoint, workflow_name: str) -> None:
        """Refuse a checkpoint of another graph, or one naming executors this graph lacks,
        with a ``WorkflowCheckpointError`` that says what differs."""
        if checkpoint.graph_signature_hash != self.signature_hash:
            difference = describe_graph_difference(checkpoint.metadata.get("graph"),
                                                   self.signature)
            raise WorkflowCheckpointError(
                f"checkpoint {checkpoint.checkpoint_id} was written by a different graph of "
                f"workflow '{checkpoint.workflow_name}' than '{workflow_name}': {difference}")
        known = self.executors
        unknown = {m["target_id"] for m in checkpoint.messages if m["target_id"] not in known}
        unknown |= {r["source_executor_id"] for r in checkpoint.pending_requests.values()
                    if r["source_executor_id"] not in known}
        unknown |= {eid for eid in checkpoint.executor_states if eid not in known}
        groups = {g.buffer_id for g in self.fan_in_groups}
        if unknown or any(gid not in groups for gid in checkpoint.fan_in_buffers):
            raise WorkflowCheckpointError(
                f"checkpoint {checkpoint.checkpoint_id} refers to executors or edges this "
                f"workflow does not have: {', '.join(sorted(unknown)) or 'a fan-in buffer'}")
