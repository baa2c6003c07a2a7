"""One run's page: status and lineage, live graph and timeline, events, outputs, requests,
checkpoints with their actions, and the run's history of operator actions. Panels are
re-fetched on their own (``run_part``) when the run changes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils import timezone
from django.utils.functional import SimpleLazyObject
from django.views.decorators.http import require_POST

from workflows_app import permissions, services
from workflows_app.branches import RunLine
from workflows_app.models import Run
from workflows_app.states import ActionKind, RunStatus

from ..access import require
from ..confirmations import confirmations
from ..diagram import layout
from ..request_items import refused_answers, request_item
from ..run_windows import (RunPageView, checkpoint_page, event_window, executor_states,
                           newest_superstep, timeline)
from ..values import plain, plain_json

RUN_PARTS = ("header", "requests", "checkpoints", "outputs", "history", "branches")
HISTORY_SHOWN = 20  # newest operator actions on a run page; the admin lists them all
OUTPUTS_SHOWN = 20  # newest outputs on a run page; the API lists them all
CHILDREN_SHOWN = 10  # runs rehydrated from this one, named in its header
WARNINGS_SHOWN = 3  # newest warning events in a run's header; the event log lists them all
WARNINGS_LOOKED_AT = 1000  # newest events of a run its header looks for warnings in


def get_run(run_id) -> Run:
    return get_object_or_404(Run.objects.select_related(
        "workflow", "created_by", "parent_run__workflow", "source_checkpoint"), pk=run_id)


def _run_context(request, run: Run, restore: bool = False) -> dict[str, Any]:
    """What the page and each of its panels show; every list in it is a window of bounded
    size (``run_windows``), whatever the length of the run."""
    view = RunPageView.from_query(request.GET)
    # The page shows the run as of its newest event now, and its socket asks for the events
    # after it: one snapshot, so an event committed while the page is built is neither
    # missing nor shown twice.
    last_seq = run.events.order_by("-seq").values_list("seq", flat=True).first() or 0
    try:
        line = RunLine(run, view.branch, upto_seq=last_seq)
    except LookupError as error:
        raise Http404(str(error)) from None
    open_requests = list(run.requests.open().order_by("created_at"))
    # The whole page shows an answer just refused as it was submitted (its panel, fetched
    # again live, shows the form afresh).
    bound = refused_answers(request.session, open_requests) if restore else {}
    return {
        "run": run,
        "view": view,
        "line": line,
        "requests": [request_item(r, bound.get(r.pk)) for r in open_requests],
        "checkpoints": SimpleLazyObject(lambda: checkpoint_page(line, view)),
        "branches": SimpleLazyObject(lambda: line.summaries()),
        "diagram": layout(run.workflow.graph),
        "children": run.rehydrated_runs.order_by("created_at")[:CHILDREN_SHOWN],
        "last_seq": last_seq,
        # Forms return to the run page, also when rendered in a panel fetched on its own.
        "next_url": reverse("dashboard:run", args=[run.pk]),
        "outputs": SimpleLazyObject(lambda: _outputs(run)),
        # Built only if the page or panel being rendered shows them (each panel is fetched
        # again on its own whenever the run changes).
        "facts": SimpleLazyObject(lambda: _run_facts(run, last_seq)),
        "history": SimpleLazyObject(lambda: _history(run)),
        **confirmations(run, open_requests),
        "can_operate": permissions.can_operate(request.user),
        "can_approve": permissions.can_approve(request.user),
        "active": run.status in RunStatus.active(),
        "finished": run.status in RunStatus.finished(),
    }


@dataclass
class Outputs:
    """The run's newest outputs, as the page lists them, and how many there are."""

    items: list[str]
    total: int


def _outputs(run: Run) -> Outputs:
    shown = run.outputs[-OUTPUTS_SHOWN:]
    return Outputs([o if isinstance(o, str) else plain_json(o) for o in shown],
                   len(run.outputs))


def _run_facts(run: Run, last_seq: int) -> dict[str, Any]:
    """What a run was started with, when it ran, the error it last failed with (which
    the newest resume cleared from the run and kept in its action), and its newest
    ``warning`` events (e.g. a message the engine dropped because no edge delivers it),
    among those up to ``last_seq`` (the page's newest)."""
    ended = run.finished_at or (timezone.now() if run.started_at else None)
    # The newest resume, one row read by the (run, created_at) index.
    last_resume = None if run.error else run.actions.filter(
        kind=ActionKind.RESUME).values_list("detail", flat=True).first()
    # Warnings among the newest events: a range of the (run, seq) index, where a search of
    # the whole event log would cost a long run's header more at every live refresh.
    since = max(last_seq - WARNINGS_LOOKED_AT, 0)
    warnings = run.events.filter(seq__gt=since, seq__lte=last_seq, type="warning").order_by("-seq").values(
        "seq", "superstep", "executor_id", "data")[:WARNINGS_SHOWN]
    return {
        "input": plain_json(run.input)
        if run.input is not None else None,
        "started_at": run.started_at,
        "finished_at": run.finished_at,
        "duration": _duration(ended - run.started_at) if run.started_at and ended else "",
        "previous_error": plain((last_resume or {}).get("error", "")),
        # A run made from another run's checkpoint was rehydrated, or forked with edits.
        "forked": run.parent_run_id is not None and run.actions.filter(
            kind=ActionKind.FORK).exists(),
        # Through plain(), as every stored value a page shows: text no page can encode is
        # made readable there.
        "warnings": [{"seq": w["seq"], "superstep": w["superstep"],
                      "executor_id": w["executor_id"],
                      "message": plain((w["data"] or {}).get("message", "")
                                       if isinstance(w["data"], dict) else str(w["data"]))}
                     for w in warnings],
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
                f"{plain_json(detail.get('response'))}")
    elif kind == "prune":
        text = (f"pruned {detail.get('checkpoints')} old checkpoints "
                f"({detail.get('bytes')} bytes), keeping the newest {detail.get('keep')}")
    elif kind == "import":
        text = f"imported it from checkpoint {action.checkpoint_id[:8]}"
    elif kind == "fork":
        def cut(value, limit=120):  # a replaced state can be long; its checkpoint has it whole
            text = plain_json(value)
            return text if len(text) <= limit else f"{text[:limit]}…"
        changes = "; ".join(
            f"{c.get('path')} " + (f"from {cut(c.get('before'))} to {cut(c.get('after'))}"
                                   if "after" in c else "removed")
            for c in (detail.get("changes") or [])[:10])
        if len(detail.get("changes") or []) > 10:
            changes += f" and {len(detail['changes']) - 10} more"
        text = (f"forked it from checkpoint {action.checkpoint_id[:8]} of run "
                f"{str(detail.get('source_run', ''))[:8]} at superstep {detail.get('superstep')}"
                f", editing {changes or 'nothing'}")
    else:
        text = "started it"
    return {"action": action, "who": action.username or "the system", "text": text}


@login_required
def run_detail(request, run_id):
    """A run: status and lineage, live graph and timeline, events, outputs, requests and
    checkpoints with their actions."""
    require(request, permissions.can_view)
    return render_run_page(request, get_run(run_id))


def _executor_paths(described: dict, prefix: str = ""):
    """Every executor id events may name, the inner executors of a sub-workflow by their
    path (``review/writer``), as the engine passes up their events: the log's filter."""
    for executor in described.get("executors", []):
        yield prefix + executor["id"]
        inner = executor.get("workflow")
        if isinstance(inner, dict):
            yield from _executor_paths(inner, f"{prefix}{executor['id']}/")


def render_run_page(request, run: Run):
    """The whole run page."""
    context = _run_context(request, run, restore=True)
    line, view = context["line"], context["view"]
    newest = newest_superstep(line)
    executors = list(_executor_paths(run.workflow.graph))
    context.update(
        timeline=timeline(line, view, newest),
        events=event_window(line, view, context["last_seq"], executors),
        executor_states=executor_states(
            line, run, newest, [item["request"] for item in context["requests"]]))
    return render(request, "dashboard/run_detail.html", context)


@login_required
def run_part(request, run_id, part: str):
    """One panel of the run page, re-fetched by the page when the run changes."""
    require(request, permissions.can_view)
    if part not in RUN_PARTS:
        raise Http404(f"no such part: {part}")
    return render(request, f"dashboard/_run_{part}.html", _run_context(request, get_run(run_id)))


@login_required
@require_POST
def run_action(request, run_id, action: str):
    """Resume, rehydrate or cancel; the result is shown on the (new) run's page."""
    require(request, permissions.can_operate)
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
