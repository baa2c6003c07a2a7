"""A checkpoint's page (its state and what changed) and its export as a portable file."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, render

from workflows_app import permissions, services
from workflows_app.engine import WorkflowCheckpointError
from workflows_app.models import Checkpoint

from ..access import require


@login_required
def checkpoint_detail(request, checkpoint_id: str):
    """A checkpoint's decoded state and what changed since the previous one."""
    require(request, permissions.can_view)
    checkpoint = get_object_or_404(Checkpoint.objects.select_related("run__workflow"),
                                   pk=checkpoint_id)
    previous = checkpoint.previous_checkpoint()
    try:
        document = checkpoint.decoded()
        changes = checkpoint.diff_to(previous)
        problem = ""
    except WorkflowCheckpointError as error:  # names the corrupt row
        document, changes, problem = {}, [], str(error)
    sections = [(name, json.dumps(document.get(key), indent=2, ensure_ascii=False))
                for name, key in (("Executor states", "executor_states"),
                                  ("Pending messages", "messages"),
                                  ("Shared state", "shared_state"),
                                  ("Pending requests", "pending_requests"),
                                  ("Fan-in buffers", "fan_in_buffers"))]
    return render(request, "dashboard/checkpoint.html", {
        "checkpoint": checkpoint, "previous": previous, "sections": sections,
        "changes": [{**c, "before_json": json.dumps(c.get("before"), ensure_ascii=False),
                     "after_json": json.dumps(c.get("after"), ensure_ascii=False)}
                    for c in changes],
        "next_checkpoints": Checkpoint.objects.filter(previous_id=checkpoint.pk),
        "problem": problem})


@login_required
def checkpoint_export(request, checkpoint_id: str):
    """Download a checkpoint as a portable JSON document (``import_checkpoint`` reads it)."""
    require(request, permissions.can_view)
    try:
        document = services.export_checkpoint(checkpoint_id)
    except services.NotFound as error:
        raise Http404(str(error)) from None
    response = HttpResponse(json.dumps(document, indent=2), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="checkpoint-{checkpoint_id}.json"'
    return response
