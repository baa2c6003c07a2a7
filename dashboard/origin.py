"""Which pages may open the dashboard's websockets: the Origin check of the handshake.

A browser sends the session cookie with a websocket opened by any page, of any site; what
tells our pages from a foreign one is the ``Origin`` header, which browsers always send on
websockets and pages cannot forge. ``SameOriginValidator`` admits a handshake whose Origin
is, character for character, either

- the handshake's own origin: ``http://`` for ``ws://`` (``https://`` for ``wss://``) and
  the ``Host`` header, that host being one of ``ALLOWED_HOSTS``; or
- one of ``CSRF_TRUSTED_ORIGINS`` (``https://*.example.com`` admitting its subdomains),

which is the rule Django's CSRF check applies to the pages' own POSTs, so a deployment
configures both at once. Scheme, host and port all count: ``http://127.0.0.1:8199`` may not
open a socket of ``127.0.0.1:8102``. Host and scheme are read by Django (``get_host()``,
``scheme``), so ``USE_X_FORWARDED_HOST``, ``USE_X_FORWARDED_PORT`` and
``SECURE_PROXY_SSL_HEADER`` mean here what they mean for the pages. Daphne does not tell a
socket served over TLS from one without (its websocket scopes carry no scheme), so a site on
``https://`` lists its origin in ``CSRF_TRUSTED_ORIGINS`` (as it must behind a proxy anyway).

Everything else is refused before any consumer runs: a close before the accept, which the
server answers with HTTP 403 to the handshake. That includes a handshake without Origin
(no browser sends one; the clients we ship send theirs), ``Origin: null`` (sandboxed frames,
``file://`` pages) and a handshake with several Origin headers.
"""

from __future__ import annotations

import io
import logging
from typing import Any
from urllib.parse import urlsplit

from django.conf import settings
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.utils.http import is_same_domain

logger = logging.getLogger(__name__)

# The scheme of the page that opens a socket over each websocket scheme.
PAGE_SCHEMES = {"ws": "http", "wss": "https"}


def handshake_origin(scope: dict[str, Any]) -> str | None:
    """The Origin header of a websocket handshake; None when it has none, or several."""
    values = [value for name, value in scope.get("headers", ()) if name.lower() == b"origin"]
    return values[0].decode("latin-1") if len(values) == 1 else None


def own_origin(scope: dict[str, Any]) -> str | None:
    """``scheme://host[:port]`` of this site as the handshake reached it, as Django would
    name it for an HTTP request with the same headers; None when the host is not one of
    ``ALLOWED_HOSTS``."""
    page_scheme = PAGE_SCHEMES.get(scope.get("scheme") or "ws", "http")
    # Only what the host and scheme depend on: the query string may not even be UTF-8.
    request = ASGIRequest({**scope, "method": "GET", "scheme": page_scheme, "query_string": b""},
                          io.BytesIO())
    try:
        host = request.get_host()
    except DisallowedHost:
        return None
    return f"{request.scheme}://{host}"


def is_trusted(origin: str) -> bool:
    """Whether ``origin`` is listed in ``CSRF_TRUSTED_ORIGINS``, exactly or (an entry with
    ``*``) as a subdomain of the entry's domain over the entry's scheme."""
    entries = settings.CSRF_TRUSTED_ORIGINS
    if origin in (entry for entry in entries if "*" not in entry):
        return True
    try:
        candidate = urlsplit(origin)
    except ValueError:  # not a URL at all
        return False
    return any(
        candidate.scheme == pattern.scheme
        and is_same_domain(candidate.netloc, pattern.netloc.lstrip("*"))
        for pattern in (urlsplit(entry) for entry in entries if "*" in entry))


def is_allowed(scope: dict[str, Any]) -> bool:
    """Whether a page of the handshake's Origin may open this socket (the module's rule)."""
    origin = handshake_origin(scope)
    if origin is None:
        return False
    return origin == own_origin(scope) or is_trusted(origin)


async def refuse_handshake(scope: dict[str, Any], receive, send) -> None:
    """An ASGI application that refuses the websocket: closed before it is accepted, which
    the server answers with HTTP 403 (the browser sees close code 1006)."""
    message = await receive()
    if message["type"] == "websocket.connect":
        await send({"type": "websocket.close"})


class SameOriginValidator:
    """ASGI middleware: passes a websocket on to ``application`` when its Origin may open
    it (``is_allowed``), refuses the handshake otherwise."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope, receive, send):
        if scope["type"] != "websocket":
            raise ValueError("SameOriginValidator guards websockets only")
        if is_allowed(scope):
            return await self.application(scope, receive, send)
        logger.warning("websocket to %s refused: origin %r is not this site's",
                       scope.get("path"), handshake_origin(scope))
        return await refuse_handshake(scope, receive, send)
