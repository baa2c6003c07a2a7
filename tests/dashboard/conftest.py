"""Fixtures of the dashboard's page tests."""

import pytest


@pytest.fixture
def member(make_user, client):
    """``member(*groups)``: log the test client in as a new account in ``groups``."""
    def log_in(*groups: str):
        user = make_user("-".join(groups) or "nobody", *groups)
        client.force_login(user)
        return user
    return log_in
