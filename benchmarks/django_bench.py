"""Stepstone's Django store on SQLite, on the reference workloads.

1. pingpong / fanout through the worker's code path (``RunExecution``) in this process:
   every checkpoint is a row saved with its events (RunEvent rows), outputs and lease in one
   transaction. Prints the same JSON fields as ``reference.py`` (storage "django-sqlite").
2. approval through real django-q2 workers (``manage.py qcluster``): first ten runs one at
   a time on the idle cluster (enqueue-to-first-superstep latency of a lone run), then N runs
   started at once, each stopping on its request, all answered: latency under that burst
   (median, p95) and runs completed per minute.
3. pingpong at 200 and 2,000 supersteps ("pingpong-growth"): bytes stored and the restore
   of the newest checkpoint, in several fresh processes (``bench_growth``).

    python benchmarks/django_bench.py [--reps 5] [--approval-runs 60] [--skip-worker]
                                      [--growth-processes 5]

Each invocation uses a fresh temporary data folder (its own SQLite files).
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


def setup_django(data_dir: str) -> None:
    os.environ["STEPSTONE_DATA_DIR"] = data_dir
    os.environ["STEPSTONE_WORKFLOW_MODULES"] = "benchmarks.registered"
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stepstone.settings")
    os.environ.setdefault("DJANGO_LOG_LEVEL", "WARNING")
    import django
    django.setup()
    from django.core.management import call_command
    call_command("migrate", interactive=False, verbosity=0)
    call_command("migrate", database="channels", interactive=False, verbosity=0)


def storage_in_thread(run):
    """The Django store for ``run``, loading and saving on the event loop's own thread, as
    the worker does (no thread hop per call)."""
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "1"  # the worker's private loop does the same
    return _in_thread_storage_class()(run)


@functools.cache
def _in_thread_storage_class():
    # Made once: a class made per call would be garbage in a cycle after every restore.
    from django.db import connections

    from workflows_app import checkpoint_rows

    connection = connections["default"]  # an event loop's task would otherwise open its own

    class InThread(checkpoint_rows.DatabaseCheckpointStorage):
        async def load(self, checkpoint_id: str):
            connections["default"] = connection
            return self._load(checkpoint_id)

        async def save(self, checkpoint) -> str:
            connections["default"] = connection
            return self._save(checkpoint)

    return InThread


def engine_resume(workload: str, run, checkpoint_id: str, expected) -> float:
    """Like the peers' resume: a NEW workflow instance restores ``checkpoint_id`` from the
    Django store and runs to completion, saving its checkpoints there."""
    from workflows_app import registry

    workflow = registry.get_definition(workload).build()
    storage = storage_in_thread(run)
    started = time.perf_counter()
    result = asyncio.run(workflow.run(checkpoint_id=str(checkpoint_id),
                                      checkpoint_storage=storage))
    elapsed = time.perf_counter() - started
    assert result.get_outputs() == [expected], result.get_outputs()
    return elapsed


def bench_in_process(workload: str, seed, expected, reps: int) -> dict:
    """A run through the worker's code path (``RunExecution``), then two resumes from its
    last-but-one checkpoint: ``resume_s`` as the peers measure it (``engine_resume``) and
    ``worker_resume_s`` through a worker's execution (lease, events, run row, live updates)."""
    from workflows_app import services
    from workflows_app.worker import RunExecution
    from workflows_app.models import Checkpoint, Run, RunEvent

    totals, steps, sizes, events, resumes, worker_resumes = [], [], [], [], [], []
    for _ in range(reps + 1):  # the first repetition warms caches and is dropped
        run = services.start_run(workload, seed)
        started = time.perf_counter()
        RunExecution(run.pk).execute()
        elapsed = time.perf_counter() - started
        run = Run.objects.get(pk=run.pk)
        assert run.status == "completed" and run.outputs == [expected], (run.status, run.outputs, run.error)
        chain = list(Checkpoint.objects.filter(run=run).order_by("created_at"))
        resumes.append(engine_resume(workload, run, chain[-2].pk, expected))
        # a worker's resume: a new execution restores the last-but-one checkpoint, finishes
        services.resume_run(run.pk, chain[-2].pk)
        t0 = time.perf_counter()
        RunExecution(run.pk).execute()
        resume = time.perf_counter() - t0
        assert Run.objects.get(pk=run.pk).outputs == [expected]
        totals.append(elapsed)
        steps.append(run.current_superstep)
        sizes.append(sum(c.size_bytes for c in chain))
        events.append(RunEvent.objects.filter(run=run).count())
        worker_resumes.append(resume)
    totals, resumes, worker_resumes = totals[1:], resumes[1:], worker_resumes[1:]
    total = statistics.median(totals)
    return {"workload": workload, "storage": "django-sqlite", "supersteps": steps[-1],
            "total_s": round(total, 6), "per_superstep_us": round(total / steps[-1] * 1e6, 1),
            "checkpoints": len(chain), "checkpoint_bytes_total": sizes[-1],
            "events_recorded": events[-1], "resume_s": round(statistics.median(resumes), 6),
            "worker_resume_s": round(statistics.median(worker_resumes), 6)}


def bench_approval(reps: int) -> dict:
    """approval with the Django store, as the peers run it: the run stops on its request;
    a NEW instance rehydrates from the paused checkpoint with the answer and finishes
    (``resume_s``)."""
    from benchmarks.reference import APPROVAL_INPUT, APPROVAL_OUTPUT
    from workflows_app import registry, services
    from workflows_app.models import Run

    definition = registry.get_definition("approval")
    totals, rehydrates, steps, sizes = [], [], [], []
    for _ in range(reps + 1):
        run = services.start_run("approval", APPROVAL_INPUT)
        Run.objects.filter(pk=run.pk).update(status="cancelled")  # driven here, not by a worker
        storage = storage_in_thread(run)
        started = time.perf_counter()
        first = asyncio.run(definition.build().run(APPROVAL_INPUT, checkpoint_storage=storage))
        [request] = first.get_request_info_events()
        paused = Run.objects.get(pk=run.pk).head_checkpoint_id
        resume_started = time.perf_counter()
        second = asyncio.run(definition.build().run(
            checkpoint_id=str(paused), responses={request.request_id: True},
            checkpoint_storage=storage))
        finished = time.perf_counter()
        assert second.get_outputs() == [APPROVAL_OUTPUT], second.get_outputs()
        totals.append(finished - started)
        rehydrates.append(finished - resume_started)
        steps.append(sum(e.type == "superstep_completed" for e in [*first, *second]))
        sizes.append(sum(run.checkpoints.values_list("size_bytes", flat=True)))
    total = statistics.median(totals[1:])
    return {"workload": "approval", "storage": "django-sqlite", "supersteps": steps[-1],
            "total_s": round(total, 6), "per_superstep_us": round(total / steps[-1] * 1e6, 1),
            "checkpoint_bytes_total": sizes[-1],
            "resume_s": round(statistics.median(rehydrates[1:]), 6)}


GROWTH_LENGTHS = {"pingpong": 200, "pingpong-2000": 2000}  # workload -> supersteps


def bench_growth(processes: int, reps: int) -> list[dict]:
    """pingpong at 200 and 2,000 supersteps (``GROWTH_LENGTHS``): the bytes a run's
    checkpoints take in the database, and the time to restore its newest checkpoint into a
    fresh workflow instance (load, decode, restore the executors; the run then finds nothing
    left to do), by the engine on the Django store (``restore_newest_s``) and by a worker's
    whole execution (``worker_restore_newest_s``).

    Measured as pyperf measures: in ``processes`` fresh interpreters (``--growth-process``),
    each with a database of its own, ``reps`` restores of each length taking turns. A
    restore's time depends on where the allocator puts its thousands of strings, so one
    process's heap would weigh on every value; turns let a busy spell of the machine fall
    on both lengths alike. Figures are medians over all values; ``restore_ratio_by_process``
    shows the spread of the ratio the targets judge."""
    samples: list[list[dict]] = []
    for _ in range(processes):
        with tempfile.TemporaryDirectory(prefix="stepstone-growth-") as data_dir:
            done = subprocess.run(
                [sys.executable, __file__, "--growth-process", "--reps", str(reps)],
                cwd=REPO, env={**os.environ, "STEPSTONE_DATA_DIR": data_dir},
                capture_output=True, text=True, check=True)
        samples.append([json.loads(line) for line in done.stdout.splitlines()
                        if line.startswith("{")])
    rows = []
    for index, steps in enumerate(GROWTH_LENGTHS.values()):
        mine = [process[index] for process in samples]
        rows.append({"workload": "pingpong-growth", "storage": "django-sqlite",
                     "supersteps": steps, "processes": processes, "restores": processes * reps,
                     **{key: mine[-1][key] for key in ("checkpoints", "checkpoint_bytes_total")},
                     **{key: round(statistics.median(t for p in mine for t in p[key]), 6)
                        for key in ("restore_newest_s", "worker_restore_newest_s")}})
    rows[-1]["restore_ratio_by_process"] = [
        round(statistics.median(process[-1]["restore_newest_s"])
              / statistics.median(process[0]["restore_newest_s"]), 2) for process in samples]
    return rows


def growth_process(reps: int) -> None:
    """One process of ``bench_growth``: prints a row per length with every time measured."""
    from workflows_app import checkpoint_rows, registry, services
    from workflows_app.worker import RunExecution
    from workflows_app.models import Run

    runs = {}
    for workload, steps in GROWTH_LENGTHS.items():
        run = services.start_run(workload, 0)
        RunExecution(run.pk).execute()
        run = Run.objects.get(pk=run.pk)
        assert run.status == "completed" and run.outputs == [steps - 1], (run.status, run.error)
        runs[workload] = run

    def engine_restore(workload: str) -> float:
        run, steps = runs[workload], GROWTH_LENGTHS[workload]
        workflow = registry.get_definition(workload).build()
        storage = storage_in_thread(run)
        started = time.perf_counter()
        asyncio.run(workflow.run(checkpoint_id=str(run.head_checkpoint_id),
                                 checkpoint_storage=storage))
        elapsed = time.perf_counter() - started
        assert [e.log[-1][:6] for e in workflow.executors.values()] == [
            f"{steps - 2:06d}", f"{steps - 1:06d}"]
        return elapsed

    def worker_restore(workload: str) -> float:
        # Resume the finished run from its newest checkpoint: claim the lease, read the
        # checkpoint, restore, find nothing to do, record that.
        run = runs[workload]
        services.resume_run(run.pk, run.head_checkpoint_id)
        started = time.perf_counter()
        RunExecution(run.pk).execute()
        elapsed = time.perf_counter() - started
        assert Run.objects.get(pk=run.pk).status == "completed"
        return elapsed

    times = {(measure, workload): [] for measure in (engine_restore, worker_restore)
             for workload in GROWTH_LENGTHS}
    for measure in (engine_restore, worker_restore):
        for _ in range(reps + 1):  # the first round warms caches and is dropped
            for workload in GROWTH_LENGTHS:
                times[measure, workload].append(measure(workload))
    for workload, steps in GROWTH_LENGTHS.items():
        print(json.dumps({
            "supersteps": steps, "checkpoints": runs[workload].checkpoints.count(),
            "checkpoint_bytes_total": checkpoint_rows.bytes_stored(runs[workload]),
            "restore_newest_s": times[engine_restore, workload][1:],
            "worker_restore_newest_s": times[worker_restore, workload][1:]}), flush=True)


def bench_worker(data_dir: str, runs: int) -> dict:
    """Approval runs through a real qcluster: latency to first superstep, runs per minute."""
    from workflows_app import services
    from workflows_app.models import PendingRequest, Run, RunEvent

    env = {**os.environ, "STEPSTONE_DATA_DIR": data_dir,
           "STEPSTONE_WORKFLOW_MODULES": "benchmarks.registered", "DJANGO_LOG_LEVEL": "WARNING"}
    cluster = subprocess.Popen([sys.executable, "manage.py", "qcluster"], cwd=REPO, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
    try:
        time.sleep(3)  # let the workers start before the clock does
        # Idle cluster: one run at a time, so the latency is the pick-up, not a queue.
        idle = []
        for _ in range(10):
            run_id = services.start_run("approval", "invoice-123").pk
            _wait(lambda: RunEvent.objects.filter(run_id=run_id, type="superstep_started").exists(), 30)
            run = Run.objects.get(pk=run_id)
            first = RunEvent.objects.filter(run=run, type="superstep_started").order_by("seq").first()
            idle.append((first.created_at - run.created_at).total_seconds())
        began = time.time()
        ids = [services.start_run("approval", "invoice-123").pk for _ in range(runs)]
        _wait(lambda: Run.objects.filter(pk__in=ids, status="waiting").count() == runs, 120)
        for request in PendingRequest.objects.filter(run_id__in=ids, status="open"):
            services.respond(request.pk, True)
        _wait(lambda: Run.objects.filter(pk__in=ids, status="completed").count() == runs, 120)
        finished = time.time()
        latencies = []
        for run in Run.objects.filter(pk__in=ids):
            assert run.outputs == ["INVOICE-123:approved"], run.outputs
            first = RunEvent.objects.filter(run=run, type="superstep_started").order_by("seq").first()
            latencies.append((first.created_at - run.created_at).total_seconds())
    finally:
        os.killpg(cluster.pid, signal.SIGINT)  # what Ctrl-C sends: the cluster stops cleanly
        try:
            cluster.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(cluster.pid, signal.SIGKILL)
            cluster.wait()
    latencies.sort()
    return {"workload": "approval", "storage": "django-sqlite", "mode": "qcluster",
            "runs": runs, "workers": int(os.environ.get("STEPSTONE_WORKERS", "2")),
            "idle_enqueue_to_first_superstep_ms_median": round(statistics.median(idle) * 1e3, 1),
            "enqueue_to_first_superstep_ms_median": round(statistics.median(latencies) * 1e3, 1),
            "enqueue_to_first_superstep_ms_p95": round(latencies[int(0.95 * (runs - 1))] * 1e3, 1),
            "runs_per_minute": round(runs / (finished - began) * 60, 1)}


def _wait(condition, timeout: float) -> None:
    deadline = time.time() + timeout
    while not condition():
        if time.time() > deadline:
            raise TimeoutError("benchmark runs did not finish in time")
        time.sleep(0.05)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--approval-runs", type=int, default=60)
    parser.add_argument("--skip-worker", action="store_true")
    parser.add_argument("--growth-processes", type=int, default=7)
    parser.add_argument("--growth-process", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.growth_process:  # one process of bench_growth, in the data folder it was given
        setup_django(os.environ["STEPSTONE_DATA_DIR"])
        growth_process(args.reps)
        return
    data_dir = tempfile.mkdtemp(prefix="stepstone-bench-")
    setup_django(data_dir)
    print(json.dumps(bench_in_process("pingpong", 0, 199, args.reps)), flush=True)
    print(json.dumps(bench_in_process("fanout", 0, 20, args.reps)), flush=True)
    print(json.dumps(bench_approval(args.reps)), flush=True)
    # Restores take a millisecond: more repetitions for a steady median.
    for row in bench_growth(args.growth_processes, args.reps * 10):
        print(json.dumps(row), flush=True)
    if not args.skip_worker:
        print(json.dumps(bench_worker(data_dir, args.approval_runs)), flush=True)


if __name__ == "__main__":
    main()
