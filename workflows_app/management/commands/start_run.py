"""``manage.py start_run WORKFLOW --input JSON``: start a run; prints its id."""

import json

from django.core.management.base import BaseCommand, CommandError

from workflows_app import services


class Command(BaseCommand):
    help = "Start a run of a registered workflow with a JSON input; prints the run id."

    def add_arguments(self, parser):
        parser.add_argument("workflow")
        parser.add_argument("--input", required=True, help="the input message, as JSON")

    def handle(self, *args, workflow: str, input: str, **options):
        try:
            value = json.loads(input)
        except ValueError as error:
            raise CommandError(f"--input is not valid JSON: {error}") from None
        try:
            run = services.start_run(workflow, value)
        except services.ServiceError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(str(run.pk))
