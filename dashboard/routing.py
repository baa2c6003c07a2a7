"""Websocket routes of the dashboard (mounted by ``stepstone.asgi``). The last route takes
every other path and refuses it at the handshake."""

from django.urls import path, re_path

from . import consumers

websocket_urlpatterns = [
    path("ws/runs/", consumers.RunsConsumer.as_asgi(), name="ws-runs"),
    path("ws/runs/<uuid:run_id>/", consumers.RunEventsConsumer.as_asgi(), name="ws-run-events"),
    path("ws/requests/", consumers.RequestsConsumer.as_asgi(), name="ws-requests"),
    re_path(r"", consumers.UnroutedConsumer.as_asgi(), name="ws-unrouted"),
]
