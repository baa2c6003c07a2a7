"""Dashboard pages. Every page needs a logged-in user with the view permission; actions need
the operate or approve permission (``workflows_app.permissions``) and go through
``workflows_app.services``."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core.exceptions import PermissionDenied
from django.core.paginator import Paginator
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from workflows_app import permissions, services
from workflows_app.engine import WorkflowCheckpointError
from workflows_app.models import Checkpoint, PendingRequest, RegisteredWorkflow, Run
from workflows_app.states import ActionKind, RunStatus

from .diagram import layout
from .forms import ResponseForm, StartRunForm, example_input

RUN_PARTS = ("header", "requests", "checkpoints", "outputs", "history")
HISTORY_SHOWN = 20  # newest operator actions on a run page; the admin lists them all


def _require(request, check) -> None:
    if not check(request.user):
        raise PermissionDenied("your account may not do this")


# --------------------------------------------------------------------------- runs
@login_required
def runs(request):
    """All runs, newest first, filterable by status and workflow; statuses update live."""
    _require(request, permissions.can_view)
    return render(request, "dashboard/runs.html", _runs_context(request))


@login_required
def runs_table(request):
    """The runs table alone, for the page to refresh when a run it does not show appears."""
    _require(request, permissions.can_view)
    return render(request, "dashboard/_runs_table.html", _runs_context(request))


def _runs_context(request) -> dict[str, Any]:
    status, workflow = request.GET.get("status", ""), request.GET.get("workflow", "")
    page = Paginator(Run.objects.filter_by(status=status, workflow=workflow), 50).get_page(
        request.GET.get("page"))
    return {"page": page, "runs": page.object_list, "status": status, "workflow": workflow,
            "statuses": RunStatus.choices,
            "workflows": RegisteredWorkflow.objects.filter(is_registered=True)}


# --------------------------------------------------------------------------- workflows
@login_required
def workflows(request, bound: dict[str, StartRunForm] | None = None, status: int = 200):
    """Every registered workflow: its graph and a form to start a run."""
    _require(request, permissions.can_view)
    items = []
    for workflow in RegisteredWorkflow.objects.filter(is_registered=True):
        form = (bound or {}).get(workflow.name) or StartRunForm(
            workflow.input_schema, initial={"input": example_input(workflow.input_schema)})
        items.append({"workflow": workflow, "form": form, "diagram": layout(workflow.graph)})
    return render(request, "dashboard/workflows.html", {"items": items}, status=status)


@login_required
@require_POST
def start_run(request, name: str):
    _require(request, permissions.can_operate)
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


# --------------------------------------------------------------------------- one run
def _get_run(run_id) -> Run:
    return get_object_or_404(Run.objects.select_related(
        "workflow", "created_by", "parent_run__workflow", "source_checkpoint"), pk=run_id)


def _run_context(request, run: Run, bound: dict | None = None) -> dict[str, Any]:
    open_requests = list(run.requests.open().order_by("created_at"))
    checkpoints = list(run.checkpoints.order_by("created_at").only(
        "checkpoint_id", "superstep", "kind", "created_at", "size_bytes", "json_bytes",
        "pending_request_count", "previous_id"))
    last_seq = run.events.order_by("-seq").values_list("seq", flat=True).first() or 0
    return {
        "run": run,
        "requests": [_request_item(r, (bound or {}).get(r.pk)) for r in open_requests],
        "checkpoints": checkpoints,
        "diagram": layout(run.workflow.graph),
        "children": run.rehydrated_runs.order_by("created_at"),
        "last_seq": last_seq,
        # Forms return to the run page, also when rendered in a panel fetched on its own.
        "next_url": reverse("dashboard:run", args=[run.pk]),
        "outputs": [o if isinstance(o, str) else json.dumps(plain(o), ensure_ascii=False)
                    for o in run.outputs],
        # Built only if the page or panel being rendered shows them (each panel is fetched
        # again on its own whenever the run changes).
        "facts": SimpleLazyObject(lambda: _run_facts(run)),
        "history": SimpleLazyObject(lambda: _history(run)),
        **_confirmations(run, open_requests),
        "can_operate": permissions.can_operate(request.user),
        "can_approve": permissions.can_approve(request.user),
        "active": run.status in RunStatus.active(),
        "finished": run.status in RunStatus.finished(),
    }


def _confirmations(run: Run, open_requests: list[PendingRequest]) -> dict[str, str]:
    """What the page asks before an action that discards work or leaves it behind."""
    named = ", ".join(f"{r.source_executor_id} {_request_kind(r) or 'request'} "
                      f"({r.request_id[:8]})" for r in open_requests)
    plural = "s" if len(open_requests) != 1 else ""
    requests_cancelled = (f" The open request{plural} {named} will be cancelled."
                          if open_requests else "")
    stops = ("It stops at its next checkpoint." if run.status == RunStatus.RUNNING
             else "It stops now.")
    return {
        "confirm_resume": ("Work after that checkpoint is set aside as an abandoned branch."
                           + requests_cancelled),
        "confirm_cancel": f"Cancel this run? {stops}{requests_cancelled}",
        "confirm_rehydrate": (f"This run keeps waiting on its open request{plural} {named}; "
                              f"the new run asks again." if open_requests else ""),
    }


def _request_kind(pending: PendingRequest) -> str:
    """The request's type by its short name (``ReviewRequest``), or "" for a plain value."""
    data = pending.request_data
    return data.get("class", "").rsplit(".", 1)[-1] if isinstance(data, dict) else ""


def _run_facts(run: Run) -> dict[str, Any]:
    """What a run was started with, when it ran, and the error it last failed with (which
    the newest resume cleared from the run and kept in its action)."""
    ended = run.finished_at or (timezone.now() if run.started_at else None)
    # The newest resume, one row read by the (run, created_at) index.
    last_resume = None if run.error else run.actions.filter(
        kind=ActionKind.RESUME).values_list("detail", flat=True).first()
    return {
        "input": json.dumps(plain(run.input), ensure_ascii=False, sort_keys=True)
        if run.input is not None else None,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration": _duration(ended - run.started_at) if run.started_at and ended else "",
        "previous_error": (last_resume or {}).get("error", ""),
    }


@dataclass
class History:
    """The newest operator actions on a run, as its page lists them, and how many there are."""

    items: list[dict[str, Any]]
    total: int


def _history(run: Run) -> History:
    actions = run.actions.select_related("user")[:HISTORY_SHOWN]
    return History([_action_item(action) for action in actions], run.actions.count())


def _duration(elapsed) -> str:
    seconds = elapsed.total_seconds()
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, seconds = divmod(int(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {seconds} s"


def _action_item(action) -> dict[str, Any]:
    """An operator action as the run page's history lists it: who, when, and what, in words."""
    detail = action.detail or {}
    kind = action.kind
    if kind == "resume":
        cancelled = detail.get("cancelled_requests", 0)
        text = (f"resumed it from its checkpoint at superstep {detail.get('superstep')} "
                f"(it was {detail.get('from_status')})")
        if cancelled:
            text += f"; {cancelled} open request{'s' if cancelled != 1 else ''} cancelled"
    elif kind == "rehydrate":
        text = (f"rehydrated it from run {str(detail.get('source_run', ''))[:8]} at superstep "
                f"{detail.get('superstep')}")
    elif kind == "cancel":
        text = ("asked it to stop at its next checkpoint (it was running)"
                if detail.get("from_status") == "running" else
                f"cancelled it (it was {detail.get('from_status')})")
    elif kind == "answer":
        text = (f"answered request {str(detail.get('request_id', ''))[:8]} with "
                # Sorted: PostgreSQL's jsonb does not keep the order the keys were written in.
                f"{json.dumps(plain(detail.get('response')), ensure_ascii=False, sort_keys=True)}")
    elif kind == "prune":
        text = (f"pruned {detail.get('checkpoints')} old checkpoints "
                f"({detail.get('bytes')} bytes), keeping the newest {detail.get('keep')}")
    elif kind == "import":
        text = f"imported it from checkpoint {action.checkpoint_id[:8]}"
    else:
        text = "started it"
    return {"action": action, "who": action.username or "the system", "text": text}


def _request_item(pending: PendingRequest, form: ResponseForm | None = None) -> dict:
    return {"request": pending, "form": form or _response_form(pending),
            "kind": _request_kind(pending),
            "data": json.dumps(plain(pending.request_data), indent=2, ensure_ascii=False)}


def _response_form(pending: PendingRequest, data: Any = None) -> ResponseForm:
    # Ids unique per request: the inbox shows many forms with the same field names.
    return ResponseForm(pending.response_schema, data, auto_id=f"id_%s-{pending.pk}")


def plain(value: Any) -> Any:
    """An encoded checkpoint value as a person reads it: dataclasses and models as their
    fields, enums as their names, other tags as their payload."""
    if isinstance(value, list):
        return [plain(item) for item in value]
    if not isinstance(value, dict):
        return value
    tag = value.get("__type__")
    if tag in ("dataclass", "pydantic"):
        return plain(value.get("fields"))
    if tag == "enum":
        return value.get("name")
    if tag in ("tuple", "set", "frozenset"):
        return plain(value.get("items"))
    if tag == "dict":
        return {json.dumps(plain(k)): plain(v) for k, v in value.get("items", [])}
    if tag is not None:
        return next((v for k, v in value.items() if k != "__type__"), None)
    return {key: plain(item) for key, item in value.items()}


@login_required
def run_detail(request, run_id):
    """A run: status and lineage, live graph and timeline, events, outputs, requests and
    checkpoints with their actions."""
    _require(request, permissions.can_view)
    run = _get_run(run_id)
    context = _run_context(request, run)
    context["events"] = list(run.events.order_by("-seq")[:300])[::-1]
    context["events_json"] = [event.record() for event in context["events"]]
    return render(request, "dashboard/run_detail.html", context)


@login_required
def run_part(request, run_id, part: str):
    """One panel of the run page, re-fetched by the page when the run changes."""
    _require(request, permissions.can_view)
    if part not in RUN_PARTS:
        raise Http404(f"no such part: {part}")
    return render(request, f"dashboard/_run_{part}.html", _run_context(request, _get_run(run_id)))


@login_required
@require_POST
def run_action(request, run_id, action: str):
    """Resume, rehydrate or cancel; the result is shown on the (new) run's page."""
    _require(request, permissions.can_operate)
    checkpoint_id = request.POST.get("checkpoint_id")
    try:
        if action == "resume":
            run = services.resume_run(run_id, checkpoint_id, request.user)
            messages.success(request, "The run resumes from the chosen checkpoint.")
        elif action == "rehydrate":
            run = services.rehydrate_run(run_id, checkpoint_id, request.user)
            messages.success(request, "A new run was rehydrated from the checkpoint.")
        elif action == "cancel":
            run = services.cancel_run(run_id, request.user)
            messages.success(request, "The run is cancelled." if run.status == RunStatus.CANCELLED
                             else "The run stops at its next checkpoint.")
        else:
            raise Http404(f"no such action: {action}")
    except services.ServiceError as error:
        messages.error(request, str(error))
        if isinstance(error, services.NotFound) and not Run.objects.filter(pk=run_id).exists():
            raise Http404(str(error)) from None
        return redirect("dashboard:run", run_id=run_id)
    return redirect("dashboard:run", run_id=run.pk)


# --------------------------------------------------------------------------- requests
@login_required
def requests_inbox(request, bound: dict | None = None, status: int = 200):
    """Every open request across runs, newest first, each with its form."""
    _require(request, permissions.can_view)
    pending = PendingRequest.objects.open().select_related("run__workflow").order_by(
        "-created_at")
    return render(request, "dashboard/requests.html", {
        "requests": [_request_item(r, (bound or {}).get(r.pk)) for r in pending],
        "can_approve": permissions.can_approve(request.user)}, status=status)


@login_required
@require_POST
def respond(request, request_pk):
    """Answer a request from its generated form; errors show on the form."""
    _require(request, permissions.can_approve)
    pending = get_object_or_404(PendingRequest.objects.select_related("run"), pk=request_pk)
    form = _response_form(pending, request.POST)
    next_url = request.POST.get("next", "")
    if form.is_valid():
        try:
            services.respond(pending.pk, form.to_json(), request.user)
        except services.ServiceError as error:
            if isinstance(error, services.Conflict):
                messages.error(request, str(error))
                return _back(request, next_url, pending)
            form.add_error(None, str(error))
        else:
            messages.success(request, "Answer recorded; the run continues.")
            return _back(request, next_url, pending)
    if next_url == reverse("dashboard:requests"):
        return requests_inbox(request, bound={pending.pk: form}, status=400)
    context = _run_context(request, _get_run(pending.run_id), bound={pending.pk: form})
    context["events"], context["events_json"] = [], []
    return render(request, "dashboard/run_detail.html", context, status=400)


def _back(request, next_url: str, pending: PendingRequest):
    if next_url and url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
        return redirect(next_url)
    return redirect("dashboard:run", run_id=pending.run_id)


# --------------------------------------------------------------------------- checkpoints
@login_required
def checkpoint_detail(request, checkpoint_id: str):
    """A checkpoint's decoded state and what changed since the previous one."""
    _require(request, permissions.can_view)
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
    _require(request, permissions.can_view)
    try:
        document = services.export_checkpoint(checkpoint_id)
    except services.NotFound as error:
        raise Http404(str(error)) from None
    response = HttpResponse(json.dumps(document, indent=2), content_type="application/json")
    response["Content-Disposition"] = f'attachment; filename="checkpoint-{checkpoint_id}.json"'
    return response
