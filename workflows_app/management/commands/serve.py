"""``manage.py serve``: the whole product in one terminal, as ``make run`` starts it.

It makes the installation usable (``bootstrap``: migrations, the first login, the address
to open), then runs daphne (the site) and one django-q2 cluster (the workers) under
honcho's process manager: each in a process group of its own, their output interleaved
with a prefix. Ctrl-C, or SIGTERM to this process, stops both: honcho sends SIGTERM to
both groups and SIGKILL to whatever is left of them 5 seconds later, so nothing outlives
the stop, however daphne's open websockets or a long handler behave. A worker hands the run
it executes over at its next checkpoint (``worker.shutdown``): the run is queued, and the
next start continues it. When either process exits, the other is stopped too.

Only one ``serve`` runs per data folder: it holds an exclusive lock on ``serve.lock`` there
for as long as any of its processes lives, and a second one refuses to start (naming the
first), instead of starting a second cluster beside it.
"""

from __future__ import annotations

import fcntl
import os
import shlex
import sys
from pathlib import Path
from typing import IO

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError
from honcho.manager import Manager
from honcho.printer import Printer

ROOT = Path(__file__).resolve().parents[3]  # where manage.py is
STOP_SIGNALS_RC = (130, 143)  # honcho's return code after SIGINT, SIGTERM


def hold_lock(path: Path) -> IO[str]:
    """Lock ``path`` for this process (and the children it forks) or refuse, naming the
    holder. The lock is released when the last of them exits, even killed."""
    handle = open(path, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise CommandError(
            f"Stepstone is already running from {path.parent} ({holder}); stop it first "
            f"(Ctrl-C in its terminal, or kill the pid) instead of starting a second "
            f"cluster beside it.") from None
    handle.seek(0)
    handle.truncate()
    handle.write(f"manage.py serve, pid {os.getpid()}\n")
    handle.flush()
    return handle


class Command(BaseCommand):
    help = ("Migrate, create the first login, and serve the site (daphne) with its workers "
            "(qcluster) until Ctrl-C.")

    def add_arguments(self, parser):
        parser.add_argument("--host", default="127.0.0.1", help="address daphne listens on")
        parser.add_argument("--port", type=int, default=8000, help="port daphne listens on")

    def handle(self, *args, host: str, port: int, **options):
        lock = hold_lock(Path(settings.DATA_DIR) / "serve.lock")
        try:
            shown = f"[{host}]" if ":" in host else host
            call_command("bootstrap", url=f"http://{shown}:{port}/", stdout=self.stdout)
            self.stdout.write("Ctrl-C stops the site and its workers.")
            returncode = self.run_processes(host, port)
        finally:
            lock.close()
        if returncode in STOP_SIGNALS_RC:
            self.stdout.write("Stepstone stopped.")
            return
        raise CommandError(f"a process of Stepstone exited (status {returncode}); "
                           f"both are stopped")

    def run_processes(self, host: str, port: int) -> int:
        """Run daphne and qcluster under honcho until a signal or either's exit."""
        python = sys.executable
        daphne = str(Path(python).with_name("daphne"))
        env = {**os.environ, "PYTHONUNBUFFERED": "1",
               "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE",
                                                        "stepstone.settings")}
        manager = Manager(Printer(sys.stdout, colour=sys.stdout.isatty()))
        # exec: the group's leader is the process itself, not a shell waiting for it.
        manager.add_process("web", "exec " + shlex.join(
            [daphne, "-b", host, "-p", str(port), "stepstone.asgi:application"]),
            env=env, cwd=str(ROOT))
        manager.add_process("worker", "exec " + shlex.join(
            [python, str(ROOT / "manage.py"), "runworkers"]), env=env, cwd=str(ROOT))
        manager.loop()
        return manager.returncode
