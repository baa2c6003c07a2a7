"""``manage.py export_checkpoint ID [--output FILE]``: a portable JSON document."""

from django.core.management.base import BaseCommand, CommandError

from workflows_app import services
from workflows_app.display import json_text


class Command(BaseCommand):
    help = "Export a checkpoint as a portable JSON document (stdout or --output)."

    def add_arguments(self, parser):
        parser.add_argument("checkpoint_id")
        parser.add_argument("--output", "-o", help="file to write (default: stdout)")

    def handle(self, *args, checkpoint_id: str, output=None, **options):
        try:
            document = services.export_checkpoint(checkpoint_id)
        except services.ServiceError as error:
            raise CommandError(str(error)) from None
        text = json_text(document, indent=2)  # any stored checkpoint, exactly
        if output:
            with open(output, "w", encoding="utf-8") as handle:
                handle.write(text)
        else:
            self.stdout.write(text)
