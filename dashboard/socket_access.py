"""Who may keep a dashboard websocket open, after the handshake let them in.

A socket is admitted for a session whose user may view runs; it must not outlive either.

- **Logout closes at once.** Each socket joins its session's channel group
  (``session_group``: a keyed hash of the session key, never the key, which the channel
  layer's store would otherwise hold). Django's ``user_logged_out`` signal, sent by every
  logout, sends ``session.ended`` to that group (``close_session_sockets``), through the
  channel layer that all web processes share, and the consumers close with 4403.
- **Everything else is noticed by re-checking** (``session_viewer``): the session read
  fresh from its store must still exist, be unexpired, name the same user with the same
  password hash, and that user, read fresh, must be active and hold
  ``workflows_app.view_run``. A session expires, is deleted (``clearsessions``, the admin),
  a password is changed, an account deactivated or deleted, a permission or a group taken
  away: each through another path (groups alone change through two models and their
  through-tables), and some without any signal (a session that simply expires, a queryset
  ``update()``), so one periodic check of the same rule the handshake applied covers them
  all, where signals would cover some. The consumers re-check every ``RECHECK_SECONDS``
  and before each replay a page asks for; the price is one short read per socket per
  period.
"""

from __future__ import annotations

import logging
from importlib import import_module
from typing import Any

from asgiref.sync import async_to_sync
from channels.layers import get_channel_layer
from django.conf import settings
from django.contrib.auth import (BACKEND_SESSION_KEY, HASH_SESSION_KEY, SESSION_KEY,
                                 get_user_model, load_backend)
from django.contrib.auth.signals import user_logged_out
from django.core.exceptions import ValidationError
from django.dispatch import receiver
from django.utils.crypto import constant_time_compare, salted_hmac

from workflows_app.permissions import can_view

logger = logging.getLogger(__name__)

# Seconds between two checks that a socket's session and user still may see runs: how long
# a socket outlives an expired session or a permission taken away, at most.
RECHECK_SECONDS = 30.0
SESSION_ENDED = "session.ended"  # the group message: consumers' ``session_ended``


def session_group(session_key: str) -> str:
    """The channel group of the sockets opened with the session ``session_key``."""
    digest = salted_hmac("dashboard.socket_access.session_group", session_key,
                         algorithm="sha256").hexdigest()
    return f"session.{digest}"


def session_viewer(session_key: str | None) -> Any | None:
    """The user the session ``session_key`` signs in, read afresh from the session store and
    the database, if that user may view runs; None when not (or no longer).

    The session is only read: never saved, cycled or flushed (it belongs to the browser's
    pages). Its password hash must match the user's under the current ``SECRET_KEY``, as at
    the handshake (``channels.auth.get_user``)."""
    if not session_key:
        return None
    session = import_module(settings.SESSION_ENGINE).SessionStore(session_key)
    try:
        user_id = get_user_model()._meta.pk.to_python(session[SESSION_KEY])
        backend_path = session[BACKEND_SESSION_KEY]
    except KeyError:  # gone, expired, or never signed in
        return None
    except ValidationError:  # an id that is not one
        return None
    if backend_path not in settings.AUTHENTICATION_BACKENDS:
        return None
    user = load_backend(backend_path).get_user(user_id)
    if user is None:
        return None
    if hasattr(user, "get_session_auth_hash"):
        stored = session.get(HASH_SESSION_KEY)
        if not stored or not constant_time_compare(stored, user.get_session_auth_hash()):
            return None
    return user if can_view(user) else None


@receiver(user_logged_out, dispatch_uid="dashboard.close_session_sockets")
def close_session_sockets(sender, request=None, user=None, **kwargs) -> None:
    """Close the sockets opened with the session that is logging out (its key is still set
    when the signal is sent, before the session is flushed)."""
    session = getattr(request, "session", None)
    session_key = getattr(session, "session_key", None)
    layer = get_channel_layer()
    if not session_key or layer is None:
        return
    try:
        async_to_sync(layer.group_send)(session_group(session_key), {"type": SESSION_ENDED})
    except Exception:  # the logout itself must succeed; the periodic re-check closes them
        logger.warning("could not tell the sockets of a session that it ended", exc_info=True)
