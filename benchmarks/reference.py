#!/usr/bin/env python3
"""Stepstone's own run of the reference workloads (SPEC.md section 3).

The same three workloads the peer benchmarks run (``../shared/bench/maf_bench.py`` and
``langgraph_bench.py``), built on ``workflows_app.engine`` and measured the way
``maf_bench.py`` measures, so the figures sit next to MAF's in one table
(``benchmarks/compare.py``)::

    python benchmarks/reference.py                       # all workloads, all storages
    python benchmarks/reference.py --only pingpong --reps 3
    python benchmarks/reference.py --json-meta           # add a trailing meta line

Output: one JSON line per (workload, storage) with ``workload, storage, supersteps, total_s,
per_superstep_us, checkpoints, checkpoint_bytes_total, checkpoint_bytes_last, resume_s``
(approval adds ``initial_run_s``). Each figure is the median over ``--reps`` runs (default 5).

Storage kinds
  none           no checkpoint storage
  inmemory       InMemoryCheckpointStorage()
  file           FileCheckpointStorage(tmpdir)               (fsync=True, the default)
  file-nofsync   FileCheckpointStorage(tmpdir, fsync=False)  (MAF's file storage does not
                                                              fsync either)

Workloads
  pingpong  executors a and b hand a counter to each other for 200 supersteps; on every
            message the receiver appends a ~100-character string to its list, which it
            returns from on_checkpoint_save().
  fanout    dispatcher -> 16 workers (fan-out edge group) -> aggregator (fan-in edge group,
            receives one list) -> dispatcher; 20 rounds = 3 supersteps each + the final one.
  subpingpong  a two-level pingpong: a hands the counter to b, a sub-workflow whose only
            executor c is itself a sub-workflow (allow_direct_output) whose executor d logs
            the count (as a player does) and yields it + 1, which b sends back to a; 201
            supersteps of the outer run (a sees 0, 2, ... 200), d's log saved inside b's
            state inside the outer checkpoints. Stepstone only: MAF's bench has no
            counterpart yet.
  approval  prepare -> approver; the approver calls ctx.request_info() and the run stops in
            IDLE_WITH_PENDING_REQUESTS; a NEW workflow instance from the same factory is
            rehydrated with run(checkpoint_id=<pause checkpoint>, responses={...}) and
            finishes (approver -> finalize -> output). Without storage the same instance is
            answered with run(responses=...).

Measurements (as in maf_bench.py)
  total_s           wall time of run(seed) on a freshly built workflow (approval: build +
                    first run + rehydrate-and-finish, end to end)
  per_superstep_us  total_s / supersteps
  checkpoints       checkpoints of the run, in lineage order (previous_checkpoint_id chain)
  checkpoint_bytes  file kinds: sizes of the files on disk; inmemory: the compact JSON of
                    checkpoint.to_dict(), computed after the timed region
  resume_s          pingpong/fanout: build a NEW workflow instance on the same storage,
                    run(checkpoint_id=<last-but-one checkpoint>) to completion;
                    approval: the rehydrate step (build + restore + respond + finish)
  initial_run_s     approval only: build + first run up to the pending request

Every run's outputs, superstep and checkpoint counts and restored executor state are
asserted, so an engine that gets the workload wrong fails the benchmark instead of
printing a fast figure.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import platform
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Never

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from workflows_app.engine import (  # noqa: E402
    Executor,
    FileCheckpointStorage,
    InMemoryCheckpointStorage,
    WorkflowBuilder,
    WorkflowContext,
    WorkflowExecutor,
    WorkflowRunState,
    handler,
    register_checkpoint_type,
    response_handler,
)

DEFAULT_REPS = 5
PINGPONG_STEPS = 200
FANOUT_WIDTH = 16
FANOUT_ROUNDS = 20
PAYLOAD = "x" * 100  # appended (with a counter prefix) to executor state per message
WORKLOADS = ("pingpong", "fanout", "approval", "subpingpong")
STORAGE_KINDS = ("none", "inmemory", "file", "file-nofsync")


# =========================================================================== pingpong
class Player(Executor):
    """One side of the ping-pong: logs every count it sees and passes count + 1 on."""

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


def pingpong_workflow(storage: Any, steps: int = PINGPONG_STEPS, name: str = "pingpong"):
    """Counts 0..steps-1 bounce between the players: ``steps`` supersteps."""
    ping = Player("a", steps - 1)
    pong = Player("b", steps - 1)
    return (WorkflowBuilder(name=name, start_executor=ping, checkpoint_storage=storage,
                            max_iterations=steps + 10)
            .add_edge(ping, pong)
            .add_edge(pong, ping)
            .build())


def pingpong_final_state(workflow) -> None:
    """Each player handled half the counts, in order."""
    for eid, first in (("a", 0), ("b", 1)):
        log = workflow.executors[eid].log
        assert len(log) == PINGPONG_STEPS // 2, (eid, len(log))
        assert log[0].startswith(f"{first:06d}:") and log[-1].startswith(
            f"{PINGPONG_STEPS - 2 + first:06d}:"), (eid, log[0][:7], log[-1][:7])


# =========================================================================== fanout
class Dispatcher(Executor):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.rounds: list[int] = []

    @handler
    async def on_round(self, round_no: int, ctx: WorkflowContext[int, int]) -> None:
        self.rounds.append(round_no)
        if round_no >= FANOUT_ROUNDS:
            await ctx.yield_output(round_no)
        else:
            await ctx.send_message(round_no)  # the fan-out group delivers it to every worker

    async def on_checkpoint_save(self) -> dict[str, Any]:
        return {"rounds_seen": list(self.rounds)}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self.rounds = list(state.get("rounds_seen", []))


class Worker(Executor):
    def __init__(self, id: str, index: int) -> None:
        super().__init__(id)
        self.index = index
        self.done = 0

    @handler
    async def on_task(self, round_no: int, ctx: WorkflowContext[int]) -> None:
        self.done += 1
        await ctx.send_message(round_no * 100 + self.index)

    async def on_checkpoint_save(self) -> dict[str, Any]:
        return {"processed": self.done}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self.done = int(state.get("processed", 0))


class Aggregator(Executor):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.totals: list[int] = []

    @handler
    async def on_results(self, results: list[int], ctx: WorkflowContext[int]) -> None:
        assert len(results) == FANOUT_WIDTH, f"fan-in delivered {len(results)} results"
        round_no = results[0] // 100
        assert sorted(results) == [round_no * 100 + i for i in range(FANOUT_WIDTH)], results
        self.totals.append(sum(results))
        await ctx.send_message(round_no + 1)

    async def on_checkpoint_save(self) -> dict[str, Any]:
        return {"sums": list(self.totals)}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self.totals = list(state.get("sums", []))


def fanout_workflow(storage: Any):
    dispatcher = Dispatcher("dispatcher")
    workers = [Worker(f"w{i:02d}", i) for i in range(FANOUT_WIDTH)]
    aggregator = Aggregator("aggregator")
    return (WorkflowBuilder(name="fanout", start_executor=dispatcher, checkpoint_storage=storage,
                            max_iterations=200)
            .add_fan_out_edges(dispatcher, workers)
            .add_fan_in_edges(workers, aggregator)
            .add_edge(aggregator, dispatcher)
            .build())


def fanout_final_state(workflow) -> None:
    """Every round reached every worker once and was summed once."""
    ex = workflow.executors
    assert ex["dispatcher"].rounds == list(range(FANOUT_ROUNDS + 1)), ex["dispatcher"].rounds
    expected = [r * 100 * FANOUT_WIDTH + sum(range(FANOUT_WIDTH)) for r in range(FANOUT_ROUNDS)]
    assert ex["aggregator"].totals == expected, ex["aggregator"].totals
    for i in range(FANOUT_WIDTH):
        assert ex[f"w{i:02d}"].done == FANOUT_ROUNDS, (i, ex[f"w{i:02d}"].done)


# =========================================================================== approval
@dataclass
class ApprovalRequest:
    document: str
    amount: int


register_checkpoint_type(ApprovalRequest)  # explicit, though build() would register it too


class Prepare(Executor):
    @handler
    async def on_input(self, document: str, ctx: WorkflowContext[str]) -> None:
        await ctx.send_message(document.upper())


class Approver(Executor):
    def __init__(self, id: str) -> None:
        super().__init__(id)
        self.asked: list[str] = []

    @handler
    async def on_document(self, document: str, ctx: WorkflowContext[str]) -> None:
        self.asked.append(document)
        await ctx.request_info(ApprovalRequest(document=document, amount=42), bool)

    @response_handler
    async def on_decision(self, request: ApprovalRequest, approved: bool,
                          ctx: WorkflowContext[str]) -> None:
        await ctx.send_message(f"{request.document}:{'approved' if approved else 'rejected'}")

    async def on_checkpoint_save(self) -> dict[str, Any]:
        return {"asked": list(self.asked)}

    async def on_checkpoint_restore(self, state: dict[str, Any]) -> None:
        self.asked = list(state.get("asked", []))


class Finalize(Executor):
    @handler
    async def on_result(self, result: str, ctx: WorkflowContext[Never, str]) -> None:
        await ctx.yield_output(result)


def approval_workflow(storage: Any):
    prepare, approver, finalize = Prepare("prepare"), Approver("approver"), Finalize("finalize")
    return (WorkflowBuilder(name="approval", start_executor=prepare, checkpoint_storage=storage)
            .add_edge(prepare, approver)
            .add_edge(approver, finalize)
            .build())


APPROVAL_INPUT = "invoice-123"
APPROVAL_OUTPUT = "INVOICE-123:approved"


# =========================================================================== storages
class Store:
    """The storage of one repetition (a fresh folder for the file kinds, removed after)."""

    def __init__(self, kind: str) -> None:
        if kind not in STORAGE_KINDS:
            raise ValueError(f"unknown storage kind {kind!r}")
        self.kind = kind
        self.folder: str | None = None
        self.storage: Any = None

    def __enter__(self) -> "Store":
        if self.kind == "inmemory":
            self.storage = InMemoryCheckpointStorage()
        elif self.kind.startswith("file"):
            self.folder = tempfile.mkdtemp(prefix="stepstone_bench_")
            self.storage = FileCheckpointStorage(self.folder, fsync=self.kind == "file")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.folder is not None:
            shutil.rmtree(self.folder, ignore_errors=True)

    async def lineage(self, workflow_name: str) -> list[Any]:
        """The stored checkpoints of the run, oldest first, following previous_checkpoint_id."""
        checkpoints = await self.storage.list_checkpoints(workflow_name)
        children: dict[Any, Any] = {}
        for cp in checkpoints:
            children.setdefault(cp.previous_checkpoint_id, cp)
        chain, node = [], children.get(None)
        while node is not None:
            chain.append(node)
            node = children.get(node.checkpoint_id)
        assert len(chain) == len(checkpoints), "checkpoints do not form one lineage chain"
        return chain

    def size_of(self, checkpoint: Any) -> int:
        """Bytes the storage holds for ``checkpoint`` (whole, or as a delta)."""
        return self.storage.stored_size(checkpoint.checkpoint_id)


# =========================================================================== subpingpong
class Turn(Executor):
    """The innermost step of the two-level pingpong: logs the count, yields count + 1."""

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


def subpingpong_workflow(storage: Any, steps: int = PINGPONG_STEPS):
    """a <-> b, b = sub-workflow [c = sub-workflow [d]]: ``steps + 1`` outer supersteps."""
    inner = WorkflowBuilder(name="inner", start_executor=Turn("d")).build()
    middle = WorkflowBuilder(
        name="middle",
        start_executor=WorkflowExecutor(inner, id="c", allow_direct_output=True)).build()
    a = Player("a", steps)
    b = WorkflowExecutor(middle, id="b")
    return (WorkflowBuilder(name="subpingpong", start_executor=a, checkpoint_storage=storage,
                            max_iterations=steps + 10)
            .add_edge(a, b)
            .add_edge(b, a)
            .build())


def subpingpong_final_state(workflow) -> None:
    """a logged the even counts 0..200, d (two levels down) the odd ones 1..199."""
    a = workflow.executors["a"].log
    d = workflow.executors["b"].workflow.executors["c"].workflow.executors["d"].log
    assert len(a) == PINGPONG_STEPS // 2 + 1 and len(d) == PINGPONG_STEPS // 2, (len(a), len(d))
    assert a[-1].startswith(f"{PINGPONG_STEPS:06d}:") and d[0].startswith("000001:") and \
        d[-1].startswith(f"{PINGPONG_STEPS - 1:06d}:"), (a[-1][:7], d[0][:7], d[-1][:7])


def supersteps_of(result: Any) -> int:
    return sum(1 for event in result if event.type == "superstep_completed")


def median(values: list[float]) -> float | None:
    return statistics.median(values) if values else None


def emit(row: dict[str, Any]) -> None:
    print(json.dumps({k: round(v, 6) if isinstance(v, float) else v for k, v in row.items()}),
          flush=True)


# =========================================================================== runners
async def measure_loop(name: str, factory: Callable[[Any], Any], seed: Any, expected: Any,
                       check_state: Callable[[Any], None], kind: str, reps: int) -> dict:
    totals, resumes, steps, counts, bytes_total, bytes_last = [], [], [], [], [], []
    for _ in range(reps):
        # Free the previous repetition now, not when a name is rebound inside a timed region.
        workflow = result = fresh = resumed = None
        with Store(kind) as store:
            gc.collect()
            workflow = factory(store.storage)
            started = time.perf_counter()
            result = await workflow.run(seed)
            totals.append(time.perf_counter() - started)

            assert result.get_outputs() == [expected], result.get_outputs()
            assert result.get_final_state() is WorkflowRunState.IDLE, result.get_final_state()
            check_state(workflow)
            steps.append(supersteps_of(result))
            if store.storage is None:
                continue

            chain = await store.lineage(workflow.name)
            # the entry checkpoint, then one per superstep
            assert len(chain) == steps[-1] + 1, (len(chain), steps[-1])
            assert [cp.superstep for cp in chain] == list(range(steps[-1] + 1))
            assert chain[-1].checkpoint_id == workflow.get_last_checkpoint_id()
            counts.append(len(chain))
            sizes = [store.size_of(cp) for cp in chain]
            bytes_total.append(sum(sizes))
            bytes_last.append(sizes[-1])

            restart_from = chain[-2].checkpoint_id  # the last-but-one checkpoint
            gc.collect()
            started = time.perf_counter()
            fresh = factory(store.storage)  # a NEW instance: rehydrate
            resumed = await fresh.run(checkpoint_id=restart_from)
            resumes.append(time.perf_counter() - started)

            assert resumed.get_outputs() == [expected], resumed.get_outputs()
            assert supersteps_of(resumed) == 1, supersteps_of(resumed)
            check_state(fresh)  # restored state + the last superstep = the full run's state
    return result_row(name, kind, totals, steps, counts, bytes_total, bytes_last, resumes)


async def measure_approval(kind: str, reps: int) -> dict:
    totals, initials, rehydrates, steps, counts, bytes_total, bytes_last = ([] for _ in range(7))
    for _ in range(reps):
        workflow = first = finisher = second = None  # as in measure_loop
        with Store(kind) as store:
            gc.collect()
            started = time.perf_counter()
            workflow = approval_workflow(store.storage)
            first = await workflow.run(APPROVAL_INPUT)
            paused = time.perf_counter()

            requests = first.get_request_info_events()
            assert len(requests) == 1, requests
            assert first.get_final_state() is WorkflowRunState.IDLE_WITH_PENDING_REQUESTS, \
                first.get_final_state()
            assert first.get_outputs() == [], first.get_outputs()
            answer = {requests[0].request_id: True}
            if store.storage is None:
                second = await workflow.run(responses=answer)  # same instance, no checkpoints
                finisher = workflow
            else:
                pause_id = workflow.get_last_checkpoint_id()
                resume_started = time.perf_counter()
                finisher = approval_workflow(store.storage)  # a NEW instance: rehydrate
                second = await finisher.run(checkpoint_id=pause_id, responses=answer)
                rehydrates.append(time.perf_counter() - resume_started)
            finished = time.perf_counter()

            assert second.get_outputs() == [APPROVAL_OUTPUT], second.get_outputs()
            assert second.get_final_state() is WorkflowRunState.IDLE, second.get_final_state()
            assert second.get_request_info_events() == [], "the answered request was re-emitted"
            assert finisher.executors["approver"].asked == ["INVOICE-123"], \
                finisher.executors["approver"].asked
            totals.append(finished - started)
            initials.append(paused - started)
            steps.append(supersteps_of(first) + supersteps_of(second))
            if store.storage is None:
                continue

            chain = await store.lineage("approval")
            # entry + response-entry + one per superstep
            assert len(chain) == steps[-1] + 2, (len(chain), steps[-1])
            kinds = [cp.metadata.get("kind") for cp in chain]
            assert kinds.count("entry") == 1 and kinds.count("response") == 1, kinds
            counts.append(len(chain))
            sizes = [store.size_of(cp) for cp in chain]
            bytes_total.append(sum(sizes))
            bytes_last.append(sizes[-1])
    return {**result_row("approval", kind, totals, steps, counts, bytes_total, bytes_last,
                         rehydrates),
            "initial_run_s": median(initials)}


def result_row(workload: str, kind: str, totals: list[float], steps: list[int],
               counts: list[int], bytes_total: list[int], bytes_last: list[int],
               resumes: list[float]) -> dict[str, Any]:
    """The JSON line of one (workload, storage): medians of the repetitions."""
    total = median(totals)
    supersteps = int(median(steps))
    return {
        "workload": workload,
        "storage": kind,
        "supersteps": supersteps,
        "total_s": total,
        "per_superstep_us": total / supersteps * 1e6,
        "checkpoints": int(median(counts)) if counts else 0,
        "checkpoint_bytes_total": int(median(bytes_total)) if bytes_total else 0,
        "checkpoint_bytes_last": int(median(bytes_last)) if bytes_last else 0,
        "resume_s": median(resumes),
    }


async def measure(workload: str, kind: str, reps: int) -> dict:
    if workload == "pingpong":
        return await measure_loop("pingpong", pingpong_workflow, 0, PINGPONG_STEPS - 1,
                                  pingpong_final_state, kind, reps)
    if workload == "fanout":
        return await measure_loop("fanout", fanout_workflow, 0, FANOUT_ROUNDS,
                                  fanout_final_state, kind, reps)
    if workload == "approval":
        return await measure_approval(kind, reps)
    if workload == "subpingpong":
        return await measure_loop("subpingpong", subpingpong_workflow, 0, PINGPONG_STEPS,
                                  subpingpong_final_state, kind, reps)
    raise ValueError(f"unknown workload {workload!r}")


async def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--reps", type=int, default=DEFAULT_REPS,
                        help=f"repetitions per (workload, storage); medians are reported "
                             f"(default {DEFAULT_REPS})")
    parser.add_argument("--only", action="append", choices=WORKLOADS, metavar="WORKLOAD",
                        help=f"run only this workload ({', '.join(WORKLOADS)}); repeatable")
    parser.add_argument("--storage", action="append", choices=STORAGE_KINDS, metavar="KIND",
                        help=f"run only this storage kind ({', '.join(STORAGE_KINDS)}); "
                             f"repeatable")
    parser.add_argument("--json-meta", action="store_true",
                        help="finish with a meta line (engine, python, reps, wall time)")
    args = parser.parse_args(argv)
    if args.reps < 1:
        parser.error("--reps must be at least 1")
    workloads = [w for w in WORKLOADS if not args.only or w in args.only]
    kinds = [k for k in STORAGE_KINDS if not args.storage or k in args.storage]

    started = time.perf_counter()
    for workload in workloads:
        for kind in kinds:
            emit(await measure(workload, kind, args.reps))
    if args.json_meta:
        print(json.dumps({
            "meta": True,
            "engine": "stepstone",
            "python": sys.version.split()[0],
            "implementation": platform.python_implementation(),
            "reps": args.reps,
            "workloads": workloads,
            "storages": kinds,
            "bench_wall_s": round(time.perf_counter() - started, 2),
        }), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
