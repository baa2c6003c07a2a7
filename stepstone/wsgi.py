"""WSGI entry point, for servers that do not need websockets."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stepstone.settings")

application = get_wsgi_application()
