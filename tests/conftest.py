"""Fixtures of the whole suite."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def django_db_modify_db_settings(django_db_modify_db_settings_parallel_suffix):
    """On PostgreSQL (DATABASE_URL), close connections after each use: the threads that
    serve async code in tests would otherwise keep theirs open, and the test database could
    not be dropped at the end of the session."""
    from django.conf import settings

    for database in settings.DATABASES.values():
        if database["ENGINE"] != "django.db.backends.sqlite3":
            database["CONN_MAX_AGE"] = 0
