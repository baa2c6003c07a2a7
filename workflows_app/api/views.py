"""The REST API: the same resources and actions as the dashboard, through the services.

Reading needs the view role, runs actions the operate role, answering the approve role;
refusals are 403. Bad input is 400, unknown objects 404, conflicts with the current state
409, each with a ``detail`` that names the problem (see ``exceptions.py``).
"""

from __future__ import annotations

from django.shortcuts import get_object_or_404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import mixins, status, viewsets
from rest_framework.decorators import action
from rest_framework.response import Response

from .. import services
from ..engine import WorkflowCheckpointError
from ..models import Checkpoint, PendingRequest, RegisteredWorkflow, Run, RunEvent
from ..querysets import parse_seq
from ..states import RequestStatus, RunStatus
from . import serializers as s
from .parsers import JSONParser
from .permissions import CanApprove, CanOperate, CanView

EVENTS_PAGE = 500


def _valid(serializer_class, request):
    serializer = serializer_class(data=request.data)
    serializer.is_valid(raise_exception=True)
    return serializer.validated_data


class WorkflowViewSet(viewsets.ReadOnlyModelViewSet):
    """Registered workflows with their graph and input schema."""

    queryset = RegisteredWorkflow.objects.filter(is_registered=True).order_by("name")
    serializer_class = s.WorkflowSerializer
    permission_classes = [CanView]
    lookup_field = "name"

    @extend_schema(request=s.StartRunInput, responses={201: s.RunSerializer})
    @action(detail=True, methods=["post"], url_path="runs", permission_classes=[CanOperate])
    def start(self, request, name=None):
        """Start a run; ``input`` is checked against the start executor's input type."""
        data = _valid(s.StartRunInput, request)
        run = services.start_run(name, data["input"], request.user)
        return Response(s.RunSerializer(run).data, status=status.HTTP_201_CREATED)


class RunViewSet(viewsets.ReadOnlyModelViewSet):
    """Runs, newest first; filter with ``?status=`` and ``?workflow=``."""

    serializer_class = s.RunSerializer
    permission_classes = [CanView]

    def get_queryset(self):
        params = self.request.query_params
        return Run.objects.filter_by(status=params.get("status"), workflow=params.get("workflow"))

    @extend_schema(parameters=[
        OpenApiParameter("status", str, enum=RunStatus.values, description="only runs in this status"),
        OpenApiParameter("workflow", str, description="only runs of this workflow")])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(parameters=[OpenApiParameter("after", int, description="events after this seq")],
                   responses=s.EventSerializer(many=True))
    @action(detail=True, methods=["get"])
    def events(self, request, pk=None):
        """The run's events after ``?after=<seq>``, in order, at most 500 per call."""
        run = self.get_object()
        after = parse_seq(request.query_params.get("after", 0))
        if after is None:
            raise services.InvalidInput("after: must be a non-negative integer seq")
        events = RunEvent.objects.filter(run=run).after(after)[:EVENTS_PAGE]
        return Response(s.EventSerializer(events, many=True).data)

    @extend_schema(responses=s.CheckpointSerializer(many=True))
    @action(detail=True, methods=["get"])
    def checkpoints(self, request, pk=None):
        """The run's checkpoints, oldest first."""
        run = self.get_object()
        page = self.paginate_queryset(run.checkpoints.order_by("created_at"))
        return self.get_paginated_response(s.CheckpointSerializer(page, many=True).data)

    @extend_schema(request=s.CheckpointInput, responses={200: s.RunSerializer})
    @action(detail=True, methods=["post"], permission_classes=[CanOperate])
    def resume(self, request, pk=None):
        """This run continues from one of its checkpoints (409 while it runs)."""
        data = _valid(s.CheckpointInput, request)
        run = services.resume_run(self._run_id(pk), data["checkpoint_id"], request.user)
        return Response(s.RunSerializer(run).data)

    @extend_schema(request=s.CheckpointInput, responses={201: s.RunSerializer})
    @action(detail=True, methods=["post"], permission_classes=[CanOperate])
    def rehydrate(self, request, pk=None):
        """A new run from one of this run's checkpoints."""
        data = _valid(s.CheckpointInput, request)
        run = services.rehydrate_run(self._run_id(pk), data["checkpoint_id"], request.user)
        return Response(s.RunSerializer(run).data, status=status.HTTP_201_CREATED)

    @extend_schema(request=None, responses={200: s.RunSerializer})
    @action(detail=True, methods=["post"], permission_classes=[CanOperate])
    def cancel(self, request, pk=None):
        """Stop the run (at its next checkpoint if a worker is running it)."""
        return Response(s.RunSerializer(services.cancel_run(self._run_id(pk), request.user)).data)

    def _run_id(self, pk):
        return self.get_object().pk  # 404 for a malformed or unknown id


class CheckpointViewSet(mixins.RetrieveModelMixin, viewsets.GenericViewSet):
    """Checkpoints: decoded state, diff to the previous one, export and import."""

    queryset = Checkpoint.objects.all()
    serializer_class = s.CheckpointDetailSerializer
    permission_classes = [CanView]
    lookup_value_regex = "[^/]+"

    def retrieve(self, request, *args, **kwargs):
        checkpoint = self.get_object()
        try:
            return Response(self.get_serializer(checkpoint).data)
        except WorkflowCheckpointError as error:  # names the corrupt row
            raise services.Conflict(str(error)) from None

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def diff(self, request, pk=None):
        """What changed since the previous checkpoint."""
        checkpoint = self.get_object()
        previous = checkpoint.previous_checkpoint()
        try:
            changes = checkpoint.diff_to(previous)
        except WorkflowCheckpointError as error:  # names the corrupt row
            raise services.Conflict(str(error)) from None
        return Response({"checkpoint_id": checkpoint.pk,
                         "previous_checkpoint_id": previous.pk if previous else None,
                         "changes": changes})

    @extend_schema(responses=OpenApiTypes.OBJECT)
    @action(detail=True, methods=["get"])
    def export(self, request, pk=None):
        """A portable document; ``POST /api/checkpoints/import/`` reads it anywhere."""
        return Response(services.export_checkpoint(self.get_object().pk))

    @extend_schema(request=s.ForkInput, responses={201: s.RunSerializer})
    @action(detail=True, methods=["post"], permission_classes=[CanOperate],
            serializer_class=s.ForkInput, parser_classes=[JSONParser])
    def fork(self, request, pk=None):
        """Edit-and-fork: a new run from an edited copy of this checkpoint (kind
        ``edited``); refused edits are 400 and change nothing."""
        data = _valid(s.ForkInput, request)
        run = services.fork_checkpoint(self.get_object().pk, data["edits"], request.user)
        return Response(s.RunSerializer(run).data, status=status.HTTP_201_CREATED)

    # The document is JSON only, and the browsable API's form is the document's (not the
    # Checkpoint model's): it offers the raw JSON form, pre-filled with the export's fields.
    @extend_schema(request=s.ImportInput, responses={201: s.RunSerializer})
    @action(detail=False, methods=["post"], url_path="import", permission_classes=[CanOperate],
            serializer_class=s.ImportInput, parser_classes=[JSONParser])
    def import_document(self, request):
        """Store an exported checkpoint as a new run (waiting if it has open requests). A
        checkpoint already stored here is imported as a copy under a fresh id; a document
        that reuses a stored id for other content is 409."""
        _valid(s.ImportInput, request)
        run = services.import_checkpoint(request.data, request.user)
        return Response(s.RunSerializer(run).data, status=status.HTTP_201_CREATED)


class RequestViewSet(viewsets.ReadOnlyModelViewSet):
    """Requests runs wait on, newest first; filter with ``?status=open``."""

    serializer_class = s.RequestSerializer
    permission_classes = [CanView]

    def get_queryset(self):
        requests = PendingRequest.objects.select_related("answered_by").order_by("-created_at")
        if value := self.request.query_params.get("status"):
            requests = requests.filter(status=value)
        return requests

    @extend_schema(parameters=[OpenApiParameter("status", str, enum=RequestStatus.values)])
    def list(self, request, *args, **kwargs):
        return super().list(request, *args, **kwargs)

    @extend_schema(request=s.RespondInput, responses={200: s.RequestSerializer})
    @action(detail=True, methods=["post"], permission_classes=[CanApprove])
    def respond(self, request, pk=None):
        """Answer the request (409 if it was answered already); the run continues."""
        data = _valid(s.RespondInput, request)
        pending = get_object_or_404(PendingRequest, pk=self.get_object().pk)
        answered = services.respond(pending.pk, data["response"], request.user)
        return Response(s.RequestSerializer(answered).data)
