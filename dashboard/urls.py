from django.urls import path
from django.views.generic import RedirectView

from . import views

app_name = "dashboard"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboard:runs"), name="home"),
    path("runs/", views.runs, name="runs"),
    path("runs/table/", views.runs_table, name="runs-table"),
    path("runs/<uuid:run_id>/", views.run_detail, name="run"),
    path("runs/<uuid:run_id>/parts/<slug:part>/", views.run_part, name="run-part"),
    path("runs/<uuid:run_id>/<slug:action>/", views.run_action, name="run-action"),
    path("workflows/", views.workflows, name="workflows"),
    path("workflows/<slug:name>/start/", views.start_run, name="start-run"),
    path("requests/", views.requests_inbox, name="requests"),
    path("requests/<uuid:request_pk>/respond/", views.respond, name="respond"),
    path("checkpoints/<str:checkpoint_id>/", views.checkpoint_detail, name="checkpoint"),
    path("checkpoints/<str:checkpoint_id>/export/", views.checkpoint_export,
         name="checkpoint-export"),
]
