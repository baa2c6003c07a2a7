"""Edit-and-fork: a new checkpoint made from another by an operator's edits.

``edit_checkpoint`` applies edits (a shared-state key, an executor's state key or whole
state, a pending message replaced or removed) to a copy of a checkpoint and returns it as a
new checkpoint of kind ``edited`` whose ``previous_checkpoint_id`` is the source, with what
changed and who changed it in ``metadata["edit"]``. Restoring it (resume or rehydrate) runs
the edited state. Edits are validated all together before anything is returned: unknown
executors, keys and messages are refused by name, every value must be encodable, and a value
replacing one of a registered type (or a message's data) must be of the type it replaces.
"""

from __future__ import annotations

import copy
import datetime
import uuid
from dataclasses import dataclass, replace
from typing import Any, Sequence, Union

from .checkpoints import WorkflowCheckpoint
from .encoding import CheckpointEncodingError, encode_value, is_registered
from .errors import WorkflowCheckpointError
from .typing_utils import is_instance_of

KIND_EDITED = "edited"  # metadata["kind"] of a checkpoint made by edit_checkpoint


class CheckpointEditError(WorkflowCheckpointError):
    """Edits were refused; ``problems`` lists each one (the message joins them)."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@dataclass(frozen=True)
class SetSharedState:
    """Give an existing shared-state ``key`` a new ``value``."""

    key: str
    value: Any


@dataclass(frozen=True)
class SetExecutorState:
    """Give an existing ``key`` of executor ``executor_id``'s saved state a new ``value``."""

    executor_id: str
    key: str
    value: Any


@dataclass(frozen=True)
class ReplaceExecutorState:
    """Replace the whole saved state (a dict) of executor ``executor_id``."""

    executor_id: str
    state: dict[str, Any]


@dataclass(frozen=True)
class ReplaceMessage:
    """Replace the data of pending message number ``index`` (its source and target stay)."""

    index: int
    data: Any


@dataclass(frozen=True)
class RemoveMessage:
    """Drop pending message number ``index`` (numbered as in the source checkpoint)."""

    index: int


CheckpointEdit = Union[SetSharedState, SetExecutorState, ReplaceExecutorState, ReplaceMessage,
                       RemoveMessage]


def edit_checkpoint(source: WorkflowCheckpoint, edits: Sequence[CheckpointEdit], *,
                    author: str | None = None, workflow: Any = None) -> WorkflowCheckpoint:
    """A new checkpoint: ``source`` with ``edits`` applied (``source`` is left unchanged).

    The result has a fresh id, ``previous_checkpoint_id == source.checkpoint_id``, the same
    superstep and graph signature, and ``metadata`` with ``kind == "edited"`` and ``edit``:
    ``{"source": id, "author": author, "changes": [{"path", "before", "after"}]}`` (values
    encoded as in the checkpoint document; a removed message has no ``after``). Message
    indices name the source's messages, so several edits may refer to one list.

    With ``workflow`` (the definition the checkpoint will be restored into), its graph must
    be the checkpoint's, executors are checked against it and a replaced message's data must
    be accepted by its target. Raises ``CheckpointEditError`` listing every problem; nothing
    is returned then.
    """
    problems: list[str] = []
    changes: list[dict[str, Any]] = []
    if not edits:
        raise CheckpointEditError(["no edits given"])
    if workflow is not None and workflow.graph_signature_hash != source.graph_signature_hash:
        raise CheckpointEditError([f"checkpoint {source.checkpoint_id} was written by another "
                                   f"graph than workflow '{workflow.name}' has now"])
    shared = copy.deepcopy(source.shared_state)
    states = copy.deepcopy(source.executor_states)
    data = {index: message for index, message in enumerate(source.messages)}
    removed: set[int] = set()
    known = _executor_ids(source, workflow)
    for edit in edits:
        if isinstance(edit, SetSharedState):
            if edit.key not in shared:
                problems.append(f"shared state has no key '{edit.key}'")
            elif _check_value(edit.value, shared[edit.key], f"shared_state.{edit.key}", problems):
                changes.append(_change(f"shared_state.{edit.key}", shared[edit.key], edit.value))
                shared[edit.key] = edit.value
        elif isinstance(edit, SetExecutorState):
            where = f"executor_states.{edit.executor_id}.{edit.key}"
            if not _check_executor(edit.executor_id, known, problems):
                continue
            state = states.get(edit.executor_id, {})
            if edit.key not in state:
                problems.append(f"executor '{edit.executor_id}' state has no key '{edit.key}'")
            elif _check_value(edit.value, state[edit.key], where, problems):
                changes.append(_change(where, state[edit.key], edit.value))
                state[edit.key] = edit.value
        elif isinstance(edit, ReplaceExecutorState):
            where = f"executor_states.{edit.executor_id}"
            if not _check_executor(edit.executor_id, known, problems):
                continue
            if not isinstance(edit.state, dict) or not all(isinstance(k, str) for k in edit.state):
                problems.append(f"{where}: a state must be an object with text keys")
                continue
            before = states.get(edit.executor_id, {})
            typed_ok = all(_check_value(value, before[key], f"{where}.{key}", problems)
                           for key, value in edit.state.items() if key in before)
            if typed_ok and _encodes(edit.state, where, problems):
                changes.append(_change(where, before, edit.state))
                states[edit.executor_id] = copy.deepcopy(edit.state)
        elif isinstance(edit, (ReplaceMessage, RemoveMessage)):
            where = f"messages[{edit.index}]"
            if not isinstance(edit.index, int) or isinstance(edit.index, bool) \
                    or edit.index not in data:
                problems.append(f"there is no pending message {edit.index!r} "
                                f"(the checkpoint has {len(source.messages)})")
            elif edit.index in removed:
                problems.append(f"{where} is removed by an earlier edit")
            elif isinstance(edit, RemoveMessage):
                removed.add(edit.index)
                changes.append({"path": where, "before": _encoded(data[edit.index]["data"])})
            elif _check_message(edit.data, data[edit.index], where, workflow, problems):
                changes.append(_change(f"{where}.data", data[edit.index]["data"], edit.data))
                data[edit.index] = {**data[edit.index], "data": edit.data}
        else:
            problems.append(f"not an edit: {edit!r}")
    if problems:
        raise CheckpointEditError(problems)
    return replace(
        source,
        checkpoint_id=str(uuid.uuid4()),
        previous_checkpoint_id=source.checkpoint_id,
        timestamp=datetime.datetime.now(datetime.timezone.utc).isoformat(),
        messages=[copy.deepcopy(m) for i, m in data.items() if i not in removed],
        shared_state=shared,
        executor_states=states,
        pending_requests=copy.deepcopy(source.pending_requests),
        fan_in_buffers=copy.deepcopy(source.fan_in_buffers),
        metadata={**copy.deepcopy(source.metadata), "kind": KIND_EDITED,
                  "edit": {"source": source.checkpoint_id, "author": author,
                           "changes": changes}},
    )


def _executor_ids(source: WorkflowCheckpoint, workflow: Any) -> set[str]:
    """The executors of the graph: the workflow's, or those the signature records (as
    "id: type" lines), or at least those with saved state."""
    if workflow is not None:
        return set(workflow.executors)
    lines = (source.metadata.get("graph") or {}).get("executors") or ()
    return {line.rsplit(": ", 1)[0] for line in lines} | set(source.executor_states)


def _check_executor(executor_id: Any, known: set[str], problems: list[str]) -> bool:
    if executor_id not in known:
        problems.append(f"there is no executor '{executor_id}' in this workflow")
        return False
    return True


def _check_value(value: Any, current: Any, where: str, problems: list[str]) -> bool:
    """A replacement for a value of a registered type must be of that type (the restored
    executor or handler relies on it); any value must be encodable."""
    cls = type(current)
    if is_registered(cls) and not isinstance(value, cls):
        problems.append(f"{where}: must be a {cls.__qualname__}, got {type(value).__name__}")
        return False
    return _encodes(value, where, problems)


def _check_message(value: Any, message: dict[str, Any], where: str, workflow: Any,
                   problems: list[str]) -> bool:
    """The data of a response in flight must be of the request's response type; other data
    of the type it replaces if that is registered, and accepted by the target when known."""
    request = message.get("request")
    if request is not None:
        if not is_instance_of(value, request["response_type"]):
            problems.append(f"{where}: the response to request '{request['request_id']}' must "
                            f"be of its response type, got {type(value).__name__}")
            return False
        return _encodes(value, where, problems)
    if not _check_value(value, message["data"], where, problems):
        return False
    target = workflow.executors.get(message["target_id"]) if workflow is not None else None
    if target is not None and not target.can_handle(value):
        problems.append(f"{where}: executor '{message['target_id']}' has no handler for "
                        f"{type(value).__name__}")
        return False
    return True


def _encodes(value: Any, where: str, problems: list[str]) -> bool:
    try:
        encode_value(value)
    except CheckpointEncodingError as error:
        problems.append(str(error.located(where)))
        return False
    return True


def _encoded(value: Any) -> Any:
    return encode_value(value)


def _change(path: str, before: Any, after: Any) -> dict[str, Any]:
    return {"path": path, "before": _encoded(before), "after": _encoded(after)}
