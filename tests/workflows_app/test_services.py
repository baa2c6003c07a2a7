import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from workflows_app import services

pytestmark = pytest.mark.django_db


def test_operator_account_is_created_once_with_a_usable_password():
    first = services.ensure_operator_account()
    assert first.username == "operator" and first.password
    user = get_user_model().objects.get(username="operator")
    assert user.is_superuser and user.check_password(first.password)

    again = services.ensure_operator_account()
    assert again == services.OperatorAccount("operator", None)
    assert get_user_model().objects.count() == 1


def test_operator_name_taken_by_a_plain_user_is_refused_without_changes():
    get_user_model().objects.create_user("operator", password="x-unused-1")
    with pytest.raises(services.ServiceError, match="not a superuser"):
        services.ensure_operator_account()
    assert not get_user_model().objects.filter(is_superuser=True).exists()


def test_bootstrap_command_prints_the_login_once(capsys):
    call_command("bootstrap", url="http://127.0.0.1:9999/")
    out = capsys.readouterr().out
    assert "http://127.0.0.1:9999/" in out and "password:" in out
    call_command("bootstrap")
    assert "password:" not in capsys.readouterr().out
