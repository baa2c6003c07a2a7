"""The runs list: every run, newest first, filterable by status and workflow."""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.shortcuts import render

from workflows_app import permissions
from workflows_app.models import RegisteredWorkflow, Run
from workflows_app.states import RunStatus

from ..access import require

RUNS_PER_PAGE = 50


@login_required
def runs(request):
    """All runs, newest first, filterable by status and workflow; statuses update live."""
    require(request, permissions.can_view)
    return render(request, "dashboard/runs.html", _runs_context(request))


@login_required
def runs_table(request):
    """The runs table alone, for the page to refresh when a run it does not show appears."""
    require(request, permissions.can_view)
    return render(request, "dashboard/_runs_table.html", _runs_context(request))


def _runs_context(request) -> dict[str, Any]:
    status, workflow = request.GET.get("status", ""), request.GET.get("workflow", "")
    page = Paginator(Run.objects.filter_by(status=status, workflow=workflow),
                     RUNS_PER_PAGE).get_page(request.GET.get("page"))
    return {"page": page, "runs": page.object_list, "status": status, "workflow": workflow,
            "statuses": RunStatus.choices,
            "workflows": RegisteredWorkflow.objects.filter(is_registered=True)}
