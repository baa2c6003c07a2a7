"""ASGI entry point, served by daphne (``daphne stepstone.asgi:application``).

HTTP goes to Django; websockets (the dashboard's live updates) to Channels, refused unless
their Origin is this site's own origin (scheme, host and port) or one of
``CSRF_TRUSTED_ORIGINS`` (``dashboard.origin``), with the session and user of the session
cookie in the scope.
"""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "stepstone.settings")

# Set Django up before anything imports models (the consumers do).
django_asgi_app = get_asgi_application()

from channels.auth import AuthMiddlewareStack  # noqa: E402
from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402

from dashboard.origin import SameOriginValidator  # noqa: E402
from dashboard.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter({
    "http": django_asgi_app,
    "websocket": SameOriginValidator(
        AuthMiddlewareStack(URLRouter(websocket_urlpatterns))),
})
