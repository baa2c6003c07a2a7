"""Load test: hundreds of runs of the shipped workflows through real processes, watched live.

A throw-away installation (``tests/installation.py``: a data folder of its own, or a
PostgreSQL database of its own when ``DATABASE_URL`` is set) is served by ``--web`` daphne
processes and worked by ``--clusters`` qcluster processes of ``--workers`` workers each. Then:

1. websocket clients log in through ``/login/`` and connect with that session and the site's
   Origin: ``--list-clients`` watch ``/ws/runs/`` (every run's status) from the start, and
   ``--run-clients`` runs, spread over the load, are each watched on ``/ws/runs/<id>/?after=0``
   as soon as they are started (``after=0``: events from before the socket opened are
   replayed, so the client must end up with every event of its run);
2. ``--runs`` runs are started through the REST API, ``--start-concurrency`` requests at a
   time, round robin over the web servers, all at once or ``--rate`` a second: long-loop
   (``--rounds``), map-reduce, ticket-router and document-review in equal parts, shuffled;
3. a script plays the human: it approves every open review request through the REST API;
4. once every run has finished (and the clients have had their last messages), it checks
   and measures.

Measured (one machine: workers, web servers, databases and clients share its CPUs):

- ``runs_per_minute``: completed runs / (last run's ``finished_at`` - first run's
  ``created_at``); the reviews' wait for the (scripted) human is included.
- ``superstep_ms``: how long each superstep takes as its run sees it: from the previous
  ``superstep_completed`` event of the run (or the ``started`` event of the worker task, for
  a task's first superstep) to this one's ``superstep_completed`` (``created_at`` of both,
  stamped by the worker). It holds the executors' work, encoding the checkpoint and the
  commits of the previous checkpoints (or restoring the run, for a task's first superstep),
  not a wait for a human; over every superstep of every run.
- ``pickup_ms``: a run's ``created_at`` -> the ``started`` event of its first task: its wait
  in the queue (when all runs are started at once, mostly waiting for a free worker).
- ``ws_event_latency_ms``: arrival at a ``/ws/runs/<id>/`` client (this process's clock)
  minus the ``created_at`` of the event the message carries, for the events created after
  the socket opened. Includes the worker's group commit, its publisher, the channel layer,
  daphne and this client's own event loop.
- ``ws_status_latency_ms``: arrival of a run's final status at a ``/ws/runs/`` client minus
  the run's ``finished_at``.

All latencies: median and p99 (nearest rank). ``errors`` counts, and must all be 0 (the exit
status is 1 otherwise): runs that did not complete or output something else than expected;
REST calls answered with an unexpected status; websocket errors (refused, closed by the
server, an ``error`` message); events missing at, sent twice to or out of ``seq`` order at a
run's client; final statuses missing at or sent twice to a ``/ws/runs/`` client; ERROR,
CRITICAL and Traceback lines and HTTP 5xx answers in the daphne and qcluster logs.
``client_cpu_s`` is this process's own CPU time (its clients' share of the machine).

    .venv/bin/python benchmarks/load.py [--runs 300] [--clusters 2] [--workers 2] [--web 2]
        [--list-clients 4] [--run-clients 30] [--rounds 10] [--start-concurrency 4]
        [--rate RUNS_PER_SECOND]        # or: make load LOAD_ARGS="--runs 600"

    # scale-out configuration (scripts/ci-services.sh start):
    DATABASE_URL=postgres://stepstone:stepstone@127.0.0.1:5432/stepstone \\
    REDIS_URL=redis://127.0.0.1:6379/0 .venv/bin/python benchmarks/load.py

Prints one JSON object. The websocket client is autobahn's, which daphne already depends on.
"""

from __future__ import annotations

import argparse
import asyncio
import http.cookiejar
import itertools
import json
import math
import random
import re
import resource
import shutil
import statistics
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from autobahn.asyncio.websocket import WebSocketClientFactory, WebSocketClientProtocol

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.installation import (DATABASE_URL, PRODUCTION_TIMINGS, REDIS_URL,  # noqa: E402
                                Installation, WebServer)

USERNAME, PASSWORD = "load-operator", "load-pw-7d2e91"
FINAL_STATUSES = ("completed", "failed", "cancelled")
CLUSTER_SETTLE_SECONDS = 3  # let the workers start before the first run does
DRAIN_SECONDS = 15  # how long the clients may take to get their last messages

# --------------------------------------------------------------------------- the workload
TEXT = ("the quick brown fox jumps over the lazy dog\n"
        "the dog sleeps; the fox runs.\n"
        "a checkpoint after every superstep!")
# subject -> (priority, desk, hours), as workflows_app/examples.py routes them
TICKETS = {"The site is down": ("high", "urgent-desk", 1),
           "Refund for invoice 42": ("normal", "billing-desk", 24),
           "A feature idea": ("low", "general-desk", 72)}


def workload(count: int, rounds: int) -> list[tuple[str, Any]]:
    """(workflow, input) of each run to start: the four shipped workflows in equal parts,
    shuffled (seeded) so that any regular sample of runs holds all four."""
    subjects = list(TICKETS)
    plans: list[tuple[str, Any]] = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            plans.append(("long-loop", {"rounds": rounds}))
        elif kind == 1:
            plans.append(("map-reduce", f"load run {i}\n{TEXT}"))
        elif kind == 2:
            subject = subjects[(i // 4) % len(subjects)]
            plans.append(("ticket-router", {"subject": subject, "priority": TICKETS[subject][0]}))
        else:
            plans.append(("document-review", {"title": f"Report {i}"}))
    random.Random(0).shuffle(plans)
    return plans


def expected_output(workflow: str, value: Any) -> Any:
    """The one output a run of ``workflow`` started with ``value`` must have."""
    if workflow == "long-loop":
        return value["rounds"] * (value["rounds"] + 1) // 2
    if workflow == "map-reduce":
        counts = Counter(word.lower().strip(".,;:!?") for word in value.split())
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))
    if workflow == "ticket-router":
        _, desk, hours = TICKETS[value["subject"]]
        return f"{desk} takes '{value['subject']}' (answer within {hours} h)"
    return f"published '{value['title']}' (revision 1)"  # document-review, approved


# --------------------------------------------------------------------------- the installation
def open_installation(data_dir: Path, clusters: int, workers: int, web: int) -> Installation:
    """Bootstrapped, with its workers and web servers running and our login made."""
    installation = Installation(data_dir, **PRODUCTION_TIMINGS)
    try:
        installation.bootstrap()
        installation.create_user(USERNAME, PASSWORD, superuser=True)
        settle_until = time.monotonic() + CLUSTER_SETTLE_SECONDS
        for _ in range(clusters):
            installation.start_cluster(workers=workers)
        for _ in range(web):
            installation.start_web()
        time.sleep(max(0.0, settle_until - time.monotonic()))
    except BaseException:
        installation.close()
        raise
    return installation


def api_token(installation: Installation) -> str:
    return installation.shell(
        "import json\n"
        "from django.contrib.auth import get_user_model\n"
        "from rest_framework.authtoken.models import Token\n"
        f"user = get_user_model().objects.get(username={USERNAME!r})\n"
        "token, _ = Token.objects.get_or_create(user=user)\n"
        "print(json.dumps(token.key))\n")


def session_cookie(server: WebServer) -> str:
    """Log in through the login form, as a browser does; the ``sessionid`` it gets."""
    jar = http.cookiejar.CookieJar()
    browser = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    login = f"{server.url}/login/"
    form = browser.open(login, timeout=10).read().decode()
    csrf = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form)
    if csrf is None:
        raise SystemExit(f"no login form at {login}")
    fields = {"username": USERNAME, "password": PASSWORD, "csrfmiddlewaretoken": csrf.group(1)}
    browser.open(urllib.request.Request(login, data=urllib.parse.urlencode(fields).encode(),
                                        headers={"Referer": login}), timeout=10)
    cookie = next((c.value for c in jar if c.name == "sessionid"), None)
    if not cookie:
        raise SystemExit(f"could not log in as {USERNAME} at {login}")
    return cookie


# A logged error, a traceback, a daphne access line of a 5xx answer, channels-lite's print.
LOG_ERROR = re.compile(r' (ERROR|CRITICAL) |^Traceback|" 5\d\d |^Error in ')


def log_problems(installation: Installation) -> tuple[list[str], int]:
    """The error lines (LOG_ERROR) of every daphne and qcluster log; and how many WARNING
    lines there were."""
    errors, warnings = [], 0
    for group in [*installation.web_servers, *installation.clusters]:
        for line in group.log_path.read_text(errors="replace").splitlines():
            if LOG_ERROR.search(line):
                errors.append(f"{group.log_path.name}: {line.strip()}")
            elif " WARNING " in line:
                warnings += 1
    return errors, warnings


# --------------------------------------------------------------------------- REST API
class Api:
    """The REST API with a token, round robin over the web servers; an unexpected answer is
    noted in ``errors`` (and the call returns None). Called from several threads."""

    def __init__(self, servers: list[WebServer], token: str) -> None:
        self.next_url = itertools.cycle([server.url for server in servers]).__next__
        self.token = token
        self.errors: list[str] = []

    def call(self, method: str, path: str, expected: int, body: Any = None) -> Any:
        request = urllib.request.Request(
            self.next_url() + path, method=method,
            data=None if body is None else json.dumps(body).encode(),
            headers={"Authorization": f"Token {self.token}", "Content-Type": "application/json"})
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                status, text = response.status, response.read()
        except urllib.error.HTTPError as error:
            status, text = error.code, error.read()
        except OSError as error:
            self.errors.append(f"{method} {path}: {error!r}")
            return None
        if status != expected:
            self.errors.append(f"{method} {path}: HTTP {status} {text[:200]!r}")
            return None
        return json.loads(text)

    def start_run(self, workflow: str, value: Any) -> str | None:
        """The new run's id (as the API spells it), or None."""
        run = self.call("POST", f"/api/workflows/{workflow}/runs/", 201, {"input": value})
        return run["id"] if run else None

    def approve_open_requests(self) -> int:
        """Approve the open requests of the first page; how many there were."""
        page = self.call("GET", "/api/requests/?status=open", 200)
        open_requests = page["results"] if page else []
        for request in open_requests:
            self.call("POST", f"/api/requests/{request['id']}/respond/", 200,
                      {"response": {"approved": True}})
        return len(open_requests)


# --------------------------------------------------------------------------- websocket clients
class Watcher:
    """One websocket client: keeps every message it receives with its arrival time."""

    def __init__(self, server: WebServer, path: str, cookie: str) -> None:
        self.url = server.ws_url + path
        self.origin = server.url
        self.cookie = cookie
        self.received: list[tuple[float, dict]] = []  # (time.time() at arrival, message)
        self.errors: list[str] = []
        self.opened_at: float | None = None
        self.protocol: WebSocketClientProtocol | None = None
        self.closing = False

    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        self.opened, self.closed = loop.create_future(), loop.create_future()
        factory = WebSocketClientFactory(self.url, origin=self.origin,
                                         headers={"Cookie": f"sessionid={self.cookie}"})
        factory.protocol = _WatcherProtocol
        factory.watcher = self
        address = urllib.parse.urlsplit(self.url)
        try:
            await loop.create_connection(factory, address.hostname, address.port)
            await asyncio.wait_for(self.opened, 15)
        except (OSError, TimeoutError) as error:  # ConnectionError is an OSError
            self.errors.append(f"{self.url}: could not connect: {error!r}")

    async def close(self) -> None:
        if self.protocol is None or self.closed.done():
            return
        self.closing = True
        self.protocol.sendClose(1000)
        try:
            await asyncio.wait_for(self.closed, 5)
        except TimeoutError:
            self.errors.append(f"{self.url}: no close handshake within 5 s")

    # -- called by the protocol --------------------------------------------------------
    def on_open(self, protocol: WebSocketClientProtocol) -> None:
        self.protocol, self.opened_at = protocol, time.time()
        self.opened.set_result(None)

    def on_message(self, payload: bytes) -> None:
        arrived = time.time()
        message = json.loads(payload)
        self.received.append((arrived, message))
        if message.get("type") == "error":
            self.errors.append(f"{self.url}: error message {message}")

    def on_close(self, code: int | None, reason: str | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(ConnectionError(f"refused: {code} {reason}"))
        elif not self.closing:
            self.errors.append(f"{self.url}: closed by the server: {code} {reason}")
        if not self.closed.done():
            self.closed.set_result(None)

    # -- what arrived --------------------------------------------------------------------
    def events(self) -> list[tuple[float, dict]]:
        """(arrival, event) of every event received (``/ws/runs/<id>/``)."""
        return [(arrived, event) for arrived, message in self.received
                if message.get("type") == "events" for event in message["events"]]

    def final_statuses(self) -> list[tuple[float, str]]:
        """(arrival, run id as hex) of every final status received (``/ws/runs/``)."""
        return [(arrived, uuid.UUID(message["run_id"]).hex) for arrived, message in self.received
                if message.get("type") == "status" and message["status"] in FINAL_STATUSES]


class _WatcherProtocol(WebSocketClientProtocol):
    """Hands autobahn's callbacks on to the ``Watcher`` of the connection."""

    def onOpen(self) -> None:
        self.factory.watcher.on_open(self)

    def onMessage(self, payload: bytes, isBinary: bool) -> None:
        self.factory.watcher.on_message(payload)

    def onClose(self, wasClean: bool, code: int | None, reason: str | None) -> None:
        self.factory.watcher.on_close(code, reason)


# --------------------------------------------------------------------------- the load
class Load:
    """One load test against a running installation: drive it, then read what happened."""

    def __init__(self, installation: Installation, args: argparse.Namespace) -> None:
        self.installation = installation
        self.args = args
        self.servers = installation.web_servers
        self.plans = workload(args.runs, args.rounds)
        self.started: dict[str, tuple[str, Any]] = {}  # run id (hex) -> (workflow, input)
        self.list_watchers: list[Watcher] = []
        self.run_watchers: dict[str, Watcher] = {}  # run id (hex) -> its client

    async def drive(self) -> None:
        cookie = await asyncio.to_thread(session_cookie, self.servers[0])
        self.api = Api(self.servers, await asyncio.to_thread(api_token, self.installation))
        self.list_watchers = [Watcher(self.server(i), "/ws/runs/", cookie)
                              for i in range(self.args.list_clients)]
        await asyncio.gather(*(watcher.connect() for watcher in self.list_watchers))
        done = asyncio.Event()
        human = asyncio.create_task(self.approve_reviews(done))
        await self.start_runs(cookie)
        await self.wait_until_finished()
        done.set()
        await human
        await self.wait_for_clients()
        await asyncio.gather(*(watcher.close() for watcher in self.watchers()))

    def server(self, index: int) -> WebServer:
        return self.servers[index % len(self.servers)]

    def watchers(self) -> list[Watcher]:
        return [*self.list_watchers, *self.run_watchers.values()]

    async def start_runs(self, cookie: str) -> None:
        gate = asyncio.Semaphore(self.args.start_concurrency)
        every = max(1, len(self.plans) // self.args.run_clients) if self.args.run_clients else 0
        began = time.monotonic()

        async def start(index: int, workflow: str, value: Any) -> None:
            if self.args.rate:  # run `index` is due index/rate seconds after the first
                await asyncio.sleep(max(0.0, began + index / self.args.rate - time.monotonic()))
            async with gate:
                run_id = await asyncio.to_thread(self.api.start_run, workflow, value)
            if run_id is None:
                return
            self.started[uuid.UUID(run_id).hex] = (workflow, value)
            if every and index % every == 0 and len(self.run_watchers) < self.args.run_clients:
                watcher = Watcher(self.server(index), f"/ws/runs/{run_id}/?after=0", cookie)
                self.run_watchers[uuid.UUID(run_id).hex] = watcher
                await watcher.connect()

        await asyncio.gather(*(start(i, workflow, value)
                               for i, (workflow, value) in enumerate(self.plans)))

    async def approve_reviews(self, done: asyncio.Event) -> None:
        """The human: approve whatever review waits, until every run has finished."""
        while not done.is_set():
            if not await asyncio.to_thread(self.api.approve_open_requests):
                await asyncio.sleep(0.2)

    async def wait_until_finished(self) -> None:
        """Until no run is queued, running or waiting; or ``--timeout`` (the runs left then
        count as errors)."""
        deadline = time.monotonic() + self.args.timeout
        while time.monotonic() < deadline:
            if not await asyncio.to_thread(self.unfinished_runs):
                return
            await asyncio.sleep(0.25)

    def unfinished_runs(self) -> list[str]:
        marks = ",".join("?" * len(FINAL_STATUSES))
        rows = self.installation.query(
            f"SELECT id FROM workflows_app_run WHERE status NOT IN ({marks})", FINAL_STATUSES)
        return [row["id"] for row in rows]

    async def wait_for_clients(self) -> None:
        """Give the clients up to DRAIN_SECONDS to receive the last events and statuses."""
        expected = await asyncio.to_thread(self.watched_events)
        deadline = time.monotonic() + DRAIN_SECONDS
        while time.monotonic() < deadline:
            if not self.missing_events(expected) and not self.missing_statuses():
                return
            await asyncio.sleep(0.1)

    # -- reading what happened ---------------------------------------------------------------
    def watched_events(self) -> dict[str, set[int]]:
        """run id -> the seqs of its events in the database, for the watched runs."""
        seqs: dict[str, set[int]] = {run_id: set() for run_id in self.run_watchers}
        for row in self.installation.query("SELECT run_id, seq FROM workflows_app_runevent"):
            if row["run_id"] in seqs:
                seqs[row["run_id"]].add(row["seq"])
        return seqs

    def missing_events(self, expected: dict[str, set[int]]) -> int:
        """Events of the watched runs their clients have not received (yet)."""
        return sum(len(expected[run_id] - {event["seq"] for _, event in watcher.events()})
                   for run_id, watcher in self.run_watchers.items())

    def missing_statuses(self) -> int:
        """Final statuses the /ws/runs/ clients have not received (yet)."""
        return sum(len(set(self.started) - {run_id for _, run_id in watcher.final_statuses()})
                   for watcher in self.list_watchers)

    def runs(self) -> dict[str, dict]:
        rows = self.installation.query(
            "SELECT id, status, outputs, error, created_at, finished_at FROM workflows_app_run")
        return {row["id"]: row for row in rows}

    def step_events(self) -> list[dict]:
        """Tasks' ``started`` and ``superstep_completed`` events, in seq order in each run."""
        return self.installation.query(
            "SELECT run_id, seq, type, created_at FROM workflows_app_runevent "
            "WHERE type IN ('started', 'superstep_completed') ORDER BY run_id, seq")


# --------------------------------------------------------------------------- figures
def epoch(value: Any) -> float:
    """Seconds since the epoch of a timestamp as a database or a message gives it (SQLite:
    naive UTC text; PostgreSQL: aware datetime; messages: ISO text with offset)."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.timestamp()


def percentile(values: list[float], fraction: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(fraction * len(ordered)) - 1)]


def summary_ms(seconds: list[float]) -> dict[str, Any]:
    if not seconds:
        return {"median": None, "p99": None, "count": 0}
    return {"median": round(statistics.median(seconds) * 1e3, 1),
            "p99": round(percentile(seconds, 0.99) * 1e3, 1), "count": len(seconds)}


def superstep_and_pickup_times(step_events: list[dict], runs: dict[str, dict],
                               ) -> tuple[list[float], list[float]]:
    """Each superstep's time and each run's pickup latency (see the module docstring)."""
    previous: dict[str, float] = {}  # run -> its task's start or its last superstep's end
    supersteps: list[float] = []
    first_start: dict[str, float] = {}
    for row in step_events:  # in seq order within each run
        run_id, at = row["run_id"], epoch(row["created_at"])
        if row["type"] == "started":
            first_start.setdefault(run_id, at)
        elif run_id in previous:
            supersteps.append(at - previous[run_id])
        previous[run_id] = at
    pickups = [at - epoch(runs[run_id]["created_at"]) for run_id, at in first_start.items()]
    return supersteps, pickups


def run_client_figures(load: Load, expected: dict[str, set[int]]) -> dict[str, Any]:
    latencies: list[float] = []
    counts = Counter()
    for run_id, watcher in load.run_watchers.items():
        seqs = [event["seq"] for _, event in watcher.events()]
        counts["expected"] += len(expected[run_id])
        counts["received"] += len(seqs)
        counts["missing"] += len(expected[run_id] - set(seqs))
        counts["duplicated"] += len(seqs) - len(set(seqs))
        counts["out_of_order"] += sum(1 for a, b in itertools.pairwise(seqs) if b < a)
        latencies += [arrived - epoch(event["created_at"]) for arrived, event in watcher.events()
                      if epoch(event["created_at"]) >= (watcher.opened_at or math.inf)]
    return {"counts": dict(counts), "latencies": latencies}


def list_client_figures(load: Load, runs: dict[str, dict]) -> dict[str, Any]:
    latencies: list[float] = []
    counts = Counter()
    for watcher in load.list_watchers:
        finals = watcher.final_statuses()
        per_run = Counter(run_id for _, run_id in finals)
        counts["expected"] += len(load.started)
        counts["received"] += len(finals)
        counts["missing"] += len(set(load.started) - set(per_run))
        counts["duplicated"] += sum(n - 1 for n in per_run.values())
        latencies += [arrived - epoch(runs[run_id]["finished_at"]) for arrived, run_id in finals
                      if runs.get(run_id, {}).get("finished_at") is not None]
    return {"counts": dict(counts), "latencies": latencies}


def wrong_runs(load: Load, runs: dict[str, dict]) -> Counter[str]:
    """What went wrong with the runs that did not complete with the expected output, and
    with how many runs (the same failure of many runs is one entry)."""
    wrong: Counter[str] = Counter()
    for run_id, (workflow, value) in load.started.items():
        run = runs[run_id]
        if run["status"] != "completed":
            first_line = run["error"].strip().split("\n")[0]
            wrong[f"{workflow} runs {run['status']}: {first_line}".strip()] += 1
            continue
        outputs = json.loads(run["outputs"]) if isinstance(run["outputs"], str) else run["outputs"]
        if outputs != [expected_output(workflow, value)]:
            wrong[f"{workflow} runs output {outputs!r}"] += 1
    return wrong


def configuration() -> str:
    database = "PostgreSQL" if DATABASE_URL else "SQLite"
    layer = "Redis" if REDIS_URL else "SQLite"
    name = {("PostgreSQL", "Redis"): "scale-out: ", ("SQLite", "SQLite"): "embedded: "}
    return f"{name.get((database, layer), '')}{database} + {layer} channel layer"


def report(load: Load, args: argparse.Namespace) -> dict[str, Any]:
    installation = load.installation
    runs = load.runs()
    supersteps, pickups = superstep_and_pickup_times(load.step_events(), runs)
    run_clients = run_client_figures(load, load.watched_events())
    list_clients = list_client_figures(load, runs)
    log_errors, log_warnings = log_problems(installation)
    wrong = wrong_runs(load, runs)
    ws_errors = [error for watcher in load.watchers() for error in watcher.errors]
    usage = resource.getrusage(resource.RUSAGE_SELF)  # this process: the clients, the checks
    completed = [run for run in runs.values() if run["status"] == "completed"]
    first = min((epoch(run["created_at"]) for run in runs.values()), default=0.0)
    last = max((epoch(run["finished_at"]) for run in completed), default=first)
    errors = {
        "runs_not_completed_or_wrong": sum(wrong.values()),
        "api": len(load.api.errors),
        "websocket": len(ws_errors),
        "events_missing": run_clients["counts"].get("missing", 0),
        "events_duplicated": run_clients["counts"].get("duplicated", 0),
        "events_out_of_order": run_clients["counts"].get("out_of_order", 0),
        "statuses_missing": list_clients["counts"].get("missing", 0),
        "statuses_duplicated": list_clients["counts"].get("duplicated", 0),
        "log_errors": len(log_errors),
    }
    return {
        "benchmark": "load",
        "configuration": configuration(),
        "clusters": args.clusters, "workers_per_cluster": args.workers,
        "web_servers": args.web,
        "ws_clients": {"runs_list": len(load.list_watchers), "single_run": len(load.run_watchers)},
        "runs_started": len(load.started),
        "runs_completed": len(completed),
        "runs_by_workflow": dict(Counter(workflow for workflow, _ in load.started.values())),
        "long_loop_rounds": args.rounds,
        "start_rate_per_s": args.rate or "all at once",
        "wall_s": round(last - first, 2),
        "runs_per_minute": round(len(completed) / (last - first) * 60, 1) if last > first else None,
        "superstep_ms": summary_ms(supersteps),
        "pickup_ms": summary_ms(pickups),
        "ws_event_latency_ms": summary_ms(run_clients["latencies"]),
        "ws_status_latency_ms": summary_ms(list_clients["latencies"]),
        "ws_events": run_clients["counts"],
        "ws_final_statuses": list_clients["counts"],
        "log_warnings": log_warnings,
        "client_cpu_s": round(usage.ru_utime + usage.ru_stime, 1),
        "errors": errors,
        "errors_total": sum(errors.values()),
        "error_samples": ([f"{n}x {what}" for what, n in wrong.most_common()]
                          + load.api.errors + ws_errors + log_errors)[:10],
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=300)
    parser.add_argument("--clusters", type=int, default=2, help="qcluster processes")
    parser.add_argument("--workers", type=int, default=2, help="workers per qcluster")
    parser.add_argument("--web", type=int, default=2, help="daphne processes")
    parser.add_argument("--list-clients", type=int, default=4, help="clients of /ws/runs/")
    parser.add_argument("--run-clients", type=int, default=30,
                        help="runs watched each by a client of /ws/runs/<id>/")
    parser.add_argument("--rounds", type=int, default=10, help="long-loop rounds")
    parser.add_argument("--start-concurrency", type=int, default=4,
                        help="REST requests starting runs at a time")
    parser.add_argument("--rate", type=float, default=0,
                        help="runs started a second (default: all at once)")
    parser.add_argument("--timeout", type=float, default=600,
                        help="seconds for all runs to finish")
    parser.add_argument("--keep", action="store_true", help="keep the data folder (logs)")
    args = parser.parse_args()

    data_dir = Path(tempfile.mkdtemp(prefix="stepstone-load-"))
    installation = open_installation(data_dir, args.clusters, args.workers, args.web)
    try:
        load = Load(installation, args)
        asyncio.run(load.drive())
        result = report(load, args)
    except BaseException:
        print(installation.log_tails(30), file=sys.stderr)
        raise
    finally:
        installation.close()
        if args.keep:
            print(f"data folder kept: {data_dir}", file=sys.stderr)
        else:
            shutil.rmtree(data_dir, ignore_errors=True)
    print(json.dumps(result, indent=2))
    sys.exit(1 if result["errors_total"] else 0)


if __name__ == "__main__":
    main()
