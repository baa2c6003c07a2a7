"""Site-wide HTTP middleware: the request size limit and the Content-Security-Policy."""

from __future__ import annotations

from typing import Any, Callable

from csp.middleware import CSPMiddleware, PolicyParts
from django.conf import settings
from django.core.exceptions import DisallowedHost, RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.shortcuts import render
from rest_framework.renderers import BrowsableAPIRenderer

from workflows_app.limits import MAX_DOCUMENT_BYTES, too_large_message

# A multipart upload carries its file and, around it, the form's other fields and the
# parts' headers: the import page's file may be MAX_DOCUMENT_BYTES, its request a little more.
MULTIPART_OVERHEAD = 64 * 1024


def _is_api(request: HttpRequest) -> bool:
    return request.path_info.startswith("/api/")


class RequestSizeLimitMiddleware:
    """Refuse a request whose declared body is larger than Stepstone accepts, before
    anything reads it: 413 with a ``detail`` naming the limit for the API, the error page
    saying it for the dashboard. Without it, Django refused such a body only when a view
    or the CSRF check read it, with a bare "Bad Request (400)" page and an error logged
    with its traceback. (A body sent without a declared length is still refused when
    read: the API's exception handler answers that one.)"""

    def __init__(self, get_response: Callable[[HttpRequest], Any]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> Any:
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0  # Django reads such a body as empty
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        if limit is None:
            return self.get_response(request)
        allowed = limit
        if request.content_type == "multipart/form-data":
            # Django counts a form's fields against the limit, not its files; the import
            # page holds its file to MAX_DOCUMENT_BYTES and says so on its form.
            allowed = max(limit, MAX_DOCUMENT_BYTES) + MULTIPART_OVERHEAD
        if declared > allowed:
            return self.refuse(request, declared, limit)
        if declared > limit and request.method == "POST" and not _is_api(request):
            # A multipart body beyond the limit (allowed for its files) may hold fields
            # beyond it, found only as they are read. The CSRF check reads them next; read
            # here, their refusal is this page, not Django's bare one with a traceback
            # logged. (The API reads its own bodies; its exception handler answers there.)
            try:
                request.POST  # noqa: B018 - read for its refusal
            except RequestDataTooBig:
                return self.refuse(request, None, limit)
        return self.get_response(request)

    def refuse(self, request: HttpRequest, declared: int | None, limit: int) -> HttpResponse:
        detail = too_large_message(declared, limit)
        if _is_api(request):
            return JsonResponse({"detail": detail}, status=413)
        return render(request, "413.html", {"detail": detail}, status=413)


class ContentSecurityPolicyMiddleware(CSPMiddleware):
    """django-csp's middleware, writing ``settings.CONTENT_SECURITY_POLICY`` with two
    additions that depend on the response:

    - ``connect-src`` names this host's websocket origin (``ws://host`` or ``wss://host``,
      as the page was served). ``'self'`` covers it in current browsers (CSP Level 3), not
      in older ones, where the live updates would be blocked.
    - The browsable API's pages (DRF's templates) use ``style`` attributes: those pages,
      and only they, allow inline styles. Inline scripts are allowed nowhere.
    """

    def get_policy_parts(self, request: HttpRequest, response: HttpResponse,
                         report_only: bool = False) -> PolicyParts:
        parts = super().get_policy_parts(request, response, report_only)
        update = dict(parts.update or {})
        origin = _websocket_origin(request)
        if origin:
            update["connect-src"] = [*_listed(update.get("connect-src")), origin]
        if isinstance(getattr(response, "accepted_renderer", None), BrowsableAPIRenderer):
            update["style-src"] = [*_listed(update.get("style-src")), "'unsafe-inline'"]
        parts.update = update
        return parts


def _websocket_origin(request: HttpRequest) -> str | None:
    """The origin of this host's websockets, or None if the host is not one we serve."""
    try:
        host = request.get_host()
    except DisallowedHost:
        return None
    return f"{'wss' if request.is_secure() else 'ws'}://{host}"


def _listed(value: Any) -> list:
    if value is None:
        return []
    return list(value) if isinstance(value, list | tuple | set) else [value]
