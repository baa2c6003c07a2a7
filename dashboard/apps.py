from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The operator's browser dashboard."""

    name = "dashboard"
    verbose_name = "Dashboard"

    def ready(self) -> None:
        # Connects the logout receiver that closes the session's websockets.
        from . import socket_access  # noqa: F401
