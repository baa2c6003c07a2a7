import pytest
from django.urls import reverse

pytestmark = pytest.mark.django_db


def test_home_requires_login(client):
    response = client.get(reverse("dashboard:home"))
    assert response.status_code == 302
    assert response["Location"].startswith(reverse("login"))


def test_home_renders_for_a_logged_in_user(client, django_user_model):
    user = django_user_model.objects.create_user("viewer", password="pw-123456-x")
    client.force_login(user)
    response = client.get(reverse("dashboard:home"))
    assert response.status_code == 200
    assert b"Stepstone" in response.content


def test_login_page_renders(client):
    response = client.get(reverse("login"))
    assert response.status_code == 200 and b"csrfmiddlewaretoken" in response.content
