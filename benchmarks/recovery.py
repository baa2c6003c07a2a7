"""Crash recovery: how soon a run whose worker was SIGKILLed runs again, and what it costs.

A throw-away installation (``tests/installation.py``; PostgreSQL and Redis when
``DATABASE_URL`` and ``REDIS_URL`` are set) with the production timings (a 5 s lease) runs
``--runs`` long-loop runs of ``--rounds`` ticks of ``--step-ms`` each on ``--clusters``
qcluster processes of ``--workers`` workers (by default a worker for every run: a run whose
worker died waits for a free worker like any queued run, so with fewer workers the figures
measure the queue as well). ``--kills`` times, once the runs are under way,
every cluster is SIGKILLed as a whole (guard, pusher, monitor and workers, through its
process group) and as many new ones are started at once. For every run that a worker held
at the kill (status running, lease owner set), it measures:

- ``running_again_s``: the kill -> the run is running under a new worker's lease;
- ``progress_again_s``: the kill -> the run's next superstep is committed (its head moves).

Then every run must complete with long-loop's deterministic output (``sum(1..rounds)``, as
an uninterrupted run yields), and its history must hold no superstep executed twice
(``superstep_completed`` and superstep checkpoints once per superstep, on an unbroken
lineage) and no event twice (seq 1..n, and no event of a superstep recorded twice; a task's
``started`` and status events, which each execution records, are not counted). The exit
status is 1 if any check fails, or if the p95 of ``running_again_s`` exceeds ``--target``.

It also measures what fast recovery costs: the recovery sweep that each cluster runs about
every ``RECOVERY_SWEEP_SECONDS`` (its statements, writes and time per call, on this
installation's database after the runs), a lease renewal (the write a heartbeat makes once
per ``HEARTBEAT_SECONDS`` in a superstep that has committed nothing for that long), and the
CPU a cluster uses when idle, over ``--idle-seconds`` (django-q2's polling and the sweeps).

    .venv/bin/python benchmarks/recovery.py [--runs 40] [--kills 5] [--clusters 2]
        [--workers 20] [--rounds 250] [--step-ms 100]

    # scale-out configuration (scripts/ci-services.sh start):
    DATABASE_URL=postgres://stepstone:stepstone@127.0.0.1:5432/stepstone \\
    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python benchmarks/recovery.py

Prints one JSON object.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.installation import (DATABASE_URL, PRODUCTION_TIMINGS,  # noqa: E402
                                Installation)

POLL_SECONDS = 0.05
RECOVERY_TIMEOUT = 60  # seconds a killed run may take to run again before the check fails
TICKS = os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: float) -> float:
    """Nearest rank."""
    ordered = sorted(values)
    return ordered[max(0, min(len(ordered) - 1, round(q * len(ordered) + 0.5) - 1))]


def summary(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    return {"n": len(values), "median": round(statistics.median(values), 2),
            "p95": round(percentile(values, 0.95), 2), "max": round(max(values), 2)}


def run_rows(site: Installation) -> dict[str, dict]:
    rows = site.query("SELECT id, status, lease_owner, current_superstep, head_checkpoint_id, "
                      "attempts FROM workflows_app_run")
    return {row["id"]: row for row in rows}


def start_runs(site: Installation, count: int, rounds: int, step_ms: int) -> list[str]:
    ids = site.shell(
        "import json\n"
        "from workflows_app import services\n"
        f"runs = [services.start_run('long-loop', {{'rounds': {rounds}, 'step_ms': {step_ms}}})\n"
        f"        for _ in range({count})]\n"
        "print(json.dumps([str(run.pk) for run in runs]))\n")
    return [run_id.replace("-", "") for run_id in ids]


# --------------------------------------------------------------------------- kills
def kill_and_measure(site: Installation, clusters: int, workers: int) -> list[dict]:
    """SIGKILL every cluster, start new ones, and time each held run's recovery."""
    before = run_rows(site)
    held = {run_id: row for run_id, row in before.items()
            if row["status"] == "running" and row["lease_owner"]}
    alive = [cluster for cluster in site.clusters if not cluster.killed]
    for cluster in alive:  # all at once: the clock starts with the first SIGKILL
        os.killpg(cluster.pgid, signal.SIGKILL)
    killed_at = time.monotonic()
    for cluster in alive:
        cluster.kill()  # waits until every process of its group is gone
    for _ in range(clusters):
        site.start_cluster(workers=workers)
    pending = dict(held)
    results = {run_id: {"run": run_id} for run_id in held}
    while pending and time.monotonic() - killed_at < RECOVERY_TIMEOUT:
        time.sleep(POLL_SECONDS)
        now = time.monotonic() - killed_at
        rows = run_rows(site)
        for run_id, old in list(pending.items()):
            row, result = rows[run_id], results[run_id]
            if row["attempts"] == old["attempts"] and row["status"] != "running":
                result["ended_before_kill"] = True  # its last commit beat the SIGKILL
                del pending[run_id]
                continue
            taken_over = row["attempts"] > old["attempts"]
            if "running_again_s" not in result and taken_over:
                result["running_again_s"] = now
            if taken_over and (row["status"] != "running"
                               or row["head_checkpoint_id"] != old["head_checkpoint_id"]):
                result["progress_again_s"] = now
                del pending[run_id]
    for run_id in pending:
        results[run_id]["stuck"] = True
    return list(results.values())


# --------------------------------------------------------------------------- checks
def check_run(site: Installation, run_id: str, rounds: int) -> dict[str, Any]:
    """What is wrong with a finished run's output and history ({} if nothing)."""
    problems: dict[str, Any] = {}
    run = site.run(run_id)
    expected = rounds * (rounds + 1) // 2
    if run["status"] != "completed" or run["outputs"] != [expected]:
        problems["output"] = {"status": run["status"], "outputs": run["outputs"],
                              "expected": [expected], "error": run["error"]}
    events = site.events(run_id)
    if [e["seq"] for e in events] != list(range(1, len(events) + 1)):
        problems["seq_gaps"] = True
    completed = Counter(e["superstep"] for e in events if e["type"] == "superstep_completed")
    duplicated_steps = sum(n - 1 for n in completed.values() if n > 1)
    checkpoints = site.checkpoints(run_id)
    steps = Counter(row["superstep"] for row in checkpoints.values()
                    if row["kind"] == "superstep")
    duplicated_steps += sum(n - 1 for n in steps.values() if n > 1)
    if sorted(completed) != list(range(1, 2 * rounds + 1)) or sorted(steps) != sorted(completed):
        problems["superstep_gaps"] = True
    keys = Counter((e["type"], e["superstep"], e["executor_id"], json.dumps(e["data"]))
                   for e in events if e["superstep"] is not None)
    duplicated_events = sum(n - 1 for n in keys.values() if n > 1)
    # An unbroken lineage from the head to the entry checkpoint, nothing written beside it.
    chain, current = [], checkpoints.get(run["head_checkpoint_id"])
    while current is not None and len(chain) <= len(checkpoints):
        chain.append(current["checkpoint_id"])
        current = checkpoints.get(current["previous_id"]) if current["previous_id"] else None
    if len(chain) != len(checkpoints):
        problems["lineage"] = {"chain": len(chain), "checkpoints": len(checkpoints)}
    if duplicated_steps:
        problems["duplicated_supersteps"] = duplicated_steps
    if duplicated_events:
        problems["duplicated_events"] = duplicated_events
    return problems


# --------------------------------------------------------------------------- cost
COST_SNIPPET = """
import json, time
from datetime import timedelta
from django.db import connection, transaction
from django.utils import timezone
from django.test.utils import CaptureQueriesContext
from workflows_app import services
from workflows_app.models import Run
from workflows_app.worker.lease import Lease
calls = 200
with CaptureQueriesContext(connection) as sweep_queries:
    services.recover_stale_runs()
started = time.perf_counter()
for _ in range(calls):
    services.recover_stale_runs()
sweep_ms = (time.perf_counter() - started) * 1000 / calls
run = Run.objects.first()
# A held lease, so that no sweep takes the probe's run meanwhile.
Run.objects.filter(pk=run.pk).update(status="running", lease_owner="cost-probe",
                                     lease_expires_at=timezone.now() + timedelta(hours=1))
lease = Lease(run.pk, "cost-probe")
with CaptureQueriesContext(connection) as renew_queries:
    with transaction.atomic():
        lease.renew()
started = time.perf_counter()
for _ in range(calls):
    with transaction.atomic():
        lease.renew()
renew_ms = (time.perf_counter() - started) * 1000 / calls
Run.objects.filter(pk=run.pk).update(status="completed", lease_owner="", lease_expires_at=None)
writes = lambda queries: sum(q["sql"].lstrip().upper().startswith(("UPDATE", "INSERT", "DELETE"))
                             for q in queries)
print(json.dumps({"sweep_ms": sweep_ms, "sweep_statements": len(sweep_queries.captured_queries),
                  "sweep_writes": writes(sweep_queries.captured_queries),
                  "renewal_ms": renew_ms,
                  "renewal_writes": writes(renew_queries.captured_queries)}))
"""


def process_cpu_seconds(pgid: int) -> float:
    """User + system CPU of the live processes of a process group."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            fields = Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid:  # fields after the name: state, ppid, pgrp, ...
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / TICKS


def measure_cost(site: Installation, idle_seconds: float) -> dict[str, Any]:
    cost = site.shell(COST_SNIPPET)
    cost = {key: round(value, 3) if isinstance(value, float) else value
            for key, value in cost.items()}
    live = [cluster for cluster in site.clusters if not cluster.killed]
    before = sum(process_cpu_seconds(cluster.pgid) for cluster in live)
    time.sleep(idle_seconds)
    after = sum(process_cpu_seconds(cluster.pgid) for cluster in live)
    cost["idle_cluster_cpu_percent"] = round(100 * (after - before) / idle_seconds / len(live), 2)
    return cost


# --------------------------------------------------------------------------- main
def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=250)
    parser.add_argument("--step-ms", type=int, default=100)
    parser.add_argument("--clusters", type=int, default=2)
    parser.add_argument("--workers", type=int, default=20)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--between", type=float, default=3.0,
                        help="seconds of progress between a recovery and the next kill")
    parser.add_argument("--target", type=float, default=10.0,
                        help="the p95 of running_again_s must not exceed this")
    parser.add_argument("--idle-seconds", type=float, default=20.0)
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="stepstone-recovery-") as tmp:
        site = Installation(Path(tmp) / "site", **{**PRODUCTION_TIMINGS,
                                                   "DJANGO_LOG_LEVEL": "WARNING"})
        try:
            return measure(site, args)
        finally:
            site.close()


def measure(site: Installation, args: argparse.Namespace) -> int:
    site.bootstrap()
    started = time.monotonic()
    run_ids = start_runs(site, args.runs, args.rounds, args.step_ms)
    for _ in range(args.clusters):
        site.start_cluster(workers=args.workers)
    recoveries: list[dict] = []
    kills_done = 0
    for _ in range(args.kills):
        time.sleep(args.between)
        rows = run_rows(site)
        if all(rows[run_id]["status"] == "completed" for run_id in run_ids):
            break
        recoveries.extend(kill_and_measure(site, args.clusters, args.workers))
        kills_done += 1

    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        rows = run_rows(site)
        if all(rows[run_id]["status"] in ("completed", "failed") for run_id in run_ids):
            break
        time.sleep(0.5)
    wall = time.monotonic() - started
    problems = {run_id: p for run_id in run_ids if (p := check_run(site, run_id, args.rounds))}
    cost = measure_cost(site, args.idle_seconds)

    recoveries = [r for r in recoveries if not r.get("ended_before_kill")]
    running_again = [r["running_again_s"] for r in recoveries if "running_again_s" in r]
    progress_again = [r["progress_again_s"] for r in recoveries if "progress_again_s" in r]
    stuck = [r["run"] for r in recoveries if r.get("stuck")]
    report = {
        "configuration": "scale-out (PostgreSQL, Redis)" if DATABASE_URL
        else "embedded (SQLite, channels-lite)",
        "runs": args.runs, "rounds": args.rounds, "step_ms": args.step_ms,
        "clusters": args.clusters, "workers": args.workers, "kills": kills_done,
        "runs_killed": len(recoveries),
        "running_again_s": summary(running_again),
        "progress_again_s": summary(progress_again),
        "stuck_after_kill": stuck,
        "recoveries": recoveries if os.environ.get("RECOVERY_DEBUG") else None,
        "outputs_as_uninterrupted": sum(run_id not in problems
                                        or "output" not in problems[run_id]
                                        for run_id in run_ids),
        "duplicated_supersteps": sum(p.get("duplicated_supersteps", 0)
                                     for p in problems.values()),
        "duplicated_events": sum(p.get("duplicated_events", 0) for p in problems.values()),
        "problems": problems,
        "wall_s": round(wall, 1),
        "cost": cost,
    }
    print(json.dumps(report, indent=2))
    failed = (problems or stuck or not running_again
              or percentile(running_again, 0.95) > args.target)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
