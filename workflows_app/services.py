"""The one place that changes Stepstone's data.

Views, the API, admin actions, tasks and management commands call these functions; none of
them writes models on its own. Each function validates its input, raises ``ServiceError``
(or a subclass) with a message naming the problem, and either completes or changes nothing.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from django.contrib.auth import get_user_model
from django.db import transaction


class ServiceError(Exception):
    """A request the services refuse; the message says what is wrong."""


@dataclass(frozen=True)
class OperatorAccount:
    username: str
    password: str | None  # set only when the account was just created


@transaction.atomic
def ensure_operator_account(username: str = "operator") -> OperatorAccount:
    """Create the first operator login (a superuser) if the site has no superuser yet.

    Returns the account; its ``password`` is the generated one when it was created now, so
    the caller can show it once, and None when a superuser already existed.
    """
    users = get_user_model()
    existing = users.objects.filter(is_superuser=True).order_by("pk").first()
    if existing is not None:
        return OperatorAccount(existing.get_username(), None)
    if users.objects.filter(username=username).exists():
        raise ServiceError(f"a user named {username!r} exists but is not a superuser")
    password = secrets.token_urlsafe(12)
    users.objects.create_superuser(username=username, email="", password=password)
    return OperatorAccount(username, password)
