"""Who may do what. Pages, the API, the admin's actions and the websockets ask here; the
roles are groups that exist after every migrate (``services.ensure_roles``): viewers
(view), operators (+ start, resume, rehydrate, cancel), approvers (+ answer). An inactive account may do nothing (as Django's own
permission backend decides, stated here so no caller depends on the backend)."""

from __future__ import annotations

from typing import Any

VIEW = "workflows_app.view_run"
OPERATE = "workflows_app.operate_run"
APPROVE = "workflows_app.answer_request"

# The roles, as groups and the permissions (codenames in workflows_app) each one holds.
_SEE_EVERYTHING = ["view_registeredworkflow", "view_run", "view_checkpoint",
                   "view_pendingrequest", "view_runevent", "view_operatoraction"]
ROLES = {
    "viewers": _SEE_EVERYTHING,
    "operators": _SEE_EVERYTHING + ["operate_run"],
    "approvers": _SEE_EVERYTHING + ["answer_request"],
}


def _may(user: Any, permission: str) -> bool:
    return bool(user is not None and user.is_authenticated and user.is_active
                and user.has_perm(permission))


def can_view(user: Any) -> bool:
    return _may(user, VIEW)


def can_operate(user: Any) -> bool:
    return _may(user, OPERATE)


def can_approve(user: Any) -> bool:
    return _may(user, APPROVE)
