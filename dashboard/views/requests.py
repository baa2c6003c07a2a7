"""The Requests inbox (every open request across runs) and answering a request."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from workflows_app import permissions, services
from workflows_app.models import PendingRequest

from ..access import require
from ..request_items import request_item, response_form
from . import run_page


@login_required
def requests_inbox(request, bound: dict | None = None, status: int = 200):
    """Every open request across runs, newest first, each with its form."""
    require(request, permissions.can_view)
    return render(request, "dashboard/requests.html", _inbox_context(request, bound),
                  status=status)


@login_required
def requests_list(request):
    """The inbox's list of requests alone, for the page to add and remove requests live."""
    require(request, permissions.can_view)
    return render(request, "dashboard/_requests_list.html", _inbox_context(request))


def _inbox_context(request, bound: dict | None = None) -> dict:
    pending = PendingRequest.objects.open().select_related("run__workflow").order_by(
        "-created_at")
    return {"requests": [request_item(r, (bound or {}).get(r.pk)) for r in pending],
            "can_approve": permissions.can_approve(request.user)}


@login_required
@require_POST
def respond(request, request_pk):
    """Answer a request from its generated form; errors show on the form."""
    require(request, permissions.can_approve)
    pending = get_object_or_404(PendingRequest.objects.select_related("run"), pk=request_pk)
    form = response_form(pending, request.POST)
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
    return run_page.render_run_page(request, run_page.get_run(pending.run_id),
                                    bound={pending.pk: form}, status=400)


def _back(request, next_url: str, pending: PendingRequest):
    if next_url and url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
        return redirect(next_url)
    return redirect("dashboard:run", run_id=pending.run_id)
