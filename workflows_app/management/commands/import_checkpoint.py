"""``manage.py import_checkpoint FILE``: store an exported checkpoint as a new run."""

import json

from django.core.management.base import BaseCommand, CommandError

from workflows_app import services


class Command(BaseCommand):
    help = "Import a checkpoint exported by export_checkpoint; prints the new run's id."

    def add_arguments(self, parser):
        parser.add_argument("file")

    def handle(self, *args, file: str, **options):
        try:
            with open(file, encoding="utf-8") as handle:
                document = json.load(handle)
        except (OSError, ValueError) as error:
            raise CommandError(f"cannot read {file}: {error}") from None
        try:
            run = services.import_checkpoint(document)
        except services.ServiceError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(str(run.pk))
