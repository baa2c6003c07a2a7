"""``manage.py runworkers``: a django-q2 cluster, as ``qcluster`` starts it, that a SIGTERM
stops at once.

A process runner (honcho under ``manage.py serve``, systemd, a container runtime) stops a
service with SIGTERM, often to every process of its group. django-q2's own processes do not
agree on it: the guard process dies at once, and ``qcluster``'s main process then waits
forever for it to acknowledge the stop, until the runner kills it. Here, when the main
process leads a process group of its own (as a runner starts it), SIGTERM to it is SIGTERM
to every process of the group: django-q2's processes end at once, and a worker that executes
a run first hands it over at its next checkpoint (``worker.shutdown``). SIGINT (Ctrl-C)
keeps django-q2's own stop, which lets the workers end their tasks; Stepstone's workers
hand their runs over then, too.
"""

from __future__ import annotations

import os
import signal

from django.core.management.base import BaseCommand
from django_q.cluster import Cluster


def _terminate_group(signum: int, frame: object) -> None:
    """SIGTERM in the main process: every process of the cluster gets it, this one too."""
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.killpg(os.getpgrp(), signal.SIGTERM)


class Command(BaseCommand):
    help = "Start the django-q2 cluster that executes runs; SIGTERM stops it at once."

    def handle(self, *args, **options):
        cluster = Cluster()  # installs django-q2's handlers for SIGTERM and SIGINT
        # Only a process that leads its own group may signal the group; one that shares
        # its runner's group keeps django-q2's stop (the workers end their tasks first).
        if os.getpgrp() == os.getpid():
            signal.signal(signal.SIGTERM, _terminate_group)
        cluster.start()
