"""The API's interactive documentation page (Swagger UI), for logged-in people only."""

from __future__ import annotations

from django.contrib.auth.views import redirect_to_login
from drf_spectacular.views import SpectacularSwaggerView
from rest_framework.exceptions import NotAuthenticated


class ApiDocsView(SpectacularSwaggerView):
    """drf-spectacular's Swagger UI page in a template of our own, whose every script is a
    static file (the site's Content-Security-Policy allows no inline script; the stock
    template starts Swagger UI with one). Like the schema it reads, it needs a login
    (``SPECTACULAR_SETTINGS["SERVE_PERMISSIONS"]``): a browser without one is sent to the
    login page and back."""

    template_name = "api/docs.html"

    def handle_exception(self, exc):
        if isinstance(exc, NotAuthenticated):
            return redirect_to_login(self.request.get_full_path())
        return super().handle_exception(exc)
