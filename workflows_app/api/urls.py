"""``/api/``: the REST API, its OpenAPI schema and interactive documentation (served from
our own static files, so it works offline). Everything here needs a login, the schema and
the documentation too (``SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]``)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView
from rest_framework.routers import DefaultRouter

from . import views
from .docs import ApiDocsView

router = DefaultRouter()
router.register("workflows", views.WorkflowViewSet, basename="workflow")
router.register("runs", views.RunViewSet, basename="run")
router.register("checkpoints", views.CheckpointViewSet, basename="checkpoint")
router.register("requests", views.RequestViewSet, basename="request")

urlpatterns = [
    path("schema/", SpectacularAPIView.as_view(), name="api-schema"),
    path("docs/", ApiDocsView.as_view(url_name="api-schema"), name="api-docs"),
    path("", include(router.urls)),
]
