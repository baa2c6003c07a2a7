"""``manage.py list_runs``: the newest runs, as a table or JSON lines."""

import json as _json

from django.core.management.base import BaseCommand

from workflows_app.models import Run


class Command(BaseCommand):
    help = "List runs, newest first."

    def add_arguments(self, parser):
        parser.add_argument("--status", help="only runs in this status")
        parser.add_argument("--workflow", help="only runs of this workflow")
        parser.add_argument("--limit", type=int, default=50)
        parser.add_argument("--json", action="store_true", help="one JSON object per line")

    def handle(self, *args, status=None, workflow=None, limit=50, **options):
        for run in Run.objects.filter_by(status=status, workflow=workflow)[:limit]:
            row = {"id": str(run.pk), "workflow": run.workflow.name, "status": run.status,
                   "superstep": run.current_superstep, "outputs": run.outputs,
                   "error": run.error, "created_at": run.created_at.isoformat()}
            if options["json"]:
                self.stdout.write(_json.dumps(row))
            else:
                self.stdout.write(f"{row['id']}  {row['workflow']:<18} {row['status']:<10} "
                                  f"superstep {row['superstep']}")


