"""``manage.py prune_checkpoints [--keep N] [--dry-run]``: the checkpoint retention policy,
run by hand (the hourly django-q2 schedule runs the same sweep)."""

from django.core.management.base import BaseCommand, CommandError

from workflows_app import services
from workflows_app.conf import stepstone_settings


class Command(BaseCommand):
    help = ("Delete old checkpoints of finished runs, keeping the newest N of each run, those "
            "with open requests, rehydrate sources, and every row they are stored against.")

    def add_arguments(self, parser):
        parser.add_argument("--keep", type=int, default=None,
                            help="checkpoints to keep per finished run (default: "
                                 "STEPSTONE_RETAIN_CHECKPOINTS, now "
                                 f"{stepstone_settings.RETAIN_CHECKPOINTS}; 0 keeps all)")
        parser.add_argument("--dry-run", action="store_true",
                            help="report what would be deleted, delete nothing")

    def handle(self, *args, keep=None, dry_run=False, **options):
        try:
            report = services.prune_checkpoints(keep=keep, dry_run=dry_run)
        except services.ServiceError as error:
            raise CommandError(str(error)) from None
        verb = "would delete" if dry_run else "deleted"
        self.stdout.write(f"{verb} {report.checkpoints} checkpoint(s) of {report.runs} "
                          f"finished run(s), {report.bytes} bytes")
