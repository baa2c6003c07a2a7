#!/usr/bin/env python3
"""The two-level pingpong (``subpingpong``) on Microsoft Agent Framework (MAF) Python.

The MAF counterpart of ``reference.py``'s ``subpingpong`` workload, measured the way the
shared peer benchmark (``../shared/bench/maf_bench.py``) measures pingpong, so its rows sit
beside Stepstone's in ``benchmarks/compare.py``. Run it with MAF's venv::

    .bench-venvs/maf/bin/python benchmarks/maf_subpingpong.py     # agent-framework-core 1.23

Workload (the same graph, ids and state as reference.py): executor ``a`` hands a counter to
``b``, a ``WorkflowExecutor`` around the workflow ``middle``, whose only executor ``c`` is a
``WorkflowExecutor(allow_direct_output=True)`` around the workflow ``inner``, whose executor
``d`` logs the count (a ~100-character string appended to its list, returned from
``on_checkpoint_save()``) and yields count + 1; ``middle`` thus outputs it, and ``b`` sends it
back to ``a`` as a message. ``a`` logs every count too and yields 200 as the run's output:
201 outer supersteps (a sees 0, 2, ... 200; d, two levels down, 1, 3, ... 199).

Measurements (medians of 5): ``total_s`` = ``run(0)`` on a fresh workflow; ``resume_s`` =
build a NEW instance on the same storage and ``run(checkpoint_id=<last-but-one>)`` to the
end (one superstep); ``checkpoint_bytes_*``: file = the files' sizes, in-memory = the JSON
MAF's file storage would write for the same checkpoint (as maf_bench.py computes it).

What differs from Stepstone's run: nothing in the graph or the state. MAF stores a
sub-workflow as the executor state of its ``WorkflowExecutor`` (a whole nested checkpoint of
the sub-workflow, built by ``on_checkpoint_save``), so every outer checkpoint holds d's
whole log again, nested two levels down (and a's whole log); Stepstone stores the nested
state inside the parent checkpoint too, but as what changed.
MAF's file storage does not fsync (compare with Stepstone's file-nofsync row).
"""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import shutil
import statistics
import sys
import tempfile
import time
from typing import Any

from typing_extensions import Never

from agent_framework import (
    Executor,
    FileCheckpointStorage,
    InMemoryCheckpointStorage,
    WorkflowBuilder,
    WorkflowContext,
    handler,
)
from agent_framework._workflows._checkpoint_encoding import encode_checkpoint_value
from agent_framework._workflows._workflow_executor import WorkflowExecutor

logging.disable(logging.WARNING)  # MAF's logs stay out of the JSON lines

REPS = 5
STEPS = 200  # a yields this count: STEPS + 1 outer supersteps
PAYLOAD = "x" * 100
KINDS = ("none", "inmemory", "file")


class Player(Executor):
    """Outer executor a: logs the count; sends it on, or yields it once it reaches ``last``."""

    def __init__(self, id: str, last: int) -> None:
        super().__init__(id)
        self.last = last
        self.log: list[str] = []

    @handler
    async def on_count(self, count: int, ctx: WorkflowContext[int, int]) -> None:
        self.log.append(f"{count:06d}:{PAYLOAD}")
        if count >= self.last:
            await ctx.yield_output(count)
        else:
            await ctx.send_message(count + 1)

    async def on_checkpoint_save(self) -> dict[str, Any]:
        return {"items": list(self.log)}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self.log = list(state.get("items", []))


class Turn(Executor):
    """Innermost executor d: logs the count and yields count + 1 as its workflow's output."""

    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.log: list[str] = []

    @handler
    async def on_count(self, count: int, ctx: WorkflowContext[Never, int]) -> None:
        self.log.append(f"{count:06d}:{PAYLOAD}")
        await ctx.yield_output(count + 1)

    async def on_checkpoint_save(self) -> dict[str, Any]:
        return {"items": list(self.log)}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self.log = list(state.get("items", []))


def build(storage: Any | None):
    inner = WorkflowBuilder(name="inner", start_executor=Turn("d")).build()
    middle = WorkflowBuilder(
        name="middle",
        start_executor=WorkflowExecutor(inner, id="c", allow_direct_output=True)).build()
    a = Player("a", STEPS)
    b = WorkflowExecutor(middle, id="b")
    return (WorkflowBuilder(name="subpingpong", start_executor=a, checkpoint_storage=storage,
                            max_iterations=STEPS + 10)
            .add_edge(a, b)
            .add_edge(b, a)
            .build())


def check_state(workflow) -> None:
    """a logged the even counts 0..200, d (two levels down) the odd ones 1..199."""
    a = workflow.executors["a"].log
    d = workflow.executors["b"].workflow.executors["c"].workflow.executors["d"].log
    assert len(a) == STEPS // 2 + 1 and len(d) == STEPS // 2, (len(a), len(d))
    assert a[-1].startswith(f"{STEPS:06d}:") and d[0].startswith("000001:") and \
        d[-1].startswith(f"{STEPS - 1:06d}:"), (a[-1][:7], d[0][:7], d[-1][:7])


def supersteps_of(result: Any) -> int:
    return sum(1 for event in result if event.type == "superstep_completed")


async def lineage(storage: Any, name: str) -> list[Any]:
    """The run's checkpoints, oldest first, following previous_checkpoint_id."""
    checkpoints = await storage.list_checkpoints(workflow_name=name)
    children: dict[Any, Any] = {}
    for cp in checkpoints:
        children.setdefault(cp.previous_checkpoint_id, cp)
    chain, node = [], children.get(None)
    while node is not None:
        chain.append(node)
        node = children.get(node.checkpoint_id)
    assert len(chain) == len(checkpoints), "checkpoints do not form one lineage chain"
    return chain


def sizes_of(kind: str, folder: str | None, chain: list[Any]) -> list[int]:
    if kind == "file":
        return [os.path.getsize(os.path.join(folder, f"{cp.checkpoint_id}.json")) for cp in chain]
    return [len(json.dumps(encode_checkpoint_value(cp.to_dict()), indent=2,
                           ensure_ascii=False).encode()) for cp in chain]


async def measure(kind: str) -> dict[str, Any]:
    totals, resumes, steps, counts, bytes_total, bytes_last = [], [], [], [], [], []
    for _ in range(REPS):
        workflow = result = fresh = resumed = None
        folder = tempfile.mkdtemp(prefix="maf_subpp_") if kind == "file" else None
        storage = (InMemoryCheckpointStorage() if kind == "inmemory"
                   else FileCheckpointStorage(folder) if kind == "file" else None)
        try:
            gc.collect()
            workflow = build(storage)
            started = time.perf_counter()
            result = await workflow.run(0)
            totals.append(time.perf_counter() - started)
            assert result.get_outputs() == [STEPS], result.get_outputs()
            check_state(workflow)
            steps.append(supersteps_of(result))
            assert steps[-1] == STEPS + 1, steps[-1]
            if storage is None:
                continue
            chain = await lineage(storage, workflow.name)
            assert len(chain) == steps[-1] + 1, (len(chain), steps[-1])
            counts.append(len(chain))
            sizes = sizes_of(kind, folder, chain)
            bytes_total.append(sum(sizes))
            bytes_last.append(sizes[-1])

            gc.collect()
            started = time.perf_counter()
            fresh = build(storage)  # a NEW instance: rehydrate
            resumed = await fresh.run(checkpoint_id=chain[-2].checkpoint_id)
            resumes.append(time.perf_counter() - started)
            assert resumed.get_outputs() == [STEPS], resumed.get_outputs()
            assert supersteps_of(resumed) == 1, supersteps_of(resumed)
            check_state(fresh)  # restored state + the last superstep = the full run's state
        finally:
            if folder is not None:
                shutil.rmtree(folder, ignore_errors=True)
    total = statistics.median(totals)
    supersteps = int(statistics.median(steps))
    return {
        "workload": "subpingpong",
        "storage": kind,
        "supersteps": supersteps,
        "total_s": total,
        "per_superstep_us": total / supersteps * 1e6,
        "checkpoints": int(statistics.median(counts)) if counts else 0,
        "checkpoint_bytes_total": int(statistics.median(bytes_total)) if bytes_total else 0,
        "checkpoint_bytes_last": int(statistics.median(bytes_last)) if bytes_last else 0,
        "resume_s": statistics.median(resumes) if resumes else None,
    }


def emit(row: dict[str, Any]) -> None:
    print(json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()}),
          flush=True)


async def main() -> None:
    started = time.perf_counter()
    for kind in KINDS:
        emit(await measure(kind))
    import agent_framework

    print(json.dumps({
        "meta": True,
        "agent_framework_core": getattr(agent_framework, "__version__", "?"),
        "python": sys.version.split()[0],
        "reps": REPS,
        "workloads": ["subpingpong"],
        "bench_wall_s": round(time.perf_counter() - started, 2),
    }), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
