"""``manage.py bootstrap``: make a fresh installation usable (migrate, first login)."""

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand

from workflows_app import services


class Command(BaseCommand):
    help = "Apply migrations and create the operator login on first start (printed once)."

    def add_arguments(self, parser):
        parser.add_argument("--url", default="http://127.0.0.1:8000/",
                            help="where the site will be served, for the printed message")

    def handle(self, *args, url: str, **options):
        call_command("migrate", interactive=False, verbosity=0)
        if "channels" in settings.DATABASES:  # the embedded channel layer's own file
            call_command("migrate", database="channels", interactive=False, verbosity=0)
        account = services.ensure_operator_account()
        self.stdout.write(f"Stepstone is starting at {url}")
        if account.password:
            self.stdout.write(self.style.SUCCESS(
                f"Log in as '{account.username}' with password: {account.password}\n"
                f"(shown once; change it with: python manage.py changepassword {account.username})"))
        else:
            self.stdout.write(
                f"Log in as '{account.username}' (forgot the password? "
                f"python manage.py changepassword {account.username})")
