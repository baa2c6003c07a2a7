from django.apps import AppConfig
from django.core import checks
from django.db.models.signals import post_migrate


class WorkflowsAppConfig(AppConfig):
    """Runs, checkpoints and requests of Stepstone workflows, on top of the pure engine."""

    name = "workflows_app"
    verbose_name = "Workflows"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from django_q.signals import post_spawn

        from . import registry
        from .conf import stepstone_settings
        from .worker.process import worker_spawned

        registry.autodiscover(stepstone_settings.WORKFLOW_MODULES)
        post_migrate.connect(_after_migrate, sender=self)
        # Each django-q2 worker process sweeps for dead workers' runs and hands its run over
        # when told to stop (worker/process.py).
        post_spawn.connect(worker_spawned, dispatch_uid="stepstone-worker-spawned")
        checks.register(_check_definitions)


def _check_definitions(app_configs, **kwargs) -> list:
    from . import registry

    return [checks.Error(f"workflow '{name}' cannot be built: {error}",
                         hint="fix its factory; runs of it would fail", id="workflows_app.E001")
            for name, error in registry.build_errors().items()]


def _after_migrate(sender, using="default", **kwargs) -> None:
    """The role groups, registered workflows and the recovery and retention schedules exist
    as soon as the schema does (and again after a flush, which empties the tables)."""
    if using != "default":
        return
    from . import services

    services.ensure_roles()
    services.sync_workflows()
    services.ensure_recovery_schedule()
    services.ensure_retention_schedule()
