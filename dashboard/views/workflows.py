"""The workflows page: every registered workflow, its graph, and a form to start a run;
and each workflow's start page, where a start that failed is shown again.

Starting follows post/redirect/get both ways: a started run redirects to its page, a
refused start to the workflow's start page (a GET), which shows the input as it was typed,
each problem on its field and a summary of them at the top. The attempt travels in the
session and is shown once, so reloading either page never posts the form again.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.datastructures import MultiValueDict
from django.views.decorators.http import require_http_methods

from workflows_app import permissions, registry, services
from workflows_app.models import RegisteredWorkflow
from workflows_app.schemas import InvalidValue, Problem, coerce_any

from ..access import require
from ..diagram import layout
from ..forms import StartRunForm

ATTEMPT_KEY = "stepstone.start-attempt.{name}"  # session key of a refused start, shown once


def start_form(workflow: RegisteredWorkflow, data: Any = None) -> StartRunForm:
    # Ids unique per workflow: the workflows page shows every workflow's form.
    return StartRunForm(workflow.input_schema, data, auto_id=f"start-{workflow.name}-%s")


def _item(workflow: RegisteredWorkflow, form: StartRunForm | None = None) -> dict[str, Any]:
    input_types = workflow.graph.get("input_types", []) if isinstance(workflow.graph, dict) else []
    return {"workflow": workflow, "form": form or start_form(workflow),
            "diagram": layout(workflow.graph), "input_types": input_types}


@login_required
def workflows(request):
    """Every registered workflow: its graph and a form to start a run."""
    require(request, permissions.can_view)
    items = [_item(w) for w in RegisteredWorkflow.objects.filter(is_registered=True)]
    return render(request, "dashboard/workflows.html", {"items": items})


@login_required
@require_http_methods(["GET", "POST"])
def start_run(request, name: str):
    """GET: the workflow's start page (with the last refused attempt, once). POST: start a
    run and go to its page, or keep the attempt and go back to the start page."""
    workflow = get_object_or_404(RegisteredWorkflow, name=name, is_registered=True)
    if request.method == "POST":
        return _start(request, workflow)
    require(request, permissions.can_view)
    attempt = request.session.pop(ATTEMPT_KEY.format(name=name), None)
    form = start_form(workflow)
    if attempt is not None:
        form = start_form(workflow, MultiValueDict(attempt["data"]))
        if form.is_valid():  # the refusal was the service's: show it as it was
            form.add_problems([Problem(tuple(path), message)
                               for path, message in attempt["problems"]])
            for message in attempt["errors"]:
                form.add_error(None, message)
    return render(request, "dashboard/workflow_start.html", {
        "item": _item(workflow, form), "form": form})


def _start(request, workflow: RegisteredWorkflow):
    require(request, permissions.can_operate)
    form = start_form(workflow, request.POST)
    problems: list[Problem] = []
    errors: list[str] = []
    if form.is_valid():
        value = form.value()
        try:
            run = services.start_run(workflow.name, value, request.user)
        except services.InvalidInput as error:
            problems = _input_problems(workflow.name, value)
            errors = [] if problems else [str(error)]
        except services.ServiceError as error:
            errors = [str(error)]
        else:
            return redirect("dashboard:run", run_id=run.pk)
    request.session[ATTEMPT_KEY.format(name=workflow.name)] = {
        "data": {key: request.POST.getlist(key) for key in request.POST
                 if key != "csrfmiddlewaretoken"},
        "problems": [[list(p.path), p.message] for p in problems], "errors": errors}
    return redirect("dashboard:start-run", name=workflow.name)


def _input_problems(name: str, value: Any) -> list[Problem]:
    """The input's problems field by field, as the service found them (it refused the
    input with one message naming them all); none when the refusal was about something
    else than its type."""
    try:
        coerce_any(value, registry.get_definition(name).build().input_types, what="input")
    except InvalidValue as invalid:
        return invalid.problems
    except registry.UnknownWorkflow:
        return []
    return []
