"""The workflows page: every registered workflow, its graph, and a form to start a run."""

from __future__ import annotations

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.views.decorators.http import require_POST

from workflows_app import permissions, services
from workflows_app.models import RegisteredWorkflow

from ..access import require
from ..diagram import layout
from ..forms import StartRunForm, example_input


@login_required
def workflows(request, bound: dict[str, StartRunForm] | None = None, status: int = 200):
    """Every registered workflow: its graph and a form to start a run."""
    require(request, permissions.can_view)
    items = []
    for workflow in RegisteredWorkflow.objects.filter(is_registered=True):
        form = (bound or {}).get(workflow.name) or StartRunForm(
            workflow.input_schema, initial={"input": example_input(workflow.input_schema)})
        items.append({"workflow": workflow, "form": form, "diagram": layout(workflow.graph)})
    return render(request, "dashboard/workflows.html", {"items": items}, status=status)


@login_required
@require_POST
def start_run(request, name: str):
    require(request, permissions.can_operate)
    workflow = get_object_or_404(RegisteredWorkflow, name=name, is_registered=True)
    form = StartRunForm(workflow.input_schema, request.POST)
    if form.is_valid():
        try:
            run = services.start_run(name, form.value(), request.user)
        except services.ServiceError as error:
            form.add_error("input", str(error))
        except Exception as error:  # form.value() refusing text that is not JSON
            form.add_error("input", "; ".join(getattr(error, "messages", [str(error)])))
        else:
            return redirect("dashboard:run", run_id=run.pk)
    return workflows(request, bound={name: form}, status=400)
