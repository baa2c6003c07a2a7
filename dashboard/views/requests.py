"""The Requests inbox (every open request across runs) and answering a request."""

from __future__ import annotations

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import get_object_or_404, redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from workflows_app import permissions, services
from workflows_app.models import PendingRequest

from ..access import require
from ..request_items import (keep_refused_answer, refused_answers, request_item,
                             response_form)


@login_required
def requests_inbox(request):
    """Every open request across runs, newest first, each with its form (as it was
    submitted, with its errors, for an answer just refused)."""
    require(request, permissions.can_view)
    return render(request, "dashboard/requests.html", _inbox_context(request, restore=True))


@login_required
def requests_list(request):
    """The inbox's list of requests alone, for the page to add and remove requests live."""
    require(request, permissions.can_view)
    return render(request, "dashboard/_requests_list.html", _inbox_context(request))


def _inbox_context(request, restore: bool = False) -> dict:
    pending = list(PendingRequest.objects.open().select_related("run__workflow").order_by(
        "-created_at"))
    bound = refused_answers(request.session, pending) if restore else {}
    return {"requests": [request_item(r, bound.get(r.pk)) for r in pending],
            "can_approve": permissions.can_approve(request.user)}


@login_required
@require_POST
def respond(request, request_pk):
    """Answer a request from its generated form. Whatever happens, the browser goes back to
    the page it came from (post/redirect/get); a refused answer is shown there on its form,
    with its errors."""
    require(request, permissions.can_approve)
    pending = get_object_or_404(PendingRequest.objects.select_related("run"), pk=request_pk)
    form = response_form(pending, request.POST)
    next_url = request.POST.get("next", "")
    if form.is_valid():
        try:
            services.respond(pending.pk, form.to_json(), request.user)
        except services.ServiceError as error:
            if isinstance(error, services.Conflict):  # answered or gone meanwhile
                messages.error(request, str(error))
                return _back(request, next_url, pending)
            form.add_error(None, str(error))
        else:
            messages.success(request, "Answer recorded; the run continues.")
            return _back(request, next_url, pending)
    keep_refused_answer(request.session, pending, form)
    messages.error(request, "The answer was not recorded: see the request's form.")
    return _back(request, next_url, pending)


def _back(request, next_url: str, pending: PendingRequest):
    if next_url and url_has_allowed_host_and_scheme(next_url, {request.get_host()}):
        return redirect(next_url)
    return redirect("dashboard:run", run_id=pending.run_id)
