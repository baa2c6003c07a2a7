from django.apps import AppConfig


class WorkflowsAppConfig(AppConfig):
    """Runs, checkpoints and requests of Stepstone workflows, on top of the pure engine."""

    name = "workflows_app"
    verbose_name = "Workflows"
    default_auto_field = "django.db.models.BigAutoField"
