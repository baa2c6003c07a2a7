"""The one place that changes Stepstone's data.

Views, the API, admin actions, tasks and management commands call these functions; none of
them writes models on its own. Each function validates its input, raises a ``ServiceError``
subclass whose message names the problem, and either completes or changes nothing (every
function runs in one transaction; tasks are enqueued only once it commits). Status changes
of runs, and the record of who asked for them, are the run lifecycle's (``lifecycle.py``).
"""

from __future__ import annotations

import enum
import hashlib
import json
import re
import secrets
import uuid
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import Group, Permission
from django.db import transaction
from django.db.models import Count
from django_q.models import Schedule

from . import lifecycle, permissions, registry
from .checkpoint_rows import CheckpointWriter
from .conf import stepstone_settings
from .engine import WorkflowCheckpoint, WorkflowCheckpointError
from .engine import edits as checkpoint_edits
from .engine.edits import CheckpointEditError, edit_checkpoint
from .engine.encoding import decode_type, encode_value
from .engine.errors import WorkflowError
# Callers catch the refusals as services.Conflict and the like: they are part of this API.
from .errors import Conflict, InvalidInput, NotFound, ServiceError  # noqa: F401
from .limits import MAX_JSON_DEPTH, too_deep_message
from .models import Checkpoint, PendingRequest, RegisteredWorkflow, Run
from .schemas import InvalidValue, coerce, coerce_any, json_schema
from .states import ActionKind, CheckpointKind, RequestStatus, RunStatus
from .task_queue import enqueue_run
from .worker import recovery

EXPORT_FORMAT = "stepstone.checkpoint"
EXPORT_VERSION = 1
MAX_SUPERSTEP = 2**31 - 1  # the largest superstep an integer column holds on every database
PLAIN_KEY = re.compile(r"[A-Za-z0-9_-]+")  # keys a refusal's path writes as they are


def _storable(value: Any, what: str, *, max_depth: int | None = MAX_JSON_DEPTH,
              level: int = 0) -> Any:
    """``value`` (JSON) if every database can store it in a JSON column and every page can
    show it; otherwise ``InvalidInput`` naming the path of the part at fault (``input: ...
    (at input.items[2])``). PostgreSQL's jsonb refuses NUL characters and unpaired
    surrogates, so they are refused everywhere (in keys too), and so is nesting deeper
    than ``max_depth`` levels of objects and arrays (``None``: any depth), counted from the
    document the value is part of (``level``: how many levels down in it the value is).
    Walks the value without recursion, so a value of any depth is refused, not a crash."""
    stack: list[tuple[Any, int, tuple]] = [(value, level, ())]
    while stack:
        item, depth, trail = stack.pop()
        if isinstance(item, dict | list | tuple):
            if max_depth is not None and depth >= max_depth:
                where = _path(what, trail)
                if len(where) > 80:
                    where = where[:80] + "…"
                raise InvalidInput(f"{what}: {too_deep_message('the value', max_depth)} "
                                   f"(at {where})")
            pairs = item.items() if isinstance(item, dict) else enumerate(item)
            for key, child in pairs:
                if isinstance(key, str):
                    _storable_text(key, what, trail, "a key")
                stack.append((child, depth + 1, (trail, key)))
        elif isinstance(item, str):
            _storable_text(item, what, trail, "text")
    return value


def _storable_text(text: str, what: str, trail: tuple, kind: str) -> None:
    if "\x00" in text:
        problem = "text must not contain NUL characters (\\u0000)"
    elif text.isascii():
        return
    else:
        try:
            text.encode("utf-8")
            return
        except UnicodeEncodeError:
            problem = "text must not contain unpaired surrogates"
    where = _path(what, trail)
    if kind != "text":
        where = f"{kind} of {where}"
    raise InvalidInput(f"{what}: {problem}" + (f" (at {where})" if trail or kind != "text"
                                                else ""))


def _path(what: str, trail: tuple) -> str:
    """The path a ``_storable`` trail leads along, written out from ``what``: object keys
    as ``.key`` (quoted JSON, ASCII only, when not a plain name) and list indices as
    ``[i]``."""
    parts: list[str] = []
    while trail:
        trail, key = trail
        if isinstance(key, int):
            parts.append(f"[{key}]")
        elif PLAIN_KEY.fullmatch(key):
            parts.append(f".{key}")
        else:
            parts.append(f"[{json.dumps(key)}]")
    return what + "".join(reversed(parts))


# --------------------------------------------------------------------------- accounts
@dataclass(frozen=True)
class OperatorAccount:
    username: str
    password: str | None  # set only when the account was just created


@transaction.atomic
def ensure_operator_account(username: str = "operator") -> OperatorAccount:
    """Create the first operator login (a superuser) if the site has no superuser yet.

    Returns the account; its ``password`` is the generated one when it was created now, so
    the caller can show it once, and None when a superuser already existed.
    """
    users = get_user_model()
    existing = users.objects.filter(is_superuser=True).order_by("pk").first()
    if existing is not None:
        return OperatorAccount(existing.get_username(), None)
    if users.objects.filter(username=username).exists():
        raise ServiceError(f"a user named {username!r} exists but is not a superuser")
    password = secrets.token_urlsafe(12)
    users.objects.create_superuser(username=username, email="", password=password)
    return OperatorAccount(username, password)


@transaction.atomic
def ensure_roles() -> None:
    """The role groups exist and hold at least their permissions (``permissions.ROLES``);
    permissions an administrator added to a group stay."""
    for name, codenames in permissions.ROLES.items():
        group, _ = Group.objects.get_or_create(name=name)
        group.permissions.add(*Permission.objects.filter(
            content_type__app_label="workflows_app", codename__in=codenames))


# --------------------------------------------------------------------------- definitions
@transaction.atomic
def sync_workflows() -> list[RegisteredWorkflow]:
    """Mirror the registered definitions into ``RegisteredWorkflow`` rows (graph, signature,
    schema)."""
    synced = []
    for definition in registry.all_definitions():
        workflow = definition.build()
        input_types = workflow.input_types
        schema = json_schema(input_types[0]) if len(input_types) == 1 else {
            "anyOf": [json_schema(t) for t in input_types]}
        row, _ = RegisteredWorkflow.objects.update_or_create(name=definition.name, defaults={
            "title": definition.title, "description": definition.description,
            "graph": workflow.describe(), "graph_signature_hash": workflow.graph_signature_hash,
            "input_schema": schema, "is_registered": True})
        synced.append(row)
    RegisteredWorkflow.objects.exclude(name__in=[w.name for w in synced]).update(
        is_registered=False)
    return synced


def ensure_recovery_schedule() -> None:
    """The django-q2 schedule that runs the recovery sweep every minute."""
    _ensure_schedule("stepstone-recover-runs", "workflows_app.tasks.recover_runs",
                     schedule_type=Schedule.MINUTES, minutes=1)


def ensure_retention_schedule() -> None:
    """The django-q2 schedule that runs the checkpoint retention sweep every hour."""
    _ensure_schedule("stepstone-prune-checkpoints", "workflows_app.tasks.prune_checkpoints",
                     schedule_type=Schedule.HOURLY)


def _ensure_schedule(name: str, func: str, **timing: Any) -> None:
    Schedule.objects.update_or_create(name=name, defaults={"func": func, "repeats": -1,
                                                           **timing})


def _registered_workflow(name: str) -> tuple[RegisteredWorkflow, registry.WorkflowDefinition]:
    row = RegisteredWorkflow.objects.filter(name=name, is_registered=True).first()
    try:
        definition = registry.get_definition(name)
    except registry.UnknownWorkflow as error:
        raise NotFound(str(error)) from None
    if row is None:
        row = next(w for w in sync_workflows() if w.name == name)
    return row, definition


# --------------------------------------------------------------------------- runs
@transaction.atomic
def start_run(workflow_name: str, input_value: Any, user: Any = None) -> Run:
    """Create a run of ``workflow_name`` with ``input_value`` (JSON, validated against the
    start executor's input type) and enqueue it."""
    row, definition = _registered_workflow(workflow_name)
    input_types = definition.build().input_types
    _storable(input_value, "input")  # before anything recurses through it
    try:
        message = coerce_any(input_value, input_types, what="input")
        encoded = encode_value(message)
    except (InvalidValue, WorkflowError) as error:
        raise InvalidInput(str(error)) from None
    _storable(encoded, "input", max_depth=None)  # the encoding adds levels of its own
    if message is None:
        raise InvalidInput("input: a value is required")
    return lifecycle.create_run(row, action=ActionKind.START, user=user, input=encoded)


def _locked_run(run_id: Any) -> Run:
    run = Run.objects.select_for_update().select_related("workflow").filter(pk=run_id).first()
    if run is None:
        raise NotFound(f"run {run_id} not found")
    return run


def _checkpoint_of(run: Run, checkpoint_id: Any) -> Checkpoint:
    if not checkpoint_id:
        raise InvalidInput("checkpoint_id: a checkpoint id is required")
    checkpoint = Checkpoint.objects.filter(pk=str(checkpoint_id)).first()
    if checkpoint is None:
        raise NotFound(f"checkpoint {checkpoint_id} not found")
    if checkpoint.run_id != run.pk:
        raise InvalidInput(f"checkpoint_id: checkpoint {checkpoint_id} belongs to run "
                           f"{checkpoint.run_id}, not to run {run.pk}")
    return checkpoint


def _check_graph(run: Run, checkpoint: Checkpoint) -> None:
    _, definition = _registered_workflow(run.workflow.name)
    current = definition.build().graph_signature_hash
    if checkpoint.graph_signature_hash != current:
        raise Conflict(f"workflow '{run.workflow.name}' changed since checkpoint "
                       f"{checkpoint.pk} was written (graph signature differs); it cannot be "
                       f"restored into the current definition")


@transaction.atomic
def resume_run(run_id: Any, checkpoint_id: Any, user: Any = None) -> Run:
    """Continue ``run`` from one of its checkpoints; later work of the run is abandoned
    (its checkpoints stay, as another branch of the lineage) and the requests of the
    abandoned state are cancelled."""
    run = _locked_run(run_id)
    checkpoint = _checkpoint_of(run, checkpoint_id)
    _check_graph(run, checkpoint)
    lifecycle.resume(run, checkpoint, user)
    run.refresh_from_db()
    return run


@transaction.atomic
def rehydrate_run(run_id: Any, checkpoint_id: Any, user: Any = None) -> Run:
    """A new run, linked to ``run``, that starts from ``checkpoint_id``."""
    run = _locked_run(run_id)
    checkpoint = _checkpoint_of(run, checkpoint_id)
    _check_graph(run, checkpoint)
    return lifecycle.create_run(
        run.workflow, action=ActionKind.REHYDRATE, user=user, input=run.input, parent_run=run,
        source_checkpoint=checkpoint, current_superstep=checkpoint.superstep,
        detail={"source_run": str(run.pk), "superstep": checkpoint.superstep})


# The edits ``fork_checkpoint`` takes, by their "op", and the fields each needs.
EDIT_OPS: dict[str, tuple[str, ...]] = {
    "set_shared_state": ("key", "value"),
    "set_executor_state": ("executor_id", "key", "value"),
    "replace_executor_state": ("executor_id", "state"),
    "replace_message": ("index", "data"),
    "remove_message": ("index",),
}


@transaction.atomic
def fork_checkpoint(checkpoint_id: Any, edits: Any, user: Any = None) -> Run:
    """A new run, linked to the checkpoint's run, that starts from an edited copy of
    ``checkpoint_id`` (edit-and-fork).

    ``edits`` is a list of objects, each with an ``op`` (a key of ``EDIT_OPS``) and its
    fields; values are JSON, turned into the type of the value they replace (a registered
    dataclass, enum or pydantic model; a pending message's data into a type its target
    accepts, a response in flight into its response type). The edited checkpoint (kind
    ``edited``, ``previous`` = the source) is the new run's first row and head; the fork is
    in the new run's activity trail with the changes. Refused edits change nothing
    (``InvalidInput`` naming each problem)."""
    row = Checkpoint.objects.select_related("run__workflow").filter(pk=str(checkpoint_id)).first()
    if row is None:
        raise NotFound(f"checkpoint {checkpoint_id} not found")
    _check_graph(row.run, row)
    _, definition = _registered_workflow(row.run.workflow.name)
    workflow = definition.build()
    try:
        source = WorkflowCheckpoint.from_dict(row.decoded())
        outputs = row.record()["outputs"]
    except WorkflowCheckpointError as error:
        raise Conflict(f"checkpoint {checkpoint_id} cannot be read: {error}") from None
    _storable(edits, "edits")  # before anything recurses through it
    parsed = [_edit_of(edit, index, source, workflow) for index, edit in enumerate(_list_of(edits))]
    person = getattr(user, "get_username", lambda: None)()
    try:
        edited = edit_checkpoint(source, parsed, author=person or None, workflow=workflow)
    except CheckpointEditError as error:
        raise InvalidInput(f"edits: {error}") from None
    changes = edited.metadata["edit"]["changes"]
    _storable(changes, "edits", max_depth=None)  # the encoding adds levels of its own
    run = lifecycle.create_run(
        row.run.workflow, action=ActionKind.FORK, user=user, input=row.run.input,
        parent_run=row.run, source_checkpoint=row, current_superstep=row.superstep,
        detail={"source_run": str(row.run_id), "superstep": row.superstep,
                "edited_checkpoint": edited.checkpoint_id, "changes": changes})
    stored = CheckpointWriter(run.pk).row(edited, outputs)  # stored whole: the run's first
    stored.save(force_insert=True)
    Run.objects.filter(pk=run.pk).update(head_checkpoint=stored)
    run.refresh_from_db()
    return run


def _list_of(edits: Any) -> list[Any]:
    if not isinstance(edits, list) or not edits:
        raise InvalidInput("edits: a non-empty list of edits is required")
    return edits


def _edit_of(edit: Any, index: int, source: WorkflowCheckpoint, workflow: Any) -> Any:
    """The engine edit for one JSON ``edit``, its values turned into the types they replace."""
    where = f"edits[{index}]"
    if not isinstance(edit, dict) or edit.get("op") not in EDIT_OPS:
        raise InvalidInput(f"{where}.op: must be one of {', '.join(EDIT_OPS)}")
    op = edit["op"]
    for name in EDIT_OPS[op]:
        if name not in edit:
            raise InvalidInput(f"{where}.{name}: required for {op}")
    unknown = sorted(set(edit) - set(EDIT_OPS[op]) - {"op"})
    if unknown:
        raise InvalidInput(f"{where}: unknown fields for {op}: {', '.join(unknown)}")
    for name in ("key", "executor_id"):
        if name in edit and not isinstance(edit[name], str):
            raise InvalidInput(f"{where}.{name}: must be text")
    if "index" in edit and (type(edit["index"]) is not int):
        raise InvalidInput(f"{where}.index: must be an integer")
    try:
        if op == "set_shared_state":
            current = source.shared_state.get(edit["key"])
            return checkpoint_edits.SetSharedState(edit["key"], _typed(edit["value"], current,
                                                            f"{where}.value"))
        if op == "set_executor_state":
            current = source.executor_states.get(edit["executor_id"], {}).get(edit["key"])
            return checkpoint_edits.SetExecutorState(edit["executor_id"], edit["key"],
                                          _typed(edit["value"], current, f"{where}.value"))
        if op == "replace_executor_state":
            state, before = edit["state"], source.executor_states.get(edit["executor_id"], {})
            if isinstance(state, dict):
                state = {key: _typed(value, before.get(key), f"{where}.state.{key}")
                         for key, value in state.items()}
            return checkpoint_edits.ReplaceExecutorState(edit["executor_id"], state)
        if op == "replace_message":
            return checkpoint_edits.ReplaceMessage(edit["index"], _message_data(
                edit["data"], edit["index"], source, workflow, f"{where}.data"))
        return checkpoint_edits.RemoveMessage(edit["index"])
    except (InvalidValue, WorkflowError) as error:
        raise InvalidInput(str(error)) from None


def _typed(value: Any, current: Any, what: str) -> Any:
    """JSON ``value`` as the type of ``current`` when that is not a JSON type (a dataclass,
    enum, tuple, date...); JSON as it is otherwise."""
    if current is None or type(current) in (dict, list, str, int, float, bool):
        return value
    # Pages show an enum by its member's name (dashboard.values.plain): take it back.
    if isinstance(current, enum.Enum) and isinstance(value, str) \
            and value in type(current).__members__:
        return type(current)[value]
    return coerce(value, type(current), what=what)


def _message_data(value: Any, index: int, source: WorkflowCheckpoint, workflow: Any,
                  what: str) -> Any:
    if not 0 <= index < len(source.messages):
        return value  # the engine refuses the index, naming it
    message = source.messages[index]
    if message.get("request") is not None:
        return coerce(value, message["request"]["response_type"], what=what)
    target = workflow.executors.get(message["target_id"])
    types = list(target.input_types) if target is not None else []
    current = type(message["data"])
    if current not in types and current not in (dict, list, str, int, float, bool, type(None)):
        types.insert(0, current)
    return coerce_any(value, types, what=what) if types else value


@transaction.atomic
def cancel_run(run_id: Any, user: Any = None) -> Run:
    """Stop a run: at once if nothing executes it, else at its next checkpoint."""
    run = _locked_run(run_id)
    lifecycle.cancel(run, user)
    run.refresh_from_db()
    return run


@transaction.atomic
def respond(request_key: Any, response_value: Any, user: Any = None) -> PendingRequest:
    """Answer an open request, named by its ``PendingRequest`` id (``response_value`` is
    JSON, validated against the request's response type); the run continues in a worker."""
    request_id = request_key
    try:
        key = uuid.UUID(str(request_key))
    except ValueError:
        raise NotFound(f"request {request_key} not found") from None
    request = PendingRequest.objects.select_for_update().filter(pk=key).first()
    if request is None:
        raise NotFound(f"request {request_key} not found")
    if request.status != RequestStatus.OPEN:
        who = f" by {request.answered_by}" if request.answered_by else ""
        raise Conflict(f"request {request_id} is {request.status}{who}; it cannot be answered")

    _storable(response_value, "response")  # before anything recurses through it
    try:
        response_type = decode_type(request.response_type)
        value = coerce(response_value, response_type, what="response")
        encoded = encode_value(value)
    except (InvalidValue, WorkflowError) as error:
        raise InvalidInput(str(error)) from None
    _storable(encoded, "response", max_depth=None)  # the encoding adds levels of its own
    lifecycle.answer(request, _locked_run(request.run_id), encoded, user)
    request.refresh_from_db()
    return request


def recover_stale_runs() -> list[Any]:
    """Give a task again to the runs whose worker died or whose task was lost: a task that a
    dead worker or cluster held is released in its place in the queue, a run that has no
    task is enqueued anew (``worker.recovery``). Returns the runs recovered. Any number of
    processes may call it at once; each run is recovered once."""
    released, orphaned = recovery.sweep()
    for run_id in orphaned:
        enqueue_run(run_id)
    return released + orphaned


# --------------------------------------------------------------------------- retention
@dataclass
class PruneReport:
    runs: int = 0  # runs that lost checkpoints
    checkpoints: int = 0  # checkpoints deleted (or, in a dry run, that would be)
    bytes: int = 0  # their stored bytes


def prune_checkpoints(keep: int | None = None, dry_run: bool = False,
                      user: Any = None) -> PruneReport:
    """Delete old checkpoints of finished runs, keeping per run:

    - its ``keep`` newest checkpoints (default ``RETAIN_CHECKPOINTS``; 0 keeps everything),
      its head and the checkpoint it would restore from;
    - every checkpoint that holds a request still open, and every checkpoint a run was
      rehydrated from;
    - every row the kept ones are stored against (their bases), so each kept checkpoint
      restores exactly as before.

    Runs that are not finished are never touched. Each run is pruned in its own
    transaction with its row locked, so a resume racing the sweep either comes first (and
    the run is skipped) or finds the kept checkpoints intact. Each pruned run records the
    prune in its activity trail, by ``user`` (None: the scheduled sweep or a command).
    """
    keep = stepstone_settings.RETAIN_CHECKPOINTS if keep is None else keep
    if keep < 0:
        raise InvalidInput(f"keep: must be 0 (keep all) or more, got {keep}")
    report = PruneReport()
    if keep == 0:
        return report
    candidates = (Checkpoint.objects.filter(run__status__in=RunStatus.finished())
                  .order_by().values("run_id").annotate(count=Count("checkpoint_id"))
                  .filter(count__gt=keep).values_list("run_id", flat=True))
    for run_id in list(candidates):
        deleted, size = _prune_run(run_id, keep, dry_run, user)
        if deleted:
            report.runs += 1
            report.checkpoints += deleted
            report.bytes += size
    return report


@transaction.atomic
def _prune_run(run_id: Any, keep: int, dry_run: bool, user: Any) -> tuple[int, int]:
    run = _locked_run(run_id)
    if run.status not in RunStatus.finished():
        return 0, 0  # resumed since the sweep listed it
    rows = list(Checkpoint.objects.filter(run=run).order_by("created_at")
                .values_list("checkpoint_id", "base_id", "pending_request_count", "size_bytes"))
    kept = {row[0] for row in rows[-keep:]} | {run.head_checkpoint_id}
    kept |= set(Run.objects.filter(source_checkpoint__run=run)
                .values_list("source_checkpoint_id", flat=True))
    if run.requests.open().exists():
        kept |= {row[0] for row in rows if row[2]}
    bases = {row[0]: row[1] for row in rows}
    for checkpoint_id in list(kept):  # and what they are stored against
        while checkpoint_id is not None:
            kept.add(checkpoint_id)
            checkpoint_id = bases.get(checkpoint_id)
    doomed = [row for row in rows if row[0] not in kept]
    if doomed and not dry_run:
        # Newest first: a row is only ever the base of newer rows, which are gone by then.
        for start in range(len(doomed), 0, -500):
            batch = [row[0] for row in doomed[max(0, start - 500):start]]
            Checkpoint.objects.filter(pk__in=batch).delete()
        lifecycle.record_action(ActionKind.PRUNE, user, run=run, detail={
            "checkpoints": len(doomed), "bytes": sum(row[3] for row in doomed), "keep": keep})
    return len(doomed), sum(row[3] for row in doomed)


# --------------------------------------------------------------------------- export/import
def export_checkpoint(checkpoint_id: Any) -> dict[str, Any]:
    """A portable JSON document holding one checkpoint and what it needs to be checked."""
    row = Checkpoint.objects.filter(pk=str(checkpoint_id)).select_related("run__workflow").first()
    if row is None:
        raise NotFound(f"checkpoint {checkpoint_id} not found")
    try:
        body = row.decoded()
    except WorkflowCheckpointError as error:
        raise Conflict(f"checkpoint {checkpoint_id} cannot be exported: {error}") from None
    return {"format": EXPORT_FORMAT, "version": EXPORT_VERSION,
            "workflow": row.run.workflow.name, "graph_signature_hash": row.graph_signature_hash,
            "content_hash": _export_hash(body), "checkpoint": body}


def _export_hash(body: Any) -> str:
    """The SHA-256 an exported checkpoint carries: of its compact, ASCII-escaped JSON."""
    return hashlib.sha256(json.dumps(body, separators=(",", ":")).encode("ascii")).hexdigest()


@transaction.atomic
def import_checkpoint(document: Any, user: Any = None) -> Run:
    """Store an exported checkpoint as a new run that can be resumed or rehydrated.

    The run waits on the checkpoint's pending requests if it has any; otherwise it is
    stopped (cancelled) until an operator resumes or rehydrates it. Either way it is
    created by ``user`` and the import is in its activity trail.

    A checkpoint already stored here (an export imported into the installation that wrote
    it, or imported twice) is stored again, as a copy under a fresh id in the new run, once
    the stored one is found to hold the same content: so the new run owns its checkpoint
    like any imported run (it can be resumed from its own page and pruned on its own), and
    a checkpoint id keeps naming one content. The copy keeps its lineage: its
    ``previous_checkpoint_id`` is unchanged and its ``metadata["imported_from"]`` names the
    original. A document that reuses a stored id for other content is refused (Conflict).
    """
    if not isinstance(document, dict) or document.get("format") != EXPORT_FORMAT:
        raise InvalidInput(f"document: not a Stepstone checkpoint export "
                           f"(expected format {EXPORT_FORMAT!r})")
    # The checks every other input gets, on every part of the document, before anything
    # (hashing, decoding, storing, showing) recurses through it: what passes them, every
    # database can store and every page can show. The document itself is one level.
    for key, part in document.items():
        _storable(part, _path("", ((), str(key))).lstrip("."), level=1)
    if document.get("version") != EXPORT_VERSION:
        raise InvalidInput(f"version: unsupported export version {document.get('version')!r}")
    body = document.get("checkpoint")
    if not isinstance(body, dict):
        raise InvalidInput("checkpoint: missing or not an object")
    if _export_hash(body) != document.get("content_hash"):
        raise InvalidInput("content_hash: the checkpoint does not match its hash "
                           "(the document was altered)")
    name = document.get("workflow")
    row, definition = _registered_workflow(name if isinstance(name, str) else "")
    try:
        checkpoint = WorkflowCheckpoint.from_dict(body)
    except WorkflowCheckpointError as error:
        raise InvalidInput(f"checkpoint: {error}") from None
    _check_storable(checkpoint)
    if checkpoint.graph_signature_hash != definition.build().graph_signature_hash:
        raise Conflict(f"workflow '{name}' here has a different graph than the one that wrote "
                       f"this checkpoint")
    original_id, detail = checkpoint.checkpoint_id, None
    already = Checkpoint.objects.filter(pk=original_id).first()
    if already is not None:
        _check_same_content(already, document["content_hash"])
        checkpoint = replace(checkpoint, checkpoint_id=str(uuid.uuid4()),
                             metadata={**checkpoint.metadata, "imported_from": original_id})
        detail = {"stored_as": checkpoint.checkpoint_id, "source_run": str(already.run_id)}
    waiting = bool(checkpoint.pending_requests)
    run = lifecycle.create_run(
        row, action=ActionKind.IMPORT, user=user, current_superstep=checkpoint.superstep,
        status=RunStatus.WAITING if waiting else RunStatus.CANCELLED,
        error="" if waiting else "imported checkpoint: resume or rehydrate it to continue",
        checkpoint_id=original_id, detail=detail)
    stored = CheckpointWriter(run.pk).row(checkpoint, [])  # stored whole: a chain's start
    if already is None:
        stored.previous_id = None  # its parent lives in the other installation
    stored.save(force_insert=True)
    Run.objects.filter(pk=run.pk).update(head_checkpoint=stored)
    for rid, request in checkpoint.pending_requests.items():
        encoded = body["pending_requests"][rid]
        PendingRequest.objects.create(
            request_id=rid, run=run, source_executor_id=request["source_executor_id"],
            request_data=encoded.get("data"), response_type=encoded["response_type"],
            response_schema=json_schema(request["response_type"]))
    run.refresh_from_db()
    return run


def _check_same_content(stored: Checkpoint, content_hash: str) -> None:
    """Refuse a document whose checkpoint id is stored here with other content."""
    try:
        same = _export_hash(stored.decoded()) == content_hash
    except WorkflowCheckpointError as error:
        raise Conflict(f"checkpoint {stored.pk} is already stored here (run {stored.run_id}) "
                       f"but cannot be read to compare it with this document: {error}") from None
    if not same:
        raise Conflict(f"checkpoint {stored.pk} is already stored here (run {stored.run_id}) "
                       f"with different content: this document reuses its id for another "
                       f"checkpoint")


def _check_storable(checkpoint: WorkflowCheckpoint) -> None:
    """Refuse values a well-formed but hand-edited document (its hash recomputed) may hold
    and the checkpoint, run and request rows cannot."""
    id_length = Checkpoint._meta.get_field("checkpoint_id").max_length
    if not checkpoint.checkpoint_id or len(checkpoint.checkpoint_id) > id_length:
        raise InvalidInput(f"checkpoint.checkpoint_id: must have 1 to {id_length} characters")
    if not 0 <= checkpoint.superstep <= MAX_SUPERSTEP:
        raise InvalidInput(f"checkpoint.superstep: must be between 0 and {MAX_SUPERSTEP}, "
                           f"got {checkpoint.superstep}")
    try:
        aware = datetime.fromisoformat(checkpoint.timestamp).tzinfo is not None
    except ValueError:
        aware = False
    if not aware:
        raise InvalidInput(f"checkpoint.timestamp: {checkpoint.timestamp!r} is not an ISO 8601 "
                           f"date and time with a time zone")
    if checkpoint.metadata.get("kind", CheckpointKind.SUPERSTEP) not in CheckpointKind.values:
        raise InvalidInput(f"checkpoint.metadata.kind: must be one of "
                           f"{', '.join(CheckpointKind.values)}")
    id_length = PendingRequest._meta.get_field("request_id").max_length
    for rid, request in checkpoint.pending_requests.items():
        if not rid or len(rid) > id_length or len(request["source_executor_id"]) > id_length:
            raise InvalidInput(f"checkpoint.pending_requests: request ids and executor ids "
                               f"must have 1 to {id_length} characters")
