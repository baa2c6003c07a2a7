"""Who may do what. Views and the API ask here; the groups are made by a migration:
viewers (view), operators (+ start, resume, rehydrate, cancel), approvers (+ answer)."""

from __future__ import annotations

from typing import Any

VIEW = "workflows_app.view_run"
OPERATE = "workflows_app.operate_run"
APPROVE = "workflows_app.answer_request"


def can_view(user: Any) -> bool:
    return bool(user and user.is_authenticated and user.has_perm(VIEW))


def can_operate(user: Any) -> bool:
    return bool(user and user.is_authenticated and user.has_perm(OPERATE))


def can_approve(user: Any) -> bool:
    return bool(user and user.is_authenticated and user.has_perm(APPROVE))
