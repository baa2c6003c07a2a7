"""API permissions: the dashboard's roles (view, operate, approve), refused with 403."""

from rest_framework.permissions import BasePermission

from .. import permissions


class CanView(BasePermission):
    message = "your account may not view runs (needs the viewers, operators or approvers role)"

    def has_permission(self, request, view) -> bool:
        return permissions.can_view(request.user)


class CanOperate(BasePermission):
    message = "your account may not start, resume, rehydrate or cancel runs (operators role)"

    def has_permission(self, request, view) -> bool:
        return permissions.can_operate(request.user)


class CanApprove(BasePermission):
    message = "your account may not answer requests (approvers role)"

    def has_permission(self, request, view) -> bool:
        return permissions.can_approve(request.user)
