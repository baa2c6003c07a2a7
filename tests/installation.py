"""A throw-away Stepstone installation driven from outside, for end-to-end tests.

Each ``Installation`` has its own data directory (SQLite files, secret key), is set up with
``manage.py bootstrap`` and runs real ``manage.py qcluster`` processes. The test process never
touches the installation through Django: it runs management commands as subprocesses and
reads the database directly: the SQLite file read-only with the ``sqlite3`` module on the
embedded default; with ``DATABASE_URL`` set (the scale-out configuration), each installation
gets a fresh PostgreSQL database of its own on that server (dropped by ``close``), read with
``psycopg``, and ``REDIS_URL`` is passed on to its processes.

Clusters are started in a session of their own, so a whole cluster (guard, pusher, monitor and
workers) can be SIGKILLed at once through its process group; ``close`` kills every cluster the
installation started and waits until none of their processes is left.

``start_web`` serves the installation with a real ``daphne`` on a free loopback port (HTTP and
websockets, as ``make run`` does), for browser tests; ``close`` kills it too. ``operator`` is
the login ``bootstrap`` created (a superuser) and ``create_user`` makes more.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable
from contextlib import closing
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
MANAGE = ROOT / "manage.py"
PYTHON = sys.executable
DAPHNE = str(Path(PYTHON).with_name("daphne"))  # the venv's daphne, beside its python

# Short timings so leases expire and tasks are redelivered within seconds.
FAST_TIMINGS = {
    "STEPSTONE_LEASE_SECONDS": "2",
    "STEPSTONE_HEARTBEAT_SECONDS": "0.5",
    "STEPSTONE_TASK_TIMEOUT": "4",
    "STEPSTONE_TASK_SLICE": "2",
    "STEPSTONE_TASK_RETRY": "6",  # must exceed the timeout
}

# The defaults of a real deployment, for benchmarks that measure it (FAST_TIMINGS above are
# overridden with these).
PRODUCTION_TIMINGS = {
    "STEPSTONE_LEASE_SECONDS": "5",
    "STEPSTONE_HEARTBEAT_SECONDS": str(5 / 6),
    "STEPSTONE_TASK_TIMEOUT": "600",
    "STEPSTONE_TASK_SLICE": "300",
    "STEPSTONE_TASK_RETRY": "660",
    "DJANGO_LOG_LEVEL": "WARNING",
}

_STRIPPED = ("DATABASE_URL", "REDIS_URL", "DJANGO_SECRET_KEY")  # set per installation below
# The scale-out configuration under test, if any (see the module docstring).
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
REDIS_URL = os.environ.get("REDIS_URL", "").strip()


def _pg_connect(url: str, **kwargs):
    import psycopg
    from psycopg.types.string import TextLoader

    connection = psycopg.connect(url, **kwargs)
    # Rows as the sqlite3 module gives them: JSON as text (callers decode it).
    for name in ("json", "jsonb"):
        connection.adapters.register_loader(name, TextLoader)
    return connection


def _with_database(url: str, name: str) -> str:
    parts = urllib.parse.urlsplit(url)
    return urllib.parse.urlunsplit(parts._replace(path="/" + name))


def _create_pg_database() -> str:
    """A fresh, empty database on DATABASE_URL's server; returns its URL."""
    name = f"stepstone_it_{uuid.uuid4().hex[:12]}"
    with closing(_pg_connect(DATABASE_URL, autocommit=True)) as db:
        db.execute(f'CREATE DATABASE "{name}"')
    return _with_database(DATABASE_URL, name)


def _drop_pg_database(url: str, attempts: int = 40) -> None:
    """Drop the database, whoever is still connected. FORCE may not end a backend of another
    role (an autovacuum worker that just started on it, owned by the server's superuser):
    PostgreSQL then refuses for a moment, so try again until that backend is gone."""
    import psycopg
    name = urllib.parse.urlsplit(url).path.lstrip("/")
    for attempt in range(attempts):
        try:
            with closing(_pg_connect(DATABASE_URL, autocommit=True)) as db:
                db.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            return
        except (psycopg.errors.InsufficientPrivilege, psycopg.errors.ObjectInUse):
            if attempt == attempts - 1:
                raise
            time.sleep(0.25)


def _database_errors() -> tuple[type[Exception], ...]:
    if not DATABASE_URL:
        return (sqlite3.OperationalError,)
    import psycopg
    return (sqlite3.OperationalError, psycopg.OperationalError)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ProcessGroup:
    """A process started in a session of its own (so its children die with it), logging to
    a file."""

    what = "process"

    def __init__(self, process: subprocess.Popen, log_path: Path) -> None:
        self.process = process
        self.log_path = log_path
        self.killed = False

    @property
    def pgid(self) -> int:
        return self.process.pid  # start_new_session: the leader's pid is the group id

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def kill(self, timeout: float = 10) -> None:
        """SIGKILL the whole process group and wait until it is gone."""
        if self.killed:
            return
        try:
            os.killpg(self.pgid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:  # pragma: no cover - SIGKILL cannot be ignored
            pass
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:  # orphaned children are reaped by init
            try:
                os.killpg(self.pgid, 0)
            except ProcessLookupError:
                self.killed = True
                return
            except PermissionError:  # pragma: no cover - the group id was reused
                self.killed = True
                return
            time.sleep(0.02)
        raise RuntimeError(f"{self.what} process group {self.pgid} survived SIGKILL")


class Cluster(ProcessGroup):
    """One ``manage.py qcluster`` process group."""

    what = "qcluster"


class WebServer(ProcessGroup):
    """One ``daphne`` process serving the installation on ``url`` (HTTP and websockets)."""

    what = "daphne"

    def __init__(self, process: subprocess.Popen, log_path: Path, port: int) -> None:
        super().__init__(process, log_path)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"

    def wait_ready(self, path: str = "/login/", timeout: float = 30) -> None:
        """Wait until ``path`` answers over HTTP (any status but a server error)."""
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"daphne exited with {self.process.returncode} before "
                                     f"answering\n{self.log_tail()}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=2) as response:
                    if response.status < 500:
                        return
                    last = response.status
            except urllib.error.HTTPError as error:  # 4xx still means it is serving
                if error.code < 500:
                    return
                last = error
            except OSError as error:  # not listening yet
                last = error
            time.sleep(0.1)
        raise AssertionError(f"daphne did not answer {self.url}{path} within {timeout}s "
                             f"(last: {last!r})\n{self.log_tail()}")


class Installation:
    """A Stepstone installation in ``data_dir`` (see the module docstring)."""

    def __init__(self, data_dir: Path, **settings: Any) -> None:
        self.data_dir = Path(data_dir)
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.db_path = self.data_dir / "stepstone.sqlite3"
        env = {k: v for k, v in os.environ.items() if k not in _STRIPPED}
        env.update({
            "STEPSTONE_DATA_DIR": str(self.data_dir),
            "DJANGO_SETTINGS_MODULE": "stepstone.settings",
            "DJANGO_LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            "PYTHONDONTWRITEBYTECODE": "1",
        })
        env.update(FAST_TIMINGS)
        self.database_url = _create_pg_database() if DATABASE_URL else None
        if self.database_url:
            env["DATABASE_URL"] = self.database_url
        if REDIS_URL:
            env["REDIS_URL"] = REDIS_URL
        env.update({key: str(value) for key, value in settings.items()})
        self.env = env
        self.clusters: list[Cluster] = []
        self.web_servers: list[WebServer] = []
        self.operator: tuple[str, str] | None = None  # (username, password) from bootstrap

    # -- processes ------------------------------------------------------------------------
    def manage(self, *args: str, check: bool = True, timeout: float = 60,
               ) -> subprocess.CompletedProcess:
        result = subprocess.run([PYTHON, str(MANAGE), *args], cwd=ROOT, env=self.env,
                                capture_output=True, text=True, timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(
                f"manage.py {' '.join(args)} exited with {result.returncode}\n"
                f"stdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}")
        return result

    def bootstrap(self) -> Installation:
        out = self.manage("bootstrap").stdout
        found = re.search(r"Log in as '([^']+)' with password: (\S+)", out)
        if found:  # printed on the first bootstrap only
            self.operator = (found.group(1), found.group(2))
        return self

    def start_cluster(self, workers: int = 2) -> Cluster:
        log_path = self.data_dir / f"qcluster-{len(self.clusters) + 1}.log"
        env = dict(self.env, STEPSTONE_WORKERS=str(workers))
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [PYTHON, str(MANAGE), "qcluster"], cwd=ROOT, env=env, stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        cluster = Cluster(process, log_path)
        self.clusters.append(cluster)
        return cluster

    def start_web(self, port: int | None = None, wait: bool = True) -> WebServer:
        """Serve this installation with ``daphne`` on 127.0.0.1 (a free port unless given);
        with ``wait``, return once HTTP answers."""
        port = port or free_port()
        log_path = self.data_dir / f"daphne-{len(self.web_servers) + 1}.log"
        env = dict(self.env,
                   DJANGO_ALLOWED_HOSTS="127.0.0.1,localhost",
                   DJANGO_CSRF_TRUSTED_ORIGINS=f"http://127.0.0.1:{port},http://localhost:{port}")
        with open(log_path, "wb") as log:
            process = subprocess.Popen(
                [DAPHNE, "-b", "127.0.0.1", "-p", str(port), "stepstone.asgi:application"],
                cwd=ROOT, env=env, stdin=subprocess.DEVNULL, stdout=log,
                stderr=subprocess.STDOUT, start_new_session=True)
        server = WebServer(process, log_path, port)
        self.web_servers.append(server)
        if wait:
            server.wait_ready()
        return server

    def close(self) -> None:
        """Kill every cluster and web server of this installation (fixture teardown) and
        drop its PostgreSQL database, if it has one."""
        errors = []
        for group in [*self.web_servers, *self.clusters]:
            try:
                group.kill()
            except RuntimeError as error:  # pragma: no cover
                errors.append(str(error))
        if self.database_url and not errors:
            _drop_pg_database(self.database_url)
            self.database_url = None
        if errors:  # pragma: no cover
            raise RuntimeError("; ".join(errors))

    def log_tails(self, lines: int = 40) -> str:
        groups = [*self.clusters, *self.web_servers]
        if not groups:
            return "(no qcluster was started)"
        return "\n".join(f"--- {g.log_path.name} (pid {g.process.pid}, "
                         f"exit {g.process.poll()}) ---\n{g.log_tail(lines)}"
                         for g in groups)

    # -- commands -------------------------------------------------------------------------
    def start_run(self, workflow: str, input_value: Any) -> str:
        out = self.manage("start_run", workflow, "--input", json.dumps(input_value)).stdout
        return str(uuid.UUID(out.strip().splitlines()[-1]))

    def shell(self, code: str) -> Any:
        """Run ``code`` in ``manage.py shell``; it prints one JSON value as its last line."""
        out = self.manage("shell", "-c", code).stdout
        lines = [line for line in out.splitlines() if line.strip()]
        if not lines:
            raise AssertionError(f"shell snippet printed nothing:\n{code}")
        return json.loads(lines[-1])

    def create_user(self, username: str, password: str, superuser: bool = False,
                    permissions: tuple[str, ...] = ()) -> None:
        """A login; ``permissions`` are ``app_label.codename`` strings."""
        self.shell(
            "import json\n"
            "from django.contrib.auth import get_user_model\n"
            "from django.contrib.auth.models import Permission\n"
            "User = get_user_model()\n"
            f"make = User.objects.create_superuser if {superuser!r} else User.objects.create_user\n"
            f"user = make({username!r}, password={password!r})\n"
            f"for perm in {list(permissions)!r}:\n"
            "    app, codename = perm.split('.', 1)\n"
            "    user.user_permissions.add(Permission.objects.get(\n"
            "        content_type__app_label=app, codename=codename))\n"
            "print(json.dumps(user.pk))\n")

    def enqueue(self, run_id: str) -> None:
        self.manage("shell", "-c",
                    f"from workflows_app.task_queue import enqueue_run; enqueue_run({run_id!r})")

    def respond(self, request_id: str, response: Any) -> dict:
        return self.shell(
            "import json\n"
            "from workflows_app import services\n"
            f"r = services.respond({request_id!r}, json.loads({json.dumps(response)!r}))\n"
            "print(json.dumps({'request_id': r.request_id, 'status': r.status}))\n")

    def rehydrate(self, run_id: str, checkpoint_id: str) -> str:
        return self.shell(
            "import json\n"
            "from workflows_app import services\n"
            f"r = services.rehydrate_run({run_id!r}, {checkpoint_id!r})\n"
            "print(json.dumps(str(r.pk)))\n")

    def list_runs(self) -> list[dict]:
        out = self.manage("list_runs", "--json", "--limit", "1000").stdout
        return [json.loads(line) for line in out.splitlines() if line.strip()]

    # -- read-only inspection ----------------------------------------------------------------
    def query(self, sql: str, params: tuple = ()) -> list[dict]:
        """Rows of ``sql`` (``?`` placeholders) as dicts of what ``sqlite3`` returns: uuids as
        hex, JSON as text, on either database."""
        if self.database_url:
            return self._pg_query(sql, params)
        uri = f"file:{self.db_path}?mode=ro"
        with closing(sqlite3.connect(uri, uri=True, timeout=20)) as db:
            db.row_factory = sqlite3.Row
            return [dict(row) for row in db.execute(sql, params)]

    def _pg_query(self, sql: str, params: tuple) -> list[dict]:
        from psycopg.rows import dict_row

        with closing(_pg_connect(self.database_url, autocommit=True,
                                 row_factory=dict_row)) as db:
            rows = db.execute(sql.replace("?", "%s"), params).fetchall()
        return [{k: v.hex if isinstance(v, uuid.UUID) else v for k, v in row.items()}
                for row in rows]

    def run(self, run_id: str) -> dict | None:
        rows = self.query("SELECT * FROM workflows_app_run WHERE id = ?", (uuid.UUID(run_id).hex,))
        if not rows:
            return None
        row = rows[0]
        for key in ("input", "outputs"):
            row[key] = json.loads(row[key]) if row[key] is not None else None
        return row

    def events(self, run_id: str) -> list[dict]:
        rows = self.query("SELECT seq, type, superstep, executor_id, data "
                          "FROM workflows_app_runevent WHERE run_id = ? ORDER BY seq",
                          (uuid.UUID(run_id).hex,))
        for row in rows:
            row["data"] = json.loads(row["data"]) if row["data"] is not None else None
        return rows

    def checkpoints(self, run_id: str) -> dict[str, dict]:
        rows = self.query("SELECT checkpoint_id, superstep, kind, previous_id, "
                          "pending_request_count FROM workflows_app_checkpoint WHERE run_id = ?",
                          (uuid.UUID(run_id).hex,))
        return {row["checkpoint_id"]: row for row in rows}

    def requests(self, run_id: str | None = None) -> list[dict]:
        sql = ("SELECT id, request_id, run_id, status, delivered, response "
               "FROM workflows_app_pendingrequest")
        params: tuple = ()
        if run_id is not None:
            sql += " WHERE run_id = ?"
            params = (uuid.UUID(run_id).hex,)
        rows = self.query(sql + " ORDER BY created_at", params)
        for row in rows:
            row["response"] = json.loads(row["response"]) if row["response"] is not None else None
        return rows

    def queued_tasks(self) -> int:
        return self.query("SELECT COUNT(*) AS n FROM django_q_ormq")[0]["n"]

    # -- waiting --------------------------------------------------------------------------
    def wait_for(self, what: str, probe: Callable[[], Any], timeout: float = 30,
                 interval: float = 0.05) -> Any:
        """Poll ``probe`` until it returns something truthy; fail with the cluster logs."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while True:
            try:
                last = probe()
            except _database_errors() as error:  # e.g. busy during a checkpoint
                last = error
            else:
                if last:
                    return last
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out after {timeout}s waiting for {what}; "
                                     f"last probe: {last!r}\n{self.log_tails()}")
            time.sleep(interval)

    def wait_status(self, run_id: str, *statuses: str, timeout: float = 30) -> dict:
        def probe():
            run = self.run(run_id)
            return run if run is not None and run["status"] in statuses else None
        try:
            return self.wait_for(f"run {run_id} to be {'/'.join(statuses)}", probe, timeout)
        except AssertionError as error:
            run = self.run(run_id)
            raise AssertionError(f"{error}\nrun now: status={run and run['status']} "
                                 f"superstep={run and run['current_superstep']} "
                                 f"error={run and run['error']!r}") from None
