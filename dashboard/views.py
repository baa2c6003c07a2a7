"""Dashboard pages. Every page needs a logged-in user."""

from django.contrib.auth.decorators import login_required
from django.shortcuts import render


@login_required
def home(request):
    """The landing page: where an operator starts."""
    return render(request, "dashboard/home.html")
