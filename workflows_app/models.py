"""Stepstone's records: registered workflows, runs, their checkpoints, requests and events,
and the operator actions taken on them.

Rows are written only by ``workflows_app.services``, the run lifecycle (``lifecycle.py``) and
the worker (``worker/``). Checkpoint rows are immutable once written; events and actions are
append-only. Reads shared by several entry points are queryset methods (``querysets.py``).
"""

from __future__ import annotations

import uuid
from typing import Any, Mapping

from django.conf import settings
from django.db import models

from .diffs import diff_documents
from .querysets import (CheckpointQuerySet, PendingRequestQuerySet, RunEventQuerySet,
                        RunQuerySet)
from .states import ActionKind, CheckpointKind, RequestStatus, RunStatus


class RegisteredWorkflow(models.Model):
    """A workflow definition registered in code (``registry``), as last synced to the
    database. (The engine's ``Workflow`` is the runnable object a definition builds.)"""

    name = models.SlugField(max_length=100, unique=True)
    title = models.CharField(max_length=200)
    description = models.TextField(blank=True)
    graph = models.JSONField(default=dict, help_text="executors and edge groups, for diagrams")
    graph_signature_hash = models.CharField(max_length=64)
    input_schema = models.JSONField(default=dict, blank=True)
    is_registered = models.BooleanField(default=True, help_text="still defined in code")
    synced_at = models.DateTimeField(auto_now=True)

    class Meta:
        db_table = "workflows_app_workflow"
        ordering = ["name"]
        verbose_name = "workflow"

    def __str__(self) -> str:
        return self.title or self.name


# The SPEC's name for the model, kept for code written against it; Stepstone's own code says
# RegisteredWorkflow, so it never meets the engine's Workflow in one module.
Workflow = RegisteredWorkflow


class Run(models.Model):
    """One execution of a workflow, possibly rehydrated from another run's checkpoint."""

    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    workflow = models.ForeignKey(RegisteredWorkflow, on_delete=models.PROTECT,
                                 related_name="runs")
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    input = models.JSONField(null=True, blank=True, help_text="encoded input message")
    outputs = models.JSONField(default=list, blank=True, help_text="encoded outputs, in order")
    error = models.TextField(blank=True)
    current_superstep = models.PositiveIntegerField(default=0)
    branch = models.PositiveIntegerField(
        default=0, help_text="the branch the run is on: 0 until its first resume, which "
                             "starts branch 1 (see RunBranch)")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                   on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)
    parent_run = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                   related_name="rehydrated_runs")
    source_checkpoint = models.ForeignKey("Checkpoint", null=True, blank=True,
                                          on_delete=models.SET_NULL, related_name="+",
                                          help_text="checkpoint this run was rehydrated from")
    # Rewritten at every checkpoint: no index to maintain (nothing looks runs up by it).
    head_checkpoint = models.ForeignKey(
        "Checkpoint", null=True, blank=True, db_index=False, on_delete=models.SET_NULL,
        related_name="+",
        help_text="where the run continues: its newest checkpoint, or the one it was resumed "
                  "or rehydrated from; empty: it starts from its input")
    cancel_requested = models.BooleanField(default=False)
    lease_owner = models.CharField(max_length=100, blank=True)
    lease_expires_at = models.DateTimeField(null=True, blank=True)
    attempts = models.PositiveIntegerField(default=0, help_text="executions started")

    objects = RunQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        permissions = [("operate_run", "Can start, resume, rehydrate and cancel runs")]
        indexes = [
            models.Index(fields=["status", "-created_at"], name="run_status_created"),
            models.Index(fields=["workflow", "-created_at"], name="run_workflow_created"),
        ]

    def __str__(self) -> str:
        return f"{self.workflow.name} {str(self.id)[:8]}"


class Checkpoint(models.Model):
    """One engine checkpoint. ``document`` holds the run's record at this checkpoint (the
    engine's checkpoint document and the run's outputs so far) as compact, compressed JSON
    (``row_bytes``): whole when ``base`` is empty, else as a delta against ``base``, an earlier
    row of the same run (see ``checkpoint_rows.py``). Never modified once written."""

    checkpoint_id = models.CharField(max_length=64, primary_key=True)
    # Indexed by (run, created_at) below; a second index on run alone would only cost writes.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="checkpoints",
                            db_index=False)
    workflow_name = models.CharField(max_length=100)
    superstep = models.PositiveIntegerField()
    branch = models.PositiveIntegerField(default=0, help_text="the run's branch it was written on")
    kind = models.CharField(max_length=16, choices=CheckpointKind.choices)
    previous = models.ForeignKey("self", null=True, blank=True, on_delete=models.SET_NULL,
                                 related_name="next_checkpoints", db_constraint=False)
    graph_signature_hash = models.CharField(max_length=64)
    # RESTRICT: a row later rows are stored against cannot go on its own (deleting the whole
    # run, which cascades to both, is allowed).
    base = models.ForeignKey("self", null=True, blank=True, on_delete=models.RESTRICT,
                             related_name="deltas",
                             help_text="the row this one is a delta against; empty: stored whole")
    chain_position = models.PositiveIntegerField(
        default=0, help_text="position in its writer's skip-delta chain (0: stored whole)")
    document = models.BinaryField(
        help_text="the run's record as compact JSON (whole, or a delta against base), "
                  "compressed")
    size_bytes = models.PositiveIntegerField(help_text="bytes stored (compressed)")
    json_bytes = models.PositiveIntegerField(default=0, help_text="bytes of the stored JSON")
    content_hash = models.CharField(max_length=64, help_text="sha256 of the stored bytes")
    pending_request_count = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField()

    objects = CheckpointQuerySet.as_manager()
    _record: dict[str, Any] | None = None  # see record()

    class Meta:
        ordering = ["created_at"]
        indexes = [
            models.Index(fields=["run", "created_at"], name="checkpoint_run_created"),
            models.Index(fields=["workflow_name", "created_at"], name="checkpoint_wf_created"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} @ superstep {self.superstep} ({self.checkpoint_id[:8]})"

    def record(self) -> dict[str, Any]:
        """The run's record at this checkpoint, ``{"checkpoint": ..., "outputs": [...]}``,
        its deltas applied; raises ``WorkflowCheckpointError`` naming a corrupt row. Read
        once per instance (rows never change): a page showing a checkpoint and its diff
        reads its chain once. Callers must not modify what it returns."""
        if self._record is None:
            self._record = Checkpoint.objects.read_record(self.checkpoint_id)
        return self._record

    def decoded(self) -> dict[str, Any]:
        """The engine's checkpoint document as JSON natives (type tags left in place);
        raises ``WorkflowCheckpointError`` naming a corrupt row."""
        return self.record()["checkpoint"]

    def previous_checkpoint(self) -> "Checkpoint | None":
        """The checkpoint this one follows in its lineage (None for the first, or when it
        lives in another installation, for an imported one)."""
        if self.previous_id is None:
            return None
        return Checkpoint.objects.filter(pk=self.previous_id).first()

    def diff_to(self, other: "Checkpoint | None") -> list[dict[str, Any]]:
        """What changed from ``other`` to this checkpoint (``diffs.diff_documents``; with no
        ``other``, everything is new); raises ``WorkflowCheckpointError`` naming a corrupt
        row."""
        return diff_documents(other.decoded() if other is not None else None, self.decoded())


class PendingRequest(models.Model):
    """A request a run made with ``ctx.request_info``, and its answer once given."""

    # Our own key: the engine's request id is only unique within a run's lineage, and a
    # rehydrated run re-emits its source checkpoint's requests under the same ids.
    id = models.UUIDField(primary_key=True, default=uuid.uuid4, editable=False)
    request_id = models.CharField(max_length=100, help_text="the engine's request id")
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="requests")
    source_executor_id = models.CharField(max_length=100)
    request_data = models.JSONField(null=True, help_text="encoded request payload")
    response_type = models.JSONField(help_text="encoded type reference")
    response_schema = models.JSONField(default=dict, help_text="JSON schema of the response")
    status = models.CharField(max_length=16, choices=RequestStatus.choices,
                              default=RequestStatus.OPEN)
    response = models.JSONField(null=True, blank=True, help_text="encoded response")
    delivered = models.BooleanField(default=False, help_text="the run has taken the response")
    answered_by = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                                    on_delete=models.SET_NULL, related_name="+")
    answered_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    objects = PendingRequestQuerySet.as_manager()

    class Meta:
        ordering = ["-created_at"]
        permissions = [("answer_request", "Can answer requests")]
        indexes = [models.Index(fields=["status", "-created_at"], name="request_status_created")]
        constraints = [models.UniqueConstraint(fields=["run", "request_id"],
                                               name="pendingrequest_run_request")]

    def __str__(self) -> str:
        return f"request {self.request_id[:8]} from {self.source_executor_id}"


class RunEvent(models.Model):
    """One engine event of a run. Append-only; ``seq`` orders a run's events from 1."""

    # The unique (run, seq) index serves lookups by run; no separate index on run.
    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="events", db_index=False)
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=40)
    superstep = models.PositiveIntegerField(null=True, blank=True)
    branch = models.PositiveIntegerField(default=0, help_text="the run's branch it happened on")
    executor_id = models.CharField(max_length=100, blank=True)
    data = models.JSONField(null=True, blank=True)
    created_at = models.DateTimeField()

    objects = RunEventQuerySet.as_manager()

    # An event as pages and websockets receive it (``record_of``), and the columns it needs.
    RECORD_FIELDS = ("seq", "type", "superstep", "branch", "executor_id", "data", "created_at")

    class Meta:
        ordering = ["run", "seq"]
        constraints = [models.UniqueConstraint(fields=["run", "seq"], name="runevent_run_seq")]
        # The run page's superstep timeline and "jump to superstep" read by superstep.
        indexes = [models.Index(fields=["run", "superstep"], name="runevent_run_superstep")]

    def __str__(self) -> str:
        return f"#{self.seq} {self.type}"

    @staticmethod
    def record_of(row: Mapping[str, Any]) -> dict[str, Any]:
        """An event's record from its column values (a ``values()`` row, a row the worker
        is about to insert, or an instance's ``__dict__``)."""
        return {"seq": row["seq"], "type": row["type"], "superstep": row["superstep"],
                "branch": row["branch"], "executor_id": row["executor_id"], "data": row["data"],
                "created_at": row["created_at"].isoformat()}

    def record(self) -> dict[str, Any]:
        return self.record_of(self.__dict__)


class RunBranch(models.Model):
    """A line of a run's history that a resume started. A run begins on branch 0; resuming
    it from a checkpoint starts branch ``run.branch + 1``, which continues from that
    checkpoint: its ``parent`` branch is kept up to the checkpoint (events up to
    ``kept_seq``, checkpoints up to ``kept_until``), and the parent's later work is
    abandoned (still stored and viewable). ``branches.RunLine`` reads a branch's whole line.
    Written once, by ``lifecycle.resume``."""

    run = models.ForeignKey(Run, on_delete=models.CASCADE, related_name="branches")
    number = models.PositiveIntegerField()
    parent = models.PositiveIntegerField(help_text="the branch it continues from")
    from_checkpoint_id = models.CharField(max_length=64,
                                          help_text="the checkpoint it was resumed from")
    from_superstep = models.PositiveIntegerField()
    kept_seq = models.PositiveIntegerField(
        help_text="the parent's events up to this seq belong to this branch's line")
    kept_until = models.DateTimeField(
        help_text="the parent's checkpoints up to this time belong to this branch's line")
    first_seq = models.PositiveIntegerField(help_text="its own events have a seq above this")
    action = models.ForeignKey("OperatorAction", null=True, blank=True,
                               on_delete=models.SET_NULL, related_name="+",
                               help_text="the resume that started it")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["run", "number"]
        constraints = [models.UniqueConstraint(fields=["run", "number"],
                                               name="runbranch_run_number")]

    def __str__(self) -> str:
        return f"branch {self.number} of {self.run_id}"


class OperatorAction(models.Model):
    """Something a person (or, with no ``user``, the system: a scheduled sweep, a command)
    did to runs: start, resume, rehydrate, cancel, answer, import, prune. Append-only: the
    activity trail pages and the admin show."""

    kind = models.CharField(max_length=16, choices=ActionKind.choices)
    user = models.ForeignKey(settings.AUTH_USER_MODEL, null=True, blank=True,
                             on_delete=models.SET_NULL, related_name="+")
    # The user's name as it was: the trail stays readable if the account is deleted.
    username = models.CharField(max_length=150, blank=True)
    run = models.ForeignKey(Run, null=True, blank=True, on_delete=models.CASCADE,
                            related_name="actions")
    # Text, not a foreign key: the trail outlives the checkpoints retention deletes.
    checkpoint_id = models.CharField(max_length=64, blank=True)
    request = models.ForeignKey(PendingRequest, null=True, blank=True,
                                on_delete=models.SET_NULL, related_name="actions")
    detail = models.JSONField(default=dict, blank=True,
                              help_text="what the action took or changed, e.g. the answer")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["run", "-created_at"], name="action_run_created"),
                   models.Index(fields=["kind", "-created_at"], name="action_kind_created")]

    def __str__(self) -> str:
        return f"{self.get_kind_display()} by {self.username or 'the system'}"
