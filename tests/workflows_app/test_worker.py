"""End-to-end: runs executed by real ``manage.py qcluster`` processes on the embedded stack.

Every test gets installations of its own (temporary data directory, ``manage.py bootstrap``)
and drives them only from outside: management commands run as subprocesses, and the SQLite
file opened read-only. Nothing here uses the test process's own Django database. Clusters
run with short leases and task timeouts (see ``tests/installation.py``) so that recovery
and slicing happen within seconds.
"""

from __future__ import annotations

import json
from collections import Counter


from tests.installation import Installation

TEXT = "the cat sat\nthe dog ran\nA cat"
WORDS = {"cat": 2, "the": 2, "a": 1, "dog": 1, "ran": 1, "sat": 1}


# --------------------------------------------------------------------------- checks
def assert_contiguous(events: list[dict]) -> None:
    seqs = [event["seq"] for event in events]
    assert seqs == list(range(1, len(seqs) + 1)), f"event seqs are not 1..n: {seqs}"


def lineage(installation: Installation, run_id: str) -> list[dict]:
    """The run's checkpoints from its head back to the first, checked for breaks."""
    run = installation.run(run_id)
    rows = installation.checkpoints(run_id)
    chain = []
    current = rows.get(run["head_checkpoint_id"])
    assert current is not None, f"head checkpoint {run['head_checkpoint_id']} is not stored"
    while current is not None:
        assert len(chain) <= len(rows), "the lineage has a cycle"
        chain.append(current)
        previous = current["previous_id"]
        current = rows.get(previous) if previous else None
        assert previous is None or current is not None, f"lineage broken at {previous}"
    return chain


def assert_unbroken_history(installation: Installation, run_id: str) -> list[dict]:
    """Events 1..n, an unbroken lineage to the entry checkpoint, and exactly one
    ``superstep_completed`` event per superstep checkpoint of that lineage; returns events."""
    events = installation.events(run_id)
    assert_contiguous(events)
    chain = lineage(installation, run_id)
    entry = chain[-1]
    assert (entry["kind"], entry["superstep"], entry["previous_id"]) == ("entry", 0, None), entry
    steps = [row["superstep"] for row in chain if row["kind"] == "superstep"]
    assert steps == list(range(len(steps), 0, -1)), f"superstep lineage has gaps: {steps}"
    # Nothing was written off the lineage: one writer at a time, always from the head.
    orphans = set(installation.checkpoints(run_id)) - {row["checkpoint_id"] for row in chain}
    assert not orphans, f"checkpoints outside the lineage: {orphans}"

    completed = [e for e in events if e["type"] == "superstep_completed"]
    numbers = Counter(e["superstep"] for e in completed)
    duplicated = {n: c for n, c in numbers.items() if c > 1}
    assert not duplicated, f"superstep_completed recorded more than once: {duplicated}"
    assert sorted(numbers) == sorted(steps)
    by_checkpoint = {e["data"]["checkpoint_id"]: e["superstep"] for e in completed}
    assert by_checkpoint == {row["checkpoint_id"]: row["superstep"]
                             for row in chain if row["kind"] == "superstep"}
    return events


def open_request(installation: Installation, run_id: str) -> dict:
    requests = [r for r in installation.requests(run_id) if r["status"] == "open"]
    assert len(requests) == 1, f"expected one open request, got {installation.requests(run_id)}"
    return requests[0]


def execute_run_tasks(installation: Installation) -> int:
    return installation.query("SELECT COUNT(*) AS n FROM django_q_task "
                              "WHERE func = 'workflows_app.tasks.execute_run'")[0]["n"]


def task_results(installation: Installation) -> list[str]:
    return installation.shell(
        "import json\n"
        "from django_q.models import Task\n"
        "print(json.dumps([str(t.result) for t in Task.objects.filter("
        "func='workflows_app.tasks.execute_run').order_by('started')]))\n")


# --------------------------------------------------------------------------- 1. runs finish
def test_example_workflows_run_to_their_end_in_a_real_cluster(make_installation):
    site = make_installation()
    loop = site.start_run("long-loop", {"rounds": 15})
    words = site.start_run("map-reduce", TEXT)
    ticket = site.start_run("ticket-router", {"subject": "refund my invoice", "priority": "normal"})
    review = site.start_run("document-review", {"title": "Quarterly report"})
    site.start_cluster()

    run = site.wait_status(loop, "completed", "failed")
    assert (run["status"], run["error"]) == ("completed", ""), run["error"]
    assert run["outputs"] == [120]
    assert_unbroken_history(site, loop)

    assert site.wait_status(words, "completed", "failed")["outputs"] == [WORDS]
    assert site.wait_status(ticket, "completed", "failed")["outputs"] == [
        "billing-desk takes 'refund my invoice' (answer within 24 h)"]

    run = site.wait_status(review, "waiting", "completed", "failed")
    assert run["status"] == "waiting" and run["outputs"] == []
    request = open_request(site, review)
    assert site.respond(request["id"], {"approved": True}) == {
        "request_id": request["request_id"], "status": "answered"}
    run = site.wait_status(review, "completed", "failed", "waiting")
    assert run["status"] == "completed", run
    assert run["outputs"] == ["published 'Quarterly report' (revision 1)"]
    events = assert_unbroken_history(site, review)
    assert [e["data"]["request_id"] for e in events if e["type"] == "request_info"] == [
        request["request_id"]]
    assert site.requests(review)[0]["delivered"] == 1

    listed = {row["id"]: row for row in site.list_runs()}
    assert {listed[r]["status"] for r in (loop, words, ticket, review)} == {"completed"}
    assert listed[loop]["outputs"] == [120]


# --------------------------------------------------------------------------- 2. kill -9
def test_a_run_survives_its_worker_being_killed(make_installation):
    site = make_installation()
    run_id = site.start_run("long-loop", {"rounds": 30, "step_ms": 150})
    first = site.start_cluster()
    site.wait_for("superstep 10", lambda: (site.run(run_id)["current_superstep"] or 0) >= 10)
    first.kill()
    killed_at = site.run(run_id)
    assert killed_at["status"] in ("running", "queued"), killed_at
    assert killed_at["current_superstep"] < 60

    site.start_cluster()
    run = site.wait_status(run_id, "completed", "failed", timeout=45)
    assert (run["status"], run["error"]) == ("completed", ""), run["error"]
    assert run["outputs"] == [465]  # what an uninterrupted run yields: sum(1..30)
    assert run["attempts"] >= 2, "the run was never taken over after the kill"
    assert run["current_superstep"] == 60
    events = assert_unbroken_history(site, run_id)
    assert [e["data"] for e in events if e["type"] == "output"] == [465]
    assert sorted(e["superstep"] for e in events if e["type"] == "superstep_completed") == list(
        range(1, 61))


# --------------------------------------------------------------------------- 3. duplicates
def test_a_task_delivered_twice_runs_nothing_twice(make_installation):
    # No slicing here: one execution must carry the whole run.
    site = make_installation(STEPSTONE_TASK_TIMEOUT=60, STEPSTONE_TASK_SLICE=30,
                             STEPSTONE_TASK_RETRY=90)
    run_id = site.start_run("long-loop", {"rounds": 10, "step_ms": 60})
    site.enqueue(run_id)  # the same run's task, a second time
    assert site.queued_tasks() == 2
    site.start_cluster(workers=2)  # both copies are fetched at once

    run = site.wait_status(run_id, "completed", "failed")
    assert (run["status"], run["outputs"]) == ("completed", [55])
    site.wait_for("both tasks to be processed",
                  lambda: execute_run_tasks(site) == 2 and site.queued_tasks() == 0)
    run = site.run(run_id)
    assert run["attempts"] == 1, "the duplicate task executed the run again"
    events = assert_unbroken_history(site, run_id)
    assert [e["type"] for e in events].count("started") == 1
    assert len(lineage(site, run_id)) == 21  # entry + 20 supersteps, written once

    # Once more, after completion: nothing changes.
    site.enqueue(run_id)
    site.wait_for("the late task to be processed",
                  lambda: execute_run_tasks(site) == 3 and site.queued_tasks() == 0)
    after = site.run(run_id)
    assert (after["status"], after["attempts"], after["outputs"]) == ("completed", 1, [55])
    assert site.events(run_id) == events
    assert len(site.checkpoints(run_id)) == 21
    results = task_results(site)
    assert len(results) == 3
    assert sum(r.startswith("skipped") for r in results) == 2, results


# --------------------------------------------------------------------------- 4. export/import
def test_an_exported_checkpoint_continues_in_another_installation(make_installation, tmp_path):
    source = make_installation("a")
    review = source.start_run("document-review", {"title": "Move"})
    source.start_cluster()
    head = source.wait_status(review, "waiting", "failed")["head_checkpoint_id"]
    request = open_request(source, review)
    exported = tmp_path / "checkpoint.json"
    source.manage("export_checkpoint", head, "--output", str(exported))
    source.close()
    document = json.loads(exported.read_text())
    assert document["workflow"] == "document-review"
    assert list(document["checkpoint"]["pending_requests"]) == [request["request_id"]]

    target = make_installation("b")
    out = target.manage("import_checkpoint", str(exported)).stdout
    imported = out.strip().splitlines()[-1]
    run = target.run(imported)
    assert run["status"] == "waiting" and run["head_checkpoint_id"] == head
    imported_request = open_request(target, imported)
    assert imported_request["request_id"] == request["request_id"]
    assert [row["id"] for row in target.list_runs()] == [imported]

    target.start_cluster()
    target.respond(imported_request["id"], {"approved": True})
    run = target.wait_status(imported, "completed", "failed", "waiting")
    assert run["status"] == "completed", run
    assert run["outputs"] == ["published 'Move' (revision 1)"]
    assert_contiguous(target.events(imported))
    chain = lineage(target, imported)
    assert chain[-1]["checkpoint_id"] == head and chain[-1]["previous_id"] is None

    # Rehydrate a new run from the imported checkpoint: it waits on the same request.
    rehydrated = target.rehydrate(imported, head)
    run = target.wait_status(rehydrated, "waiting", "completed", "failed")
    assert run["status"] == "waiting", run
    assert run["parent_run_id"] == imported.replace("-", "")
    assert run["source_checkpoint_id"] == head
    assert run["head_checkpoint_id"] == head  # nothing ran: it waits at the checkpoint
    waiting_on = open_request(target, rehydrated)
    assert waiting_on["request_id"] == request["request_id"]  # the checkpoint's request
    assert target.run(imported)["status"] == "completed"

    # Answering the rehydrated run's request continues it from the imported checkpoint.
    target.respond(waiting_on["id"], {"approved": True})
    run = target.wait_status(rehydrated, "completed", "failed")
    assert (run["status"], run["error"]) == ("completed", ""), run["error"]
    assert run["outputs"] == ["published 'Move' (revision 1)"]
    assert_contiguous(target.events(rehydrated))


def test_a_rehydrated_run_does_not_take_over_its_parents_requests(make_installation):
    site = make_installation()
    review = site.start_run("document-review", {"title": "Fork"})
    site.start_cluster()
    head = site.wait_status(review, "waiting", "failed")["head_checkpoint_id"]
    request = open_request(site, review)

    fork = site.rehydrate(review, head)
    assert site.wait_status(fork, "waiting", "failed", "completed")["status"] == "waiting"
    assert open_request(site, fork)
    assert open_request(site, review)["request_id"] == request["request_id"]


# --------------------------------------------------------------------------- 5. slicing
def test_a_long_run_is_carried_by_several_slices(make_installation):
    site = make_installation(STEPSTONE_TASK_SLICE=1)
    run_id = site.start_run("long-loop", {"rounds": 60, "step_ms": 50})  # 3 s of ticks
    site.start_cluster()
    run = site.wait_status(run_id, "completed", "failed", timeout=45)
    assert (run["status"], run["error"]) == ("completed", ""), run["error"]
    assert run["outputs"] == [1830]
    assert run["attempts"] >= 3, f"expected several slices, got {run['attempts']} execution(s)"
    events = assert_unbroken_history(site, run_id)
    # Each slice restored the head checkpoint and announced it, and each but the last
    # stopped at a checkpoint, saying why (a task that lost the run to another, had that
    # happened, would have recorded nothing).
    types = [e["type"] for e in events]
    assert 3 <= types.count("started") <= run["attempts"]
    assert types.count("stopped") == types.count("started") - 1
    assert not {"failed", "executor_failed"} & set(types)
    assert sorted(e["superstep"] for e in events if e["type"] == "superstep_completed") == list(
        range(1, 121))
    assert execute_run_tasks(site) >= 3
