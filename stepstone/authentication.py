"""Login throttling (django-axes; settings.py, AXES_*): its backend in front of Django's own,
and the page a locked-out login gets."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from axes.helpers import get_client_username, get_cool_off, get_failure_limit
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


class LoginThrottleBackend(AxesStandaloneBackend):
    """django-axes's backend: refuses a login while its account is locked out from the
    client's address. A call of ``authenticate()`` without a request (a script's, or a
    test client's ``login()``) comes from no client, so there is nothing to count or
    refuse: the next backend decides, where django-axes's own backend would raise. Every
    login a client can attempt (the login page, the admin's) passes its request."""

    def authenticate(self, request: Any, username: str | None = None,
                     password: str | None = None, **kwargs: Any) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


def lockout_response(request: HttpRequest, original_response: Any = None,
                     credentials: dict | None = None) -> HttpResponse:
    """The page a locked-out login gets (``AXES_LOCKOUT_CALLABLE``): 429, saying which
    account, after how many failures and for how long."""
    cool_off = get_cool_off(request)
    return render(request, "registration/locked_out.html", {
        "username": get_client_username(request, credentials) or "",
        "failure_limit": get_failure_limit(request, credentials),
        "minutes": round(cool_off.total_seconds() / 60) if cool_off else None,
    }, status=settings.AXES_HTTP_RESPONSE_CODE)
