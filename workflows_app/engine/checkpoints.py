"""``WorkflowCheckpoint``: the whole state of a run at a superstep boundary, and its
portable JSON form.

In memory a checkpoint holds Python values; ``to_dict()`` encodes it into a JSON-native
document (see ``encoding.py``) and ``from_dict()`` decodes one, validating its shape.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .encoding import (CheckpointEncodingError, decode_type, decode_value, encode_type,
                       encode_value)
from .errors import WorkflowCheckpointError

CHECKPOINT_VERSION = "1"

# metadata["kind"] of each checkpoint
KIND_ENTRY = "entry"  # superstep 0, holds the run's input
KIND_SUPERSTEP = "superstep"  # written at the end of a superstep
KIND_RESPONSE = "response"  # written when responses are delivered


@dataclass
class WorkflowCheckpoint:
    """The state of a run at a superstep boundary.

    ``messages`` are the deliveries pending for the next superstep, each a dict with
    ``source_id``, ``target_id``, ``data`` (and ``request`` for a response in flight).
    ``pending_requests`` maps request ids to dicts with ``request_id``,
    ``source_executor_id``, ``data`` and ``response_type`` (and ``origin_executor_id`` for
    a request made inside a sub-workflow: the inner executor's path). ``fan_in_buffers`` maps each
    fan-in group to the messages it holds per source. ``metadata`` has ``kind`` (entry,
    superstep or response) and ``graph`` (the signature the hash was computed from).
    """

    checkpoint_id: str
    workflow_name: str
    graph_signature_hash: str
    previous_checkpoint_id: str | None
    timestamp: str
    superstep: int
    messages: list[dict[str, Any]] = field(default_factory=list)
    shared_state: dict[str, Any] = field(default_factory=dict)
    executor_states: dict[str, dict[str, Any]] = field(default_factory=dict)
    pending_requests: dict[str, dict[str, Any]] = field(default_factory=dict)
    fan_in_buffers: dict[str, dict[str, list[Any]]] = field(default_factory=dict)
    metadata: dict[str, Any] = field(default_factory=dict)
    version: str = CHECKPOINT_VERSION

    @property
    def kind(self) -> str | None:
        return self.metadata.get("kind")

    def to_dict(self) -> dict[str, Any]:
        """Encode as JSON natives. Raises ``WorkflowCheckpointError`` naming the executor and
        key (or message, request, shared-state key) that holds an unencodable value."""
        return {
            "checkpoint_id": self.checkpoint_id,
            "workflow_name": self.workflow_name,
            "graph_signature_hash": self.graph_signature_hash,
            "previous_checkpoint_id": self.previous_checkpoint_id,
            "timestamp": self.timestamp,
            "superstep": self.superstep,
            "messages": [_encode_message(m) for m in self.messages],
            "shared_state": _encode_in(self.shared_state, "shared state"),
            "executor_states": {eid: _encode_in(state, f"executor '{eid}' state")
                                for eid, state in self.executor_states.items()},
            "pending_requests": {rid: _encode_request(r) for rid, r in self.pending_requests.items()},
            "fan_in_buffers": _encode_in(self.fan_in_buffers, "fan-in buffers"),
            "metadata": _encode_in(self.metadata, "checkpoint metadata"),
            "version": self.version,
        }

    @classmethod
    def from_dict(cls, document: Any) -> "WorkflowCheckpoint":
        """Decode a document made by ``to_dict``; raises ``WorkflowCheckpointError`` if it is
        malformed, of an unknown version, or refers to unregistered types."""
        if not isinstance(document, dict):
            raise WorkflowCheckpointError("a checkpoint document must be a JSON object")
        _check_shape(document)
        if str(document["version"]).split(".")[0] != CHECKPOINT_VERSION:
            raise WorkflowCheckpointError(
                f"checkpoint version {document['version']!r} is not supported "
                f"(this engine reads version {CHECKPOINT_VERSION})")
        try:
            return cls._decode(document)
        except WorkflowCheckpointError:
            raise
        except (KeyError, TypeError, ValueError, AttributeError) as error:
            raise WorkflowCheckpointError(
                f"checkpoint {document.get('checkpoint_id')!r} is malformed: "
                f"{type(error).__name__}: {error}") from None

    @classmethod
    def _decode(cls, document: dict[str, Any]) -> "WorkflowCheckpoint":
        return cls(
            checkpoint_id=document["checkpoint_id"],
            workflow_name=document["workflow_name"],
            graph_signature_hash=document["graph_signature_hash"],
            previous_checkpoint_id=document["previous_checkpoint_id"],
            timestamp=document["timestamp"],
            superstep=document["superstep"],
            messages=[_decode_message(m) for m in document["messages"]],
            shared_state=_decode_object(document["shared_state"], "shared state"),
            executor_states={eid: _decode_object(s, f"state of executor '{eid}'")
                             for eid, s in document["executor_states"].items()},
            pending_requests={rid: _decode_request(r)
                              for rid, r in document["pending_requests"].items()},
            fan_in_buffers=_decode_fan_in_buffers(document["fan_in_buffers"]),
            metadata=_decode_object(document["metadata"], "metadata"),
            version=document["version"],
        )


_SHAPE: dict[str, tuple[type, ...]] = {
    "checkpoint_id": (str,), "workflow_name": (str,), "graph_signature_hash": (str,),
    "previous_checkpoint_id": (str, type(None)), "timestamp": (str,), "superstep": (int,),
    "messages": (list,), "shared_state": (dict,), "executor_states": (dict,),
    "pending_requests": (dict,), "fan_in_buffers": (dict,), "metadata": (dict,),
    "version": (str,),
}


def _check_shape(document: dict) -> None:
    for key, types in _SHAPE.items():
        if key not in document:
            raise WorkflowCheckpointError(f"checkpoint document has no '{key}' field")
        value = document[key]
        if not isinstance(value, types) or (types == (int,) and isinstance(value, bool)):
            raise WorkflowCheckpointError(
                f"checkpoint field '{key}' must be {' or '.join(t.__name__ for t in types)}, "
                f"got {type(value).__name__}")
    for message in document["messages"]:
        if not isinstance(message, dict) or not isinstance(message.get("target_id"), str):
            raise WorkflowCheckpointError("checkpoint messages must be objects with a 'target_id'")
    for rid, record in document["pending_requests"].items():
        if not isinstance(record, dict) or not isinstance(record.get("source_executor_id"), str):
            raise WorkflowCheckpointError(f"pending request {rid!r} is malformed")


def _decode_object(value: Any, where: str) -> dict[str, Any]:
    """Decode a value the run uses as a dict; a tampered one must fail here, not mid-restore."""
    decoded = decode_value(value)
    if not isinstance(decoded, dict):
        raise WorkflowCheckpointError(
            f"checkpoint {where} must be an object, got {type(decoded).__name__}")
    return decoded


def _decode_fan_in_buffers(value: Any) -> dict[str, dict[str, list[Any]]]:
    buffers = _decode_object(value, "fan-in buffers")
    for group_id, per_source in buffers.items():
        if not isinstance(per_source, dict) or not all(
                isinstance(items, list) for items in per_source.values()):
            raise WorkflowCheckpointError(f"checkpoint fan-in buffer {group_id!r} is malformed")
    return buffers


def _encode_in(value: Any, where: str) -> Any:
    try:
        return encode_value(value)
    except CheckpointEncodingError as error:
        raise error.located(where) from None


def _encode_request(record: dict[str, Any]) -> dict[str, Any]:
    rid = record["request_id"]
    try:
        response_type = encode_type(record["response_type"])
    except CheckpointEncodingError as error:
        raise error.located(f"the response type of request '{rid}'") from None
    encoded = {"request_id": rid, "source_executor_id": record["source_executor_id"],
               "data": _encode_in(record["data"], f"request '{rid}' data"),
               "response_type": response_type}
    if record.get("origin_executor_id") is not None:  # only a sub-workflow's requests
        encoded["origin_executor_id"] = record["origin_executor_id"]
    return encoded


def _decode_request(record: dict[str, Any]) -> dict[str, Any]:
    decoded = {"request_id": record["request_id"],
               "source_executor_id": record["source_executor_id"],
               "data": decode_value(record.get("data")),
               "response_type": decode_type(record.get("response_type"))}
    if isinstance(record.get("origin_executor_id"), str):
        decoded["origin_executor_id"] = record["origin_executor_id"]
    return decoded


def _encode_message(message: dict[str, Any]) -> dict[str, Any]:
    where = f"message from '{message['source_id']}' to '{message['target_id']}'"
    encoded = {"source_id": message["source_id"], "target_id": message["target_id"],
               "data": _encode_in(message["data"], where)}
    if "request" in message:
        encoded["request"] = _encode_request(message["request"])
    return encoded


def _decode_message(message: dict[str, Any]) -> dict[str, Any]:
    decoded = {"source_id": message.get("source_id"), "target_id": message["target_id"],
               "data": decode_value(message.get("data"))}
    if message.get("request") is not None:
        decoded["request"] = _decode_request(message["request"])
    return decoded
