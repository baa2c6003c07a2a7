from django.urls import path
from django.views.generic import RedirectView

from .views import checkpoints, requests, run_page, runs, workflows

app_name = "dashboard"

urlpatterns = [
    path("", RedirectView.as_view(pattern_name="dashboard:runs"), name="home"),
    path("runs/", runs.runs, name="runs"),
    path("runs/table/", runs.runs_table, name="runs-table"),
    path("runs/<uuid:run_id>/", run_page.run_detail, name="run"),
    path("runs/<uuid:run_id>/parts/<slug:part>/", run_page.run_part, name="run-part"),
    path("runs/<uuid:run_id>/<slug:action>/", run_page.run_action, name="run-action"),
    path("workflows/", workflows.workflows, name="workflows"),
    path("workflows/<slug:name>/start/", workflows.start_run, name="start-run"),
    path("requests/", requests.requests_inbox, name="requests"),
    path("requests/list/", requests.requests_list, name="requests-list"),
    path("requests/<uuid:request_pk>/respond/", requests.respond, name="respond"),
    # Before the checkpoint's own page, whose id would otherwise take "import".
    path("checkpoints/import/", checkpoints.checkpoint_import, name="checkpoint-import"),
    path("checkpoints/<str:checkpoint_id>/", checkpoints.checkpoint_detail, name="checkpoint"),
    path("checkpoints/<str:checkpoint_id>/export/", checkpoints.checkpoint_export,
         name="checkpoint-export"),
    path("checkpoints/<str:checkpoint_id>/fork/", checkpoints.checkpoint_fork,
         name="checkpoint-fork"),
]
