"""Executing runs inside django-q2 workers, one task at a time (``RunExecution``).

The pieces, each with one job:

- ``execution``: a task's whole part of a run: claim it, drive the engine, finish;
- ``lease``: the worker's hold on the run, which fences every write of the task;
- ``event_log``: engine events numbered and shaped into ``RunEvent`` rows;
- ``run_record``: the checkpoint storage the engine writes through: checkpoints staged as
  rows with the run's outputs so far, and the restore of a run's record;
- ``request_log``: requests the run raises, and the answers a task delivers;
- ``commits``: checkpoints, their events and requests, committed together in one
  transaction, fast supersteps grouped.
"""

from .execution import RunExecution

__all__ = ["RunExecution"]
