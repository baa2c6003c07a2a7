"""A run's branches and the line of history each stands on.

A run starts on branch 0. Resuming it from a checkpoint starts a new branch (``RunBranch``)
that continues from there; the work of the checkpoint's branch after the checkpoint is
abandoned, still stored and viewable. A branch's *line* is its own checkpoints and events
and, before them, its parent's up to the checkpoint it was resumed from, and so on back to
branch 0: the history as it stands for that branch, which the run page shows.

Events of one branch have consecutive ``seq`` numbers: a run is resumed only while no worker
runs it, so a branch's events are all written after the previous branch's. That makes a line's
event count arithmetic (``RunLine.event_count``) instead of a scan of the run's history.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Callable

from django.db.models import Q, QuerySet

from .models import Checkpoint, Run, RunBranch, RunEvent


@dataclass(frozen=True)
class LinePiece:
    """The part of one branch on a line: its events up to ``upto_seq`` and checkpoints up to
    ``upto_time`` (None: all of them, for the line's own branch), above ``first_seq``."""

    branch: int
    first_seq: int
    upto_seq: int | None
    upto_time: datetime | None
    upto_superstep: int | None = None  # the checkpoint's superstep the line left it at


class RunLine:
    """The line of branch ``number`` of ``run`` (the run's current branch by default)."""

    def __init__(self, run: Run, number: int | None = None,
                 branches: list[RunBranch] | None = None, upto_seq: int | None = None) -> None:
        """``upto_seq``: read the line's events only up to that ``seq``, so that everything
        a page shows is one snapshot (events committed meanwhile come over its socket)."""
        self.run = run
        self.upto_seq = upto_seq
        if branches is None:
            # A run still on branch 0 was never resumed: it has no branch rows to read.
            branches = list(run.branches.select_related("action")) if run.branch else []
        self.branches = {b.number: b for b in branches}
        self.number = run.branch if number is None else number
        if self.number != 0 and self.number not in self.branches:
            raise LookupError(f"run {run.pk} has no branch {self.number}")
        self.pieces = self._pieces()

    def _pieces(self) -> list[LinePiece]:
        pieces, number, upto = [], self.number, (None, None, None)
        while True:
            branch = self.branches.get(number)
            pieces.append(LinePiece(number, branch.first_seq if branch else 0, *upto))
            if branch is None:  # branch 0, where every line starts
                return pieces
            number = branch.parent
            upto = (branch.kept_seq, branch.kept_until, branch.from_superstep)

    @property
    def is_current(self) -> bool:
        return self.number == self.run.branch

    @property
    def branch(self) -> RunBranch | None:
        """This line's own branch record (None for branch 0)."""
        return self.branches.get(self.number)

    def events(self) -> "QuerySet[RunEvent]":
        """The line's events (unordered; the (run, seq) and (run, superstep) indexes serve
        the windows the run page reads)."""
        events = RunEvent.objects.filter(self._where(
            lambda piece: None if piece.upto_seq is None else Q(seq__lte=piece.upto_seq)),
            run_id=self.run.pk)
        return events if self.upto_seq is None else events.filter(seq__lte=self.upto_seq)

    def checkpoints(self) -> "QuerySet[Checkpoint]":
        """The line's checkpoints (unordered)."""
        return Checkpoint.objects.filter(self._where(lambda piece: None if piece.upto_time is None
                                                     else Q(created_at__lte=piece.upto_time)),
                                         run_id=self.run.pk)

    def _where(self, upto: Callable[[LinePiece], Q | None]) -> Q:
        """Rows of the line's branches, each branch's cut at ``upto(piece)`` (None: whole)."""
        where = Q()
        for piece in self.pieces:
            bound = upto(piece)
            where |= Q(branch=piece.branch) & bound if bound is not None else Q(
                branch=piece.branch)
        return where

    def event_count(self, last_seq: int) -> int:
        """How many events the line has, ``last_seq`` being the run's newest ``seq``: each
        branch's events run from its ``first_seq`` to where the next branch's begin."""
        total = 0
        for piece in self.pieces:
            upto = piece.upto_seq
            if upto is None:
                following = self.branches.get(piece.branch + 1)
                upto = following.first_seq if following else last_seq
            total += max(upto - piece.first_seq, 0)
        return total

    def left_at(self) -> int | None:
        """Where the run's current line leaves this line's branch: the superstep of the
        checkpoint it was resumed from (None if this is the current branch or no part of
        the current line, its own work all abandoned)."""
        if self.is_current:
            return None
        current = RunLine(self.run, branches=list(self.branches.values()))
        return next((piece.upto_superstep for piece in current.pieces
                     if piece.branch == self.number), None)

    def summaries(self, newest: int = 10) -> list[dict[str, Any]]:
        """The run's ``newest`` branches, newest first, as the run page lists them: each
        with its record (None for branch 0), whether it is the run's current branch, the one
        shown, or abandoned (not on the current branch's line: no longer where the run
        goes)."""
        current = self if self.is_current else RunLine(self.run, branches=list(
            self.branches.values()))
        kept = {piece.branch for piece in current.pieces}
        numbers = sorted([0, *self.branches], reverse=True)[:newest]
        return [{"number": number, "branch": self.branches.get(number),
                 "current": number == self.run.branch, "shown": number == self.number,
                 "abandoned": number not in kept} for number in numbers]
