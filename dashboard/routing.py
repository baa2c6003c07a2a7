"""Websocket routes of the dashboard (mounted by ``stepstone.asgi``)."""

from django.urls import path

from . import consumers

websocket_urlpatterns = [
    path("ws/runs/", consumers.RunsConsumer.as_asgi(), name="ws-runs"),
    path("ws/runs/<uuid:run_id>/", consumers.RunEventsConsumer.as_asgi(), name="ws-run-events"),
    path("ws/requests/", consumers.RequestsConsumer.as_asgi(), name="ws-requests"),
]
