"""``manage.py import_checkpoint FILE``: store an exported checkpoint as a new run."""

import os

from django.core.management.base import BaseCommand, CommandError

from workflows_app import services
from workflows_app.limits import MAX_DOCUMENT_BYTES, load_json


class Command(BaseCommand):
    help = "Import a checkpoint exported by export_checkpoint; prints the new run's id."

    def add_arguments(self, parser):
        parser.add_argument("file")

    def handle(self, *args, file: str, **options):
        try:
            if os.path.getsize(file) > MAX_DOCUMENT_BYTES:  # the import page's limit too
                raise ValueError(f"a checkpoint export may be at most {MAX_DOCUMENT_BYTES:,} "
                                 f"bytes")
            with open(file, encoding="utf-8") as handle:
                document = load_json(handle.read())
        except (OSError, ValueError) as error:
            raise CommandError(f"cannot read {file}: {error}") from None
        try:
            run = services.import_checkpoint(document)
        except services.ServiceError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(str(run.pk))
