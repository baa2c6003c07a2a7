"""The Django admin: an audit view of workflows, runs, checkpoints, requests and events.

Everything is read-only here; the actions (resume, rehydrate, export, cancel) call
``services`` like every other entry point. The activity trail (``OperatorAction``) is
searchable by user, kind and run.
"""

from __future__ import annotations

import json
import uuid

from django.contrib import admin, messages
from django.http import HttpResponse, HttpResponseRedirect
from django.urls import reverse
from django.utils.html import format_html, format_html_join

from . import permissions, services
from .display import json_text, readable
from .engine import WorkflowCheckpointError
from .models import (Checkpoint, OperatorAction, PendingRequest, RegisteredWorkflow, Run,
                     RunBranch, RunEvent)


def _pretty(value) -> str:
    """A stored value as the admin shows it: any value, whatever it holds (``readable``);
    styled by admin.css (the site's Content-Security-Policy allows no style attribute)."""
    return format_html('<pre class="stored-json">{}</pre>',
                       json.dumps(readable(value), indent=2, ensure_ascii=False, sort_keys=True))


def _link(obj, label=None):
    if obj is None:
        return "–"
    url = reverse(f"admin:{obj._meta.app_label}_{obj._meta.model_name}_change", args=[obj.pk])
    return format_html('<a href="{}">{}</a>', url, label or str(obj))


class ReadOnlyAdmin(admin.ModelAdmin):
    """Rows are written by services and workers only. Actions that change runs need the
    operate permission (``workflows_app.permissions``), as in the dashboard."""

    class Media:
        css = {"all": ["dashboard/admin.css"]}

    def has_operate_permission(self, request) -> bool:
        return permissions.can_operate(request.user)

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False

    def has_delete_permission(self, request, obj=None):
        return False


class ReadOnlyInline(admin.TabularInline):
    extra = 0
    can_delete = False
    show_change_link = False  # branches and requests are read here, not on pages of their own

    def has_add_permission(self, request, obj=None):
        return False

    def has_change_permission(self, request, obj=None):
        return False


@admin.register(RegisteredWorkflow)
class RegisteredWorkflowAdmin(ReadOnlyAdmin):
    list_display = ("name", "title", "is_registered", "graph_signature_hash", "synced_at")
    list_filter = ("is_registered",)
    search_fields = ("name", "title")
    readonly_fields = ("name", "title", "description", "is_registered", "graph_signature_hash",
                       "graph_json", "input_schema_json", "synced_at")
    exclude = ("graph", "input_schema")

    @admin.display(description="graph")
    def graph_json(self, obj):
        return _pretty(obj.graph)

    @admin.display(description="input schema")
    def input_schema_json(self, obj):
        return _pretty(obj.input_schema)


class RunFilter(admin.SimpleListFilter):
    """Filter by run: offers the newest runs, and accepts any run id in the URL (the run
    page links here), without listing every run in the sidebar."""

    title = "run"
    parameter_name = "run"

    def lookups(self, request, model_admin):
        recent = Run.objects.select_related("workflow").order_by("-created_at")[:15]
        return [(str(run.pk), str(run)) for run in recent]

    def queryset(self, request, queryset):
        value = self.value()
        if not value:
            return queryset
        try:
            return queryset.filter(run_id=uuid.UUID(value))
        except ValueError:
            return queryset.none()


def _run_filtered(model, run, label):
    url = reverse(f"admin:workflows_app_{model._meta.model_name}_changelist")
    count = model.objects.filter(run=run).count()
    return format_html('<a href="{}?run={}">{} {}</a>', url, run.pk, count, label)


class RequestInline(ReadOnlyInline):
    model = PendingRequest
    fields = ("request_id", "source_executor_id", "status", "answered_by", "answered_at")
    readonly_fields = fields


class BranchInline(ReadOnlyInline):
    """A run's branches: each resume started one (a run resumed thousands of times is not
    what runs do; checkpoints and events, which do grow, are linked lists instead)."""

    model = RunBranch
    fields = ("number", "parent", "from_checkpoint_id", "from_superstep", "kept_seq",
              "first_seq", "action", "created_at")
    readonly_fields = fields


@admin.register(Run)
class RunAdmin(ReadOnlyAdmin):
    list_display = ("id", "workflow", "status", "current_superstep", "branch", "created_by",
                    "created_at", "parent_link")
    list_filter = ("status", "workflow", "created_at")
    search_fields = ("id",)
    date_hierarchy = "created_at"
    readonly_fields = ("id", "workflow", "status", "input_json", "outputs_json", "error",
                       "current_superstep", "branch", "created_by", "created_at", "started_at",
                       "finished_at", "parent_link", "source_link", "head_link",
                       "checkpoints_link", "events_link", "cancel_requested", "lease_owner",
                       "lease_expires_at", "attempts")
    exclude = ("input", "outputs", "parent_run", "source_checkpoint", "head_checkpoint")
    # Checkpoints and events can number thousands: linked, filtered lists, not inlines.
    inlines = [BranchInline, RequestInline]

    @admin.display(description="checkpoints")
    def checkpoints_link(self, obj):
        return _run_filtered(Checkpoint, obj, "checkpoints")

    @admin.display(description="events")
    def events_link(self, obj):
        return _run_filtered(RunEvent, obj, "events")
    actions = ["cancel_runs"]

    @admin.display(description="input")
    def input_json(self, obj):
        return _pretty(obj.input)

    @admin.display(description="outputs")
    def outputs_json(self, obj):
        return _pretty(obj.outputs)

    @admin.display(description="parent run")
    def parent_link(self, obj):
        return _link(obj.parent_run)

    @admin.display(description="rehydrated from")
    def source_link(self, obj):
        return _link(obj.source_checkpoint)

    @admin.display(description="head checkpoint")
    def head_link(self, obj):
        return _link(obj.head_checkpoint)

    @admin.action(description="Cancel the selected runs", permissions=["operate"])
    def cancel_runs(self, request, queryset):
        for run in queryset:
            try:
                services.cancel_run(run.pk, request.user)
            except services.ServiceError as error:
                self.message_user(request, str(error), messages.WARNING)


@admin.register(Checkpoint)
class CheckpointAdmin(ReadOnlyAdmin):
    list_display = ("checkpoint_id", "run_link", "workflow_name", "superstep", "branch", "kind",
                    "created_at", "size_bytes", "pending_request_count")
    list_filter = ("workflow_name", RunFilter, "kind", "branch", "created_at")
    search_fields = ("checkpoint_id",)
    date_hierarchy = "created_at"
    list_select_related = ("run",)
    readonly_fields = ("checkpoint_id", "run_link", "workflow_name", "superstep", "branch",
                       "kind", "previous_link", "next_links", "graph_signature_hash", "stored_as",
                       "size_bytes", "json_bytes", "content_hash", "created_at",
                       "diff_to_previous", "decoded_document", "edit_and_fork")
    exclude = ("document", "run", "previous", "base", "chain_position")
    actions = ["resume_from", "rehydrate_from", "fork_from", "export"]

    # Checkpoints are read-only here: editing one is the dashboard's edit-and-fork page,
    # whose form checks each value against its type and starts the new run.
    @admin.display(description="edit and fork")
    def edit_and_fork(self, obj):
        return format_html('<a href="{}">Edit this state and fork a new run from it</a>',
                           reverse("dashboard:checkpoint-fork", args=[obj.pk]))

    @admin.display(description="run")
    def run_link(self, obj):
        return _link(obj.run)

    @admin.display(description="previous checkpoint")
    def previous_link(self, obj):
        previous = obj.previous_checkpoint()
        return _link(previous) if previous else (obj.previous_id or "–")

    @admin.display(description="next checkpoints")
    def next_links(self, obj):
        following = Checkpoint.objects.filter(previous_id=obj.pk)
        return format_html_join(", ", "{}", ((_link(c),) for c in following)) or "–"

    @admin.display(description="stored as")
    def stored_as(self, obj):
        if obj.base_id is None:
            return "the whole record"
        base = Checkpoint.objects.filter(pk=obj.base_id).first()
        return format_html("a delta against {} (position {} of its writer's chain)",
                           _link(base) if base else obj.base_id, obj.chain_position)

    @admin.display(description="checkpoint (decoded JSON)")
    def decoded_document(self, obj):
        try:
            return _pretty(obj.decoded())
        except WorkflowCheckpointError as error:  # names the corrupt row
            return str(error)

    @admin.display(description="diff to previous")
    def diff_to_previous(self, obj):
        try:
            return _pretty(obj.diff_to(obj.previous_checkpoint()))
        except WorkflowCheckpointError as error:  # names the corrupt row
            return str(error)

    def _one(self, request, queryset):
        if queryset.count() != 1:
            self.message_user(request, "Select exactly one checkpoint.", messages.WARNING)
            return None
        return queryset.get()

    @admin.action(description="Resume its run from this checkpoint", permissions=["operate"])
    def resume_from(self, request, queryset):
        checkpoint = self._one(request, queryset)
        if checkpoint is None:
            return
        try:
            services.resume_run(checkpoint.run_id, checkpoint.pk, request.user)
            self.message_user(request, f"Run {checkpoint.run_id} resumes from superstep "
                                       f"{checkpoint.superstep}.")
        except services.ServiceError as error:
            self.message_user(request, str(error), messages.ERROR)

    @admin.action(description="Rehydrate a new run from this checkpoint",
                  permissions=["operate"])
    def rehydrate_from(self, request, queryset):
        checkpoint = self._one(request, queryset)
        if checkpoint is None:
            return
        try:
            run = services.rehydrate_run(checkpoint.run_id, checkpoint.pk, request.user)
            self.message_user(request, format_html("Rehydrated into run {}.", _link(run)))
        except services.ServiceError as error:
            self.message_user(request, str(error), messages.ERROR)

    @admin.action(description="Edit and fork a new run from this checkpoint",
                  permissions=["operate"])
    def fork_from(self, request, queryset):
        checkpoint = self._one(request, queryset)
        if checkpoint is None:
            return None
        return HttpResponseRedirect(reverse("dashboard:checkpoint-fork", args=[checkpoint.pk]))

    @admin.action(description="Export this checkpoint as JSON", permissions=["view"])
    def export(self, request, queryset):
        checkpoint = self._one(request, queryset)
        if checkpoint is None:
            return None
        document = services.export_checkpoint(checkpoint.pk)
        response = HttpResponse(json_text(document, indent=2), content_type="application/json")
        response["Content-Disposition"] = f'attachment; filename="checkpoint-{checkpoint.pk}.json"'
        return response


@admin.register(PendingRequest)
class PendingRequestAdmin(ReadOnlyAdmin):
    list_display = ("request_id", "run", "source_executor_id", "status", "answered_by",
                    "answered_at", "created_at")
    list_filter = ("status", RunFilter, "created_at")
    search_fields = ("request_id",)
    readonly_fields = ("request_id", "run", "source_executor_id", "status", "request_json",
                       "response_json", "delivered", "answered_by", "answered_at", "created_at")
    exclude = ("request_data", "response", "response_type", "response_schema")

    @admin.display(description="request")
    def request_json(self, obj):
        return _pretty(obj.request_data)

    @admin.display(description="response")
    def response_json(self, obj):
        return _pretty(obj.response)


@admin.register(RunEvent)
class RunEventAdmin(ReadOnlyAdmin):
    list_display = ("run", "seq", "type", "superstep", "branch", "executor_id", "created_at")
    list_filter = (RunFilter, "type", "branch")
    list_select_related = ("run__workflow",)


@admin.register(OperatorAction)
class OperatorActionAdmin(ReadOnlyAdmin):
    """The activity trail: who did what to which run, and when."""

    list_display = ("created_at", "kind", "username", "run_link", "checkpoint_id")
    list_filter = ("kind", RunFilter, "created_at")
    search_fields = ("username", "checkpoint_id")
    date_hierarchy = "created_at"
    list_select_related = ("run__workflow",)
    readonly_fields = ("created_at", "kind", "user", "username", "run_link", "checkpoint_id",
                       "request", "detail_json")
    exclude = ("run", "detail")

    @admin.display(description="run")
    def run_link(self, obj):
        return _link(obj.run)

    @admin.display(description="detail")
    def detail_json(self, obj):
        return _pretty(obj.detail)
