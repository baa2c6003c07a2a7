"""Faults, with real processes: clusters SIGKILLed again and again, two clusters on the same
queue, several clients racing to change the same run, the database going away while runs are
in flight, and a corrupted checkpoint.

Like ``test_worker.py`` these tests drive throw-away installations from outside (see
``tests/installation.py``); they pass on the embedded default and, with ``DATABASE_URL`` and
``REDIS_URL`` set, on PostgreSQL and Redis.
"""

from __future__ import annotations

import json
import subprocess
import time
import uuid
from collections import Counter

from tests.installation import MANAGE, PYTHON, ROOT, Installation
from tests.workflows_app.test_worker import (
    assert_unbroken_history,
    execute_run_tasks,
    lineage,
    open_request,
)

# No slicing and no redelivery while a run executes: one task carries a whole run.
ONE_TASK_PER_RUN = {"STEPSTONE_TASK_TIMEOUT": 60, "STEPSTONE_TASK_SLICE": 30,
                    "STEPSTONE_TASK_RETRY": 90}


def start_runs(site: Installation, workflow: str, input_value: object, count: int) -> list[str]:
    """``count`` runs of ``workflow`` started (and enqueued) by one ``manage.py shell``."""
    return site.shell(
        "import json\n"
        "from workflows_app import services\n"
        f"runs = [services.start_run({workflow!r}, json.loads({json.dumps(input_value)!r}))\n"
        f"        for _ in range({count})]\n"
        "print(json.dumps([str(run.pk) for run in runs]))\n")


def progress(site: Installation, run_ids: list[str]) -> tuple[int, int]:
    """(supersteps done over all runs, runs completed)."""
    runs = [site.run(run_id) for run_id in run_ids]
    return (sum(run["current_superstep"] or 0 for run in runs),
            sum(run["status"] == "completed" for run in runs))


def wait_all(site: Installation, run_ids: list[str], timeout: float) -> list[dict]:
    deadline = time.monotonic() + timeout
    return [site.wait_status(run_id, "completed", "failed",
                             timeout=max(1.0, deadline - time.monotonic()))
            for run_id in run_ids]


# --------------------------------------------------------------------------- 1. kill -9
KILLS = 3


def test_runs_survive_their_cluster_being_killed_again_and_again(make_installation):
    # Tasks killed with their cluster are redelivered 3 s after they were fetched.
    site = make_installation(STEPSTONE_TASK_TIMEOUT=2, STEPSTONE_TASK_SLICE=1,
                             STEPSTONE_TASK_RETRY=3)
    runs = start_runs(site, "long-loop", {"rounds": 20, "step_ms": 60}, 6)
    total = 6 * 40  # two supersteps per round
    kills = 0
    for _ in range(KILLS):
        cluster = site.start_cluster(workers=2)
        done, _ = progress(site, runs)
        # Let the new cluster take over and move the runs on, then kill it mid-superstep.
        site.wait_for("the runs to advance",
                      lambda start=done: progress(site, runs)[0] >= start + 12,
                      timeout=20, interval=0.02)
        done, completed = progress(site, runs)
        if completed == len(runs):
            break
        cluster.kill()
        kills += 1
        assert done < total
    assert kills == KILLS, f"the runs finished after {kills} kill(s); make them longer"
    site.start_cluster(workers=2)

    for run_id, run in zip(runs, wait_all(site, runs, timeout=40)):
        assert (run["status"], run["error"]) == ("completed", ""), run["error"]
        assert run["outputs"] == [210]  # what an uninterrupted run yields: sum(1..20)
        assert run["current_superstep"] == 40
        events = assert_unbroken_history(site, run_id)  # seqs 1..n, lineage, no duplicates
        assert [e["data"] for e in events if e["type"] == "output"] == [210]
        assert sorted(e["superstep"] for e in events
                      if e["type"] == "superstep_completed") == list(range(1, 41))
        # Each execution announces itself (started, status); everything a superstep
        # recorded must be there exactly once.
        keys = Counter((e["type"], e["superstep"], e["executor_id"], json.dumps(e["data"]))
                       for e in events if e["superstep"] is not None)
        assert not [k for k, n in keys.items() if n > 1], "an event was recorded twice"
    assert sum(site.run(run_id)["attempts"] for run_id in runs) > len(runs), \
        "no run was ever taken over after a kill"


# --------------------------------------------------------------------------- 2. two clusters
def test_two_clusters_on_the_same_runs_execute_each_run_once(make_installation):
    site = make_installation(**ONE_TASK_PER_RUN)
    runs = start_runs(site, "long-loop", {"rounds": 5, "step_ms": 20}, 8)
    site.shell("from workflows_app.task_queue import enqueue_run\n"
               f"for run_id in {runs!r}:\n"
               "    enqueue_run(run_id)\n"
               "print(1)\n")  # every run's task a second time
    assert site.queued_tasks() == 16
    site.start_cluster(workers=2)
    site.start_cluster(workers=2)

    for run_id, run in zip(runs, wait_all(site, runs, timeout=30)):
        assert (run["status"], run["error"]) == ("completed", ""), run["error"]
        assert run["outputs"] == [15]
    site.wait_for("every task to be processed",
                  lambda: site.queued_tasks() == 0 and execute_run_tasks(site) >= 16)
    for run_id in runs:
        run = site.run(run_id)
        assert (run["status"], run["outputs"]) == ("completed", [15])
        assert run["attempts"] == 1, f"run {run_id} was executed {run['attempts']} times"
        events = assert_unbroken_history(site, run_id)
        assert [e["type"] for e in events].count("started") == 1
        assert len(lineage(site, run_id)) == 11  # entry + 10 supersteps, written once


# --------------------------------------------------------------------------- 3. races
CLIENTS = 6

RACER = """
import os, sys, time
from django.contrib.auth import get_user_model
from django.db import connection
from workflows_app import services
user = get_user_model().objects.get(username={username!r})
connection.ensure_connection()
open({ready!r}, "w").close()
deadline = time.monotonic() + 30
while not os.path.exists({go!r}) and time.monotonic() < deadline:
    time.sleep(0.001)
try:
    {action}
except Exception as error:
    print(repr(error), file=sys.stderr)
    print("RESULT " + type(error).__name__)
else:
    print("RESULT ok")
"""


def race(site: Installation, tag: str, action: str) -> tuple[list[str], list[str]]:
    """Run ``action`` (Python, with ``services`` and ``user`` in scope) in CLIENTS
    ``manage.py shell`` processes at once, each as user ``client<i>``; return what each
    printed as its RESULT (``ok`` or the exception's class name) and their stderr."""
    barrier = site.data_dir / f"race-{tag}"
    barrier.mkdir()
    go = barrier / "go"
    processes = []
    for i in range(CLIENTS):
        code = RACER.format(username=f"client{i}", ready=str(barrier / f"ready-{i}"),
                            go=str(go), action=action)
        processes.append(subprocess.Popen(
            [PYTHON, str(MANAGE), "shell", "-c", code], cwd=ROOT, env=site.env,
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        site.wait_for("every client to be ready",
                      lambda: all((barrier / f"ready-{i}").exists() for i in range(CLIENTS)))
        go.touch()  # all at once
        outputs = [process.communicate(timeout=60) for process in processes]
    finally:
        for process in processes:
            if process.poll() is None:  # pragma: no cover
                process.kill()
                process.wait()
    results = []
    for (out, err), process in zip(outputs, processes):
        lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
        assert process.returncode == 0 and len(lines) == 1, (process.returncode, out, err)
        results.append(lines[0].split(" ", 1)[1])
    return results, [err for _, err in outputs]


def test_concurrent_clients_on_the_same_run_exactly_one_wins(make_installation):
    site = make_installation()
    [review] = start_runs(site, "document-review", {"title": "Race"}, 1)
    [loop] = start_runs(site, "long-loop", {"rounds": 3}, 1)
    cluster = site.start_cluster()
    site.wait_status(review, "waiting")
    site.wait_status(loop, "completed")
    site.wait_for("the queue to drain", lambda: site.queued_tasks() == 0)
    cluster.kill()  # from here on nothing changes the runs but the clients
    site.shell("from django.contrib.auth import get_user_model\n"
               f"for i in range({CLIENTS}):\n"
               "    get_user_model().objects.create_user(f'client{i}')\n"  # no password: fast
               "print(1)\n")
    users = {row["id"]: row["username"] for row in site.query(
        "SELECT id, username FROM auth_user WHERE username LIKE ?", ("client%",))}

    # respond: one answer is recorded, the others are refused with 409.
    request = open_request(site, review)
    results, errors = race(site, "respond",
                           f"services.respond({request['id']!r}, {{'approved': True}}, user)")
    assert sorted(results) == ["Conflict"] * (CLIENTS - 1) + ["ok"], (results, errors)
    winner = f"client{results.index('ok')}"
    rows = site.query("SELECT status, response, answered_by_id, answered_at, delivered "
                      "FROM workflows_app_pendingrequest WHERE run_id = ?",
                      (uuid.UUID(review).hex,))
    assert len(rows) == 1, rows
    row = rows[0]
    assert row["status"] == "answered" and not row["delivered"], row
    assert json.loads(row["response"])["fields"] == {"approved": True, "comment": ""}, row
    assert users[row["answered_by_id"]] == winner, (row, results)  # the winner's answer
    assert row["answered_at"] is not None
    for result, err in zip(results, errors):  # each loser saw the winner's answer
        assert result == "ok" or f"is answered by {winner}; it cannot" in err, err
    assert site.run(review)["status"] == "queued"
    assert site.queued_tasks() == 1  # the winner's task, enqueued once

    # resume a completed run: one resume is accepted, the others are refused with 409.
    checkpoint = lineage(site, loop)[3]["checkpoint_id"]  # a superstep checkpoint
    before, history = site.run(loop), site.events(loop)
    results, errors = race(site, "resume",
                           f"services.resume_run({loop!r}, {checkpoint!r}, user)")
    assert sorted(results) == ["Conflict"] * (CLIENTS - 1) + ["ok"], (results, errors)
    for result, err in zip(results, errors):  # each loser saw the winner's resume
        assert result == "ok" or "is queued; wait for it or cancel it first" in err, err
    run = site.run(loop)
    assert run["status"] == "queued" and run["head_checkpoint_id"] == checkpoint, run
    assert run["error"] == "" and run["finished_at"] is None
    assert run["attempts"] == before["attempts"]
    assert site.queued_tasks() == 2  # one more task: the winner's
    assert site.events(loop) == history  # nothing recorded by the losers


# --------------------------------------------------------------------------- 4. database outage
OUTAGE_SECONDS = 4


def take_the_database_away(site: Installation, seconds: float) -> None:
    """Make the installation's database unusable for ``seconds``, with runs in flight.

    PostgreSQL: the server is stopped (every connection is cut) and started again, as a
    restart or a fail-over does. SQLite has no server to restart; its outage is another
    process holding the write lock past the workers' busy timeout, so that every commit in
    that window fails with "database is locked"."""
    if site.database_url:
        postgres_cluster("stop", "-m", "fast")
        try:
            time.sleep(seconds)
        finally:
            postgres_cluster("start")
        site.wait_for("PostgreSQL to accept connections", lambda: subprocess.run(
            ["pg_isready", "-q", "-h", "127.0.0.1"]).returncode == 0, timeout=30)
        from django.db import connections
        for connection in connections.all():  # this process's own, cut by the restart
            connection.close()
        return
    import sqlite3

    blocker = sqlite3.connect(site.db_path, timeout=20, isolation_level=None)
    try:
        blocker.execute("BEGIN EXCLUSIVE")
        time.sleep(seconds)
        blocker.execute("ROLLBACK")
    finally:
        blocker.close()


def postgres_cluster(*action: str) -> None:
    """``pg_ctlcluster`` on the local server the suite runs on (scripts/ci-services.sh)."""
    listed = subprocess.run(["pg_lsclusters", "--no-header"], capture_output=True, text=True)
    assert listed.returncode == 0 and listed.stdout.strip(), (
        "the outage test restarts PostgreSQL and needs it local, as scripts/ci-services.sh "
        f"sets it up; pg_lsclusters said: {listed.stderr or listed.stdout!r}")
    version, name = listed.stdout.split()[:2]
    subprocess.run(["pg_ctlcluster", version, name, *action], check=True, timeout=60)


def test_runs_finish_after_the_database_goes_away_and_comes_back(make_installation):
    # A busy timeout (SQLite) shorter than the outage, so commits fail rather than wait.
    site = make_installation(STEPSTONE_SQLITE_TIMEOUT=1)
    runs = start_runs(site, "long-loop", {"rounds": 15, "step_ms": 60}, 4)
    site.start_cluster(workers=2)
    site.start_cluster(workers=2)
    site.wait_for("the runs to be under way", lambda: progress(site, runs)[0] >= 8,
                  timeout=20, interval=0.02)
    done, completed = progress(site, runs)
    assert completed < len(runs), "the runs finished before the outage; make them longer"

    take_the_database_away(site, OUTAGE_SECONDS)
    # The outage hit runs in flight: their tasks failed, and were delivered again.
    logs = "".join(cluster.log_path.read_text(errors="replace") for cluster in site.clusters)
    assert "Failed 'workflows_app.tasks.execute_run'" in logs, site.log_tails()

    for run_id, run in zip(runs, wait_all(site, runs, timeout=90)):
        assert (run["status"], run["error"]) == ("completed", ""), run["error"]
        assert run["outputs"] == [120]  # sum(1..15), as an uninterrupted run yields
        events = assert_unbroken_history(site, run_id)
        keys = Counter((e["type"], e["superstep"], e["executor_id"], json.dumps(e["data"]))
                       for e in events if e["superstep"] is not None)
        assert not [k for k, n in keys.items() if n > 1], "an event was recorded twice"
    # The clusters lived through it: no process had to be started again by hand.
    assert all(cluster.process.poll() is None for cluster in site.clusters), site.log_tails()


# --------------------------------------------------------------------------- 5. corruption
def test_a_corrupted_checkpoint_fails_its_run_only(make_installation):
    site = make_installation()
    reviews = start_runs(site, "document-review", {"title": "Corrupt"}, 3)
    cluster = site.start_cluster()
    for run_id in reviews:
        site.wait_status(run_id, "waiting")
    site.wait_for("the queue to drain", lambda: site.queued_tasks() == 0)
    cluster.kill()
    victim, *others = reviews
    head = site.run(victim)["head_checkpoint_id"]
    # Flip bytes in the stored document, as a bad disk or a hand edit would.
    site.shell("from workflows_app.models import Checkpoint\n"
               f"row = Checkpoint.objects.get(pk={head!r})\n"
               "data = bytearray(row.document)\n"
               "data[len(data) // 2] ^= 0xFF\n"
               f"Checkpoint.objects.filter(pk={head!r}).update(document=bytes(data))\n"
               "print(1)\n")
    for run_id in reviews:
        site.respond(open_request(site, run_id)["id"], {"approved": True})
    site.start_cluster()

    failed = site.wait_status(victim, "failed", "completed")
    assert failed["status"] == "failed", failed
    assert head in failed["error"] and "corrupt" in failed["error"], failed["error"]
    for run_id in others:
        run = site.wait_status(run_id, "completed", "failed")
        assert (run["status"], run["error"]) == ("completed", ""), run["error"]
        assert len(run["outputs"]) == 1
