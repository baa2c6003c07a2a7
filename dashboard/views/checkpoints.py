"""A checkpoint's page (its state, what changed since another checkpoint of its run, and
the run's actions from it), its export as a portable file, and the page that imports one."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse
from django.shortcuts import get_object_or_404, redirect, render
from django.template.defaultfilters import filesizeformat
from django.views.decorators.http import require_http_methods

from workflows_app import permissions, services
from workflows_app.diffs import diff_documents
from workflows_app.engine import WorkflowCheckpointError
from workflows_app.limits import MAX_DOCUMENT_BYTES, TooDeep, load_json, too_deep_message
from workflows_app.models import Checkpoint
from workflows_app.states import RunStatus

from ..access import require
from ..confirmations import confirmations
from ..values import plain, plain_json

SECTIONS = (("Executor states", "executor_states"), ("Pending messages", "messages"),
            ("Shared state", "shared_state"), ("Pending requests", "pending_requests"),
            ("Fan-in buffers", "fan_in_buffers"))
CHANGES_SHOWN = 500  # rows of a diff table; two far-apart checkpoints may differ everywhere
VALUE_SHOWN = 400  # characters of a before or after value in a diff cell
CHOICES_SHOWN = 20  # checkpoints offered when a superstep number names several
# The same limit as the API's import and the command's (workflows_app/limits.py says why).
MAX_IMPORT_BYTES = MAX_DOCUMENT_BYTES
SUPERSTEP = re.compile(r"[0-9]+")


class CompareRefused(Exception):
    """The checkpoint asked for cannot be compared with this one; the message says why."""


class ImportRefused(Exception):
    """The uploaded file is not a checkpoint export that can be read; the message says why."""


@dataclass
class Comparison:
    """The diff a checkpoint's page shows: from ``before`` to ``after`` (oldest first), one
    of them the page's checkpoint; ``chosen`` when the operator picked the other one."""

    before: Checkpoint | None
    after: Checkpoint
    chosen: bool = False
    query: str = ""
    refused: str = ""  # why the checkpoint asked for cannot be compared
    choices: list[Checkpoint] = field(default_factory=list)  # a superstep naming several


def plain_changes(before: Checkpoint | None, after: Checkpoint) -> list[dict[str, Any]]:
    """What changed from ``before`` to ``after`` as an operator reads it: the changes of
    ``diffs.diff_documents`` computed over the plain values of both documents
    (``values.plain``), not over their encoded form as ``Checkpoint.diff_to`` does. A
    changed dataclass field is then reported at its own path (``...draft.title``) with
    plain before and after values, where the encoded diff reports the whole envelope
    (``__type__``, ``class``, ``fields``) as changed. Values that differ only in their
    encoding (a tuple and a list of the same items) compare equal. Raises
    ``WorkflowCheckpointError`` naming a corrupt row."""
    return diff_documents(plain(before.decoded()) if before is not None else None,
                          plain(after.decoded()))


@login_required
def checkpoint_detail(request, checkpoint_id: str):
    """A checkpoint's plain state and what changed since the previous checkpoint, or since
    the checkpoint of the same run named by ``?compare=`` (an id, an id's first characters
    or a superstep number); Resume and Rehydrate for operators."""
    require(request, permissions.can_view)
    # The stored bytes are read by decoded() along with the row's chain, not here.
    checkpoint = get_object_or_404(
        Checkpoint.objects.select_related("run__workflow").defer("document"), pk=checkpoint_id)
    run = checkpoint.run
    previous = checkpoint.previous_checkpoint()
    comparison = _comparison(checkpoint, previous, request.GET.get("compare", "").strip())
    try:
        document = checkpoint.decoded()
        changes = plain_changes(comparison.before, comparison.after)
        problem = ""
    except WorkflowCheckpointError as error:  # names the corrupt row
        document, changes, problem = {}, [], str(error)
    open_requests = list(run.requests.open().order_by("created_at"))
    imported_from = (document.get("metadata") or {}).get("imported_from")
    context = {
        "checkpoint": checkpoint, "run": run, "previous": previous, "comparison": comparison,
        # Empty sections are named in one line, not shown as a card of "{}" each.
        "sections": [(name, plain_json(document.get(key), indent=2))
                     for name, key in SECTIONS if document.get(key)],
        "empty_sections": [name for name, key in SECTIONS if not document.get(key)],
        "changes": [_change_row(change) for change in changes[:CHANGES_SHOWN]],
        "changes_hidden": max(0, len(changes) - CHANGES_SHOWN),
        "next_checkpoints": Checkpoint.objects.filter(previous_id=checkpoint.pk).only(
            "checkpoint_id", "superstep", "run_id"),
        "first": run.checkpoints.order_by("created_at").only("checkpoint_id").first(),
        "imported_from": imported_from,
        # An edited checkpoint (edit-and-fork) says who edited it; its previous checkpoint
        # is the source, so the diff below is what they changed.
        "edit": (document.get("metadata") or {}).get("edit"),
        "imported_from_stored": bool(imported_from) and Checkpoint.objects.filter(
            pk=imported_from).exists(),
        "problem": problem,
        "can_operate": permissions.can_operate(request.user),
        "active": run.status in RunStatus.active(),
        **confirmations(run, open_requests),
    }
    status = 400 if comparison.refused else 200
    return render(request, "dashboard/checkpoint.html", context, status=status)


def _comparison(checkpoint: Checkpoint, previous: Checkpoint | None, query: str) -> Comparison:
    """The diff to show: to ``previous`` unless ``query`` names another checkpoint."""
    default = Comparison(before=previous, after=checkpoint)
    if not query:
        return default
    try:
        found = _checkpoints_named(checkpoint, query)
    except CompareRefused as refusal:
        return Comparison(before=previous, after=checkpoint, query=query, refused=str(refusal))
    if len(found) > 1:
        return Comparison(before=previous, after=checkpoint, query=query, choices=found)
    (other,) = found
    # Oldest first, so the changes read forward in time whichever one the page is about.
    older, newer = sorted((other, checkpoint), key=lambda c: (c.created_at, c.superstep))
    return Comparison(before=older, after=newer, chosen=True, query=query)


def _checkpoints_named(checkpoint: Checkpoint, query: str) -> list[Checkpoint]:
    """The checkpoints of ``checkpoint``'s run (other than it) that ``query`` names: an id,
    the first characters of one (at least four), or a superstep number (which may name
    several: a response checkpoint shares its superstep, and so do resumed branches)."""
    run_id = checkpoint.run_id
    exact = Checkpoint.objects.filter(pk=query).select_related("run__workflow").defer(
        "document").first()
    if exact is not None:
        if exact.run_id != run_id:
            raise CompareRefused(
                f"checkpoint {query} belongs to run {exact.run_id} ({exact.run.workflow.name}), "
                f"not to run {run_id}: only checkpoints of the same run can be compared")
        if exact.pk == checkpoint.pk:
            raise CompareRefused("that is this checkpoint: choose another one of its run")
        return [exact]
    others = Checkpoint.objects.filter(run_id=run_id).exclude(pk=checkpoint.pk).order_by(
        "created_at").defer("document")
    if SUPERSTEP.fullmatch(query):
        number = int(query)
        found = (list(others.filter(superstep=number)[:CHOICES_SHOWN])
                 if number <= services.MAX_SUPERSTEP else [])  # beyond what a column holds
        if found:
            return found
        if checkpoint.superstep == number:
            raise CompareRefused(f"this is the only checkpoint of its run at superstep {query}")
        raise CompareRefused(f"run {run_id} has no checkpoint at superstep {query}")
    if len(query) >= 4:
        found = list(others.filter(checkpoint_id__startswith=query)[:CHOICES_SHOWN])
        if found:
            return found
    raise CompareRefused(f"run {run_id} has no checkpoint whose id is or starts with "
                         f"{query!r} (give a whole id, its first 4 or more characters, or a "
                         f"superstep number)")


def _change_row(change: dict[str, Any]) -> dict[str, Any]:
    """A change as the diff table shows it; a value the change has not (an added key has no
    before) is None, a shown value is plain JSON cut to ``VALUE_SHOWN`` characters."""
    return {"path": change["path"], "change": change["change"],
            "before": _shown(change["before"]) if "before" in change else None,
            "after": _shown(change["after"]) if "after" in change else None}


def _shown(value: Any) -> str:
    text = json.dumps(value, ensure_ascii=False, sort_keys=True)
    if len(text) <= VALUE_SHOWN:
        return text
    return f"{text[:VALUE_SHOWN]}… ({len(text):,} characters)"


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


@login_required
@require_http_methods(["GET", "POST"])
def checkpoint_import(request):
    """GET: the upload form and what an import does. POST: import the uploaded export as a
    new run (``services.import_checkpoint``) and show that run; a file that cannot be
    imported is named on the form again (400) and nothing is created."""
    require(request, permissions.can_operate)
    if request.method == "GET":
        return _import_page(request)
    upload = request.FILES.get("file")
    try:
        document = _read_export(upload)
        run = services.import_checkpoint(document, request.user)
    except (ImportRefused, services.ServiceError) as error:
        return _import_page(request, error=str(error), filename=getattr(upload, "name", ""),
                            status=400)
    messages.success(request, _imported(document["checkpoint"], run))
    return redirect("dashboard:run", run_id=run.pk)


def _import_page(request, *, error: str = "", filename: str = "", status: int = 200):
    return render(request, "dashboard/checkpoint_import.html", {
        "error": error, "filename": filename,
        "max_bytes": MAX_IMPORT_BYTES}, status=status)


def _read_export(upload: Any) -> Any:
    """The JSON document in ``upload``, or ``ImportRefused`` saying why there is none."""
    if upload is None:
        raise ImportRefused("no file was chosen: choose a checkpoint export (a .json file "
                            "from a checkpoint's export link)")
    if upload.size > MAX_IMPORT_BYTES:
        raise ImportRefused(f"it is {filesizeformat(upload.size)}; a checkpoint export may "
                            f"be at most {filesizeformat(MAX_IMPORT_BYTES)}")
    try:
        return load_json(upload.read().decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ImportRefused("it is not UTF-8 text, so not a checkpoint export") from None
    except json.JSONDecodeError as error:
        raise ImportRefused(f"it is not JSON: {error.msg} at line {error.lineno}, column "
                            f"{error.colno}") from None
    except TooDeep:
        raise ImportRefused(too_deep_message("it")) from None


def _imported(body: dict[str, Any], run: Any) -> str:
    """What the import did, for the new run's page."""
    original = str(body.get("checkpoint_id"))
    text = (f"Checkpoint {original[:8]} (superstep {run.current_superstep}) was imported as "
            f"this new run")
    if run.head_checkpoint_id != original:
        text += " (it was already stored here, so this run holds a copy of it)"
    count = run.requests.open().count()
    if run.status == RunStatus.WAITING:
        text += (f"; it waits on its {count} open request{'s' if count != 1 else ''}"
                 if count else "; it waits on its requests")
    else:
        text += "; resume it from its checkpoint to continue, or rehydrate a new run from it"
    return text + "."


# --------------------------------------------------------------------------- edit and fork
@dataclass
class ForkField:
    """One JSON editor of the edit-and-fork form: ``text`` is what it shows (the current
    plain value, or what was submitted), ``current`` the plain value it started from."""

    name: str
    label: str
    text: str
    current: Any
    removable: bool = False  # a pending message, which can be dropped
    removed: bool = False


def fork_fields(document: dict[str, Any]) -> list[ForkField]:
    """The editors for a checkpoint document: shared state (one object), each executor's
    state and each pending message's data, pre-filled with their plain JSON."""
    fields = []
    shared = plain(document.get("shared_state") or {})
    if shared:
        fields.append(ForkField("shared_state", "Shared state", _editor_text(shared), shared))
    for executor_id, state in sorted((document.get("executor_states") or {}).items()):
        value = plain(state)
        fields.append(ForkField(f"state:{executor_id}", f"Executor “{executor_id}” state",
                                _editor_text(value), value))
    for index, message in enumerate(document.get("messages") or []):
        value = plain(message.get("data"))
        target = message.get("target_id")
        what = "response" if message.get("request") else "message"
        fields.append(ForkField(f"message:{index}", f"Pending {what} {index} to “{target}”",
                                _editor_text(value), value, removable=True))
    return fields


def _editor_text(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False, sort_keys=True, indent=2)


def fork_edits(fields: list[ForkField], form: Any) -> tuple[list[dict[str, Any]], list[str]]:
    """The service's edits for the submitted ``form`` (each editor that changed), and the
    problems of editors that hold no JSON or change what cannot change; the fields are
    updated to show what was submitted."""
    edits: list[dict[str, Any]] = []
    problems: list[str] = []
    for item in fields:
        item.text = form.get(item.name, item.text)
        item.removed = item.removable and bool(form.get(f"remove:{item.name}"))
        kind, _, name = item.name.partition(":")
        if item.removed:
            edits.append({"op": "remove_message", "index": int(name)})
            continue
        try:
            value = load_json(item.text)
        except (json.JSONDecodeError, TooDeep) as error:
            reason = too_deep_message("it") if isinstance(error, TooDeep) else (
                f"{error.msg} at line {error.lineno}, column {error.colno}")
            problems.append(f"{item.label}: not JSON: {reason}")
            continue
        if value == item.current:
            continue
        if kind == "message":
            edits.append({"op": "replace_message", "index": int(name), "data": value})
        elif not isinstance(value, dict):
            problems.append(f"{item.label}: must be a JSON object")
        elif kind == "shared_state":
            gone = sorted(set(item.current) - set(value))
            if gone:
                problems.append(f"{item.label}: keys cannot be removed ({', '.join(gone)})")
            edits.extend({"op": "set_shared_state", "key": key, "value": new}
                         for key, new in value.items()
                         if key not in item.current or item.current[key] != new)
        elif set(value) == set(item.current):  # key by key: the history names each
            edits.extend({"op": "set_executor_state", "executor_id": name, "key": key,
                          "value": new} for key, new in value.items()
                         if item.current[key] != new)
        else:
            edits.append({"op": "replace_executor_state", "executor_id": name, "state": value})
    return edits, problems


@login_required
@require_http_methods(["GET", "POST"])
def checkpoint_fork(request, checkpoint_id: str):
    """GET: the edit-and-fork form of a checkpoint, its editors pre-filled. POST: fork it
    with the changed editors (``services.fork_checkpoint``) and show the new run; refused
    edits are shown on the form again (400) and nothing is created."""
    require(request, permissions.can_operate)
    checkpoint = get_object_or_404(
        Checkpoint.objects.select_related("run__workflow").defer("document"), pk=checkpoint_id)
    try:
        fields = fork_fields(checkpoint.decoded())
    except WorkflowCheckpointError as error:  # names the corrupt row
        return _fork_page(request, checkpoint, [], [str(error)], status=409)
    if request.method == "GET":
        return _fork_page(request, checkpoint, fields, [])
    edits, problems = fork_edits(fields, request.POST)
    if not problems and not edits:
        problems = ["nothing was changed: edit a value (or remove a message) first"]
    if not problems:
        try:
            run = services.fork_checkpoint(checkpoint.pk, edits, request.user)
        except services.ServiceError as error:
            problems = [str(error)]
        else:
            messages.success(request, f"Forked from checkpoint {checkpoint.pk[:8]} (superstep "
                                      f"{checkpoint.superstep}) with your edits: this is the "
                                      f"new run.")
            return redirect("dashboard:run", run_id=run.pk)
    return _fork_page(request, checkpoint, fields, problems, status=400)


def _fork_page(request, checkpoint: Checkpoint, fields: list[ForkField], problems: list[str],
               status: int = 200):
    return render(request, "dashboard/checkpoint_fork.html", {
        "checkpoint": checkpoint, "run": checkpoint.run, "fields": fields,
        "problems": problems}, status=status)
