"""What the API returns (read-only model serializers) and what it accepts (input
serializers, checked before a service is called)."""

from rest_framework import serializers

from ..models import Checkpoint, PendingRequest, RegisteredWorkflow, Run, RunEvent


class WorkflowSerializer(serializers.ModelSerializer):
    class Meta:
        model = RegisteredWorkflow
        fields = ["name", "title", "description", "graph", "graph_signature_hash",
                  "input_schema", "is_registered"]


class RunSerializer(serializers.ModelSerializer):
    workflow = serializers.SlugRelatedField(slug_field="name", read_only=True)
    created_by = serializers.StringRelatedField()

    class Meta:
        model = Run
        fields = ["id", "workflow", "status", "input", "outputs", "error", "current_superstep",
                  "branch", "created_by", "created_at", "started_at", "finished_at", "parent_run",
                  "source_checkpoint", "head_checkpoint", "attempts", "cancel_requested"]


class CheckpointSerializer(serializers.ModelSerializer):
    class Meta:
        model = Checkpoint
        fields = ["checkpoint_id", "run", "workflow_name", "superstep", "branch", "kind",
                  "previous",
                  "graph_signature_hash", "size_bytes", "json_bytes", "content_hash",
                  "pending_request_count", "created_at"]


class CheckpointDetailSerializer(CheckpointSerializer):
    document = serializers.SerializerMethodField(help_text="the decoded checkpoint (JSON)")

    class Meta(CheckpointSerializer.Meta):
        fields = CheckpointSerializer.Meta.fields + ["document"]

    def get_document(self, checkpoint: Checkpoint) -> dict:
        return checkpoint.decoded()


class RequestSerializer(serializers.ModelSerializer):
    answered_by = serializers.StringRelatedField()

    class Meta:
        model = PendingRequest
        fields = ["id", "request_id", "run", "source_executor_id", "request_data",
                  "response_type", "response_schema", "status", "response", "answered_by",
                  "answered_at", "created_at"]


class EventSerializer(serializers.ModelSerializer):
    class Meta:
        model = RunEvent
        fields = ["seq", "type", "superstep", "branch", "executor_id", "data", "created_at"]


class StartRunInput(serializers.Serializer):
    input = serializers.JSONField(help_text="the start executor's input message")


class CheckpointInput(serializers.Serializer):
    checkpoint_id = serializers.CharField(max_length=64)


class ForkInput(serializers.Serializer):
    edits = serializers.ListField(
        child=serializers.JSONField(), allow_empty=False,
        help_text='the edits, each an object with an "op" (set_shared_state: key, value; '
                  'set_executor_state: executor_id, key, value; replace_executor_state: '
                  'executor_id, state; replace_message: index, data; remove_message: index)')


class RespondInput(serializers.Serializer):
    response = serializers.JSONField(help_text="the answer, of the request's response type")


class ImportInput(serializers.Serializer):
    """A checkpoint export, as ``GET /api/checkpoints/<id>/export/`` gives it."""

    format = serializers.CharField(help_text='always "stepstone.checkpoint"')
    version = serializers.IntegerField(help_text="the export format's version: 1")
    workflow = serializers.CharField(help_text="the name of the workflow that wrote it")
    graph_signature_hash = serializers.CharField(help_text="the graph it was written by")
    content_hash = serializers.CharField(help_text="SHA-256 of the checkpoint's compact JSON")
    checkpoint = serializers.DictField(help_text="the engine's checkpoint document")
