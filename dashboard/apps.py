from django.apps import AppConfig


class DashboardConfig(AppConfig):
    """The operator's browser dashboard."""

    name = "dashboard"
    verbose_name = "Dashboard"
