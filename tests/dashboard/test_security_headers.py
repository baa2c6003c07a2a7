"""The site's HTTP defences (issue 14): a Content-Security-Policy that runs no inline script,
pages that need none, login throttling on every login form, and a login needed on every
route but the login pages and static files. The browser side (no violation reported, the
live socket connects under the policy) is in test_e2e_csp.py."""

from __future__ import annotations

import re
import uuid
from datetime import timedelta

import pytest
from axes.models import AccessAttempt
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver, resolve
from django.utils import timezone

from tests.conftest import PASSWORD
from workflows_app import services

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _quiet(quiet_channels):
    """Pages are checked here, not their live updates."""


@pytest.fixture
def waiting(execute):
    """A document review waiting on its request: every kind of page has something to show."""
    return execute(services.start_run("document-review", {"title": "Policy"}))


def _policy(response) -> dict[str, list[str]]:
    """The response's Content-Security-Policy as {directive: [sources]}."""
    header = response["Content-Security-Policy"]
    directives = {}
    for part in header.split(";"):
        name, *sources = part.split()
        assert name not in directives, f"{name} twice in {header}"
        directives[name] = sources
    return directives


def _pages(run) -> list[str]:
    checkpoint = run.head_checkpoint_id
    return ["/runs/", f"/runs/{run.pk}/", "/workflows/", "/workflows/long-loop/start/",
            "/requests/", f"/checkpoints/{checkpoint}/", "/checkpoints/import/",
            "/admin/", "/admin/workflows_app/run/",
            f"/admin/workflows_app/checkpoint/{checkpoint}/change/",
            f"/admin/workflows_app/pendingrequest/{run.requests.get().pk}/change/",
            "/api/docs/", "/runs/not-a-run/"]


# --------------------------------------------------------------------------- the policy
def test_every_page_has_a_policy_that_runs_no_inline_script(client, users, waiting):
    client.force_login(users.admin)
    for url in _pages(waiting) + ["/api/runs/"]:
        answer = client.get(url, HTTP_ACCEPT="text/html")
        policy = _policy(answer)
        assert policy["script-src"] == ["'self'"], (url, policy)
        assert policy["default-src"] == ["'self'"] and policy["object-src"] == ["'none'"]
        assert policy["frame-ancestors"] == ["'none'"] and policy["base-uri"] == ["'self'"]
        assert policy["form-action"] == ["'self'"]
        assert policy["connect-src"] == ["'self'", "ws://testserver"], url
        assert policy["img-src"] == ["'self'", "data:"]
        expected_styles = ["'self'"] if not url.startswith("/api/runs/") else \
            ["'self'", "'unsafe-inline'"]  # DRF's browsable API pages only
        assert policy["style-src"] == expected_styles, (url, policy)
    anonymous = Client()
    assert _policy(anonymous.get("/login/"))["script-src"] == ["'self'"]


def test_a_page_served_over_https_allows_its_secure_websockets(client, users):
    client.force_login(users.viewer)
    answer = client.get("/runs/", secure=True)
    assert _policy(answer)["connect-src"] == ["'self'", "wss://testserver"]


def test_pages_carry_no_inline_script_style_or_handler(client, users, waiting):
    """What the policy would block must not be on the pages: every script a static file
    (data blocks are JSON, which is not run), no style attribute, no on* handler."""
    client.force_login(users.admin)
    for url in _pages(waiting) + ["/login/", "/admin/login/"]:
        if url.endswith("/login/"):
            client.logout()
        page = client.get(url).content.decode()
        for tag in re.findall(r"<script\b[^>]*>", page):
            assert "src=" in tag or 'type="application/json"' in tag, (url, tag)
        assert not re.search(r"<[^>]+\sstyle=", page), url
        assert not re.search(r"<[^>]+\son[a-z]+=", page), url
        client.force_login(users.admin)


def test_the_docs_page_starts_swagger_from_a_static_file(client, users):
    client.force_login(users.viewer)
    page = client.get("/api/docs/").content.decode()
    scripts = re.findall(r'<script src="([^"]+)"', page)
    assert scripts[-1] == "/static/dashboard/api-docs.js"
    assert 'data-schema-url="/api/schema/"' in page


# --------------------------------------------------------------------------- login throttling
LOCKED = "Too many failed logins"


def _log_in(client, username: str, password: str, url: str = "/login/"):
    return client.post(url, {"username": username, "password": password})


def _logged_in(client) -> bool:
    return "_auth_user_id" in client.session


@pytest.mark.parametrize("url", ["/login/", "/admin/login/"])
def test_logins_are_locked_out_at_the_fifth_failure_and_say_so(url, users):
    client = Client()
    for _ in range(4):
        answer = _log_in(client, "admin", "wrong", url)
        assert answer.status_code == 200 and LOCKED not in answer.content.decode()
    assert _log_in(client, "admin", "wrong", url).status_code == 429
    answer = _log_in(client, "admin", PASSWORD, url)  # the right password, too late
    assert answer.status_code == 429
    text = answer.content.decode()
    assert LOCKED in text and "<strong>admin</strong>" in text
    assert "failed to log in 5 times" in text and "for 15 minutes" in text
    assert not _logged_in(client)
    # Both login forms count the same failures.
    other = "/admin/login/" if url == "/login/" else "/login/"
    assert _log_in(Client(), "admin", PASSWORD, other).status_code == 429


def test_a_lockout_holds_one_account_from_one_address(users):
    client = Client()
    for _ in range(5):
        _log_in(client, "viewer", "wrong")
    assert _log_in(client, "viewer", PASSWORD).status_code == 429
    # Another account from the same address, and the same account from another address.
    assert _log_in(Client(), "operator", PASSWORD).status_code == 302
    elsewhere = Client(REMOTE_ADDR="192.0.2.7")
    assert _log_in(elsewhere, "viewer", PASSWORD).status_code == 302
    assert _logged_in(elsewhere)


def test_a_lockout_ends_after_its_cool_off_and_a_success_resets_the_count(users):
    client = Client()
    for _ in range(5):
        _log_in(client, "viewer", "wrong")
    assert _log_in(client, "viewer", PASSWORD).status_code == 429
    AccessAttempt.objects.update(attempt_time=timezone.now() - timedelta(minutes=16))
    assert _log_in(client, "viewer", PASSWORD).status_code == 302
    client.logout()
    for _ in range(4):
        _log_in(client, "viewer", "wrong")
    assert _log_in(client, "viewer", PASSWORD).status_code == 302  # clears the four
    client.logout()
    for _ in range(4):
        _log_in(client, "viewer", "wrong")
    assert _log_in(client, "viewer", PASSWORD).status_code == 302


# --------------------------------------------------------------------------- login everywhere
SAMPLES = {"uuid": str(uuid.UUID(int=7)), "path": "1", "int": "1", "slug": "x", "str": "x",
           "drf_format_suffix": ".json"}
REGEX_SAMPLES = {"format": "json", "app_label": "workflows_app", "url": "anything/",
                 "pk": "x", "name": "long-loop"}
# Open to anyone: the login pages (and the admin's logout, which sends to the admin's
# index, which sends to its login), and the favicon (a redirect to a static file).
OPEN = {"login": {"GET": 200, "POST": 200}, "admin:login": {"GET": 200, "POST": 200},
        "favicon": {"GET": 301, "POST": 301}}


def _routes(patterns, prefix: str = "", namespace: str = ""):
    """Every URL pattern of the site: (its full route or regex, its name, the pattern)."""
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            inner = ":".join(filter(None, [namespace, pattern.namespace]))
            yield from _routes(pattern.url_patterns, prefix + str(pattern.pattern), inner)
        else:
            assert isinstance(pattern, URLPattern)
            name = f"{namespace}:{pattern.name}" if namespace and pattern.name else pattern.name
            yield prefix + str(pattern.pattern), name, pattern


def _sample_url(route: str) -> str:
    """An address that the route (a path() route, a regex, or both joined) matches."""
    url = re.sub(r"\(\?P<(\w+)>[^)]*\)", lambda m: REGEX_SAMPLES[m.group(1)], route)
    url = re.sub(r"<(?:(\w+):)?(\w+)>", lambda m: SAMPLES[m.group(1) or "str"], url)
    url = url.replace("^", "").replace("$", "").replace("\\.", ".").replace("/?", "/")
    return "/" + url


def test_every_route_needs_a_login_but_the_login_pages_and_static_files():
    routes = list(_routes(get_resolver().url_patterns))
    assert len(routes) > 100  # the admin's, the API's (with format suffixes), the dashboard's
    client = Client()
    for route, name, pattern in routes:
        url = _sample_url(route)
        match = resolve(url)
        assert match.func == pattern.callback or match.url_name == pattern.name, (route, url)
        key = name or ("favicon" if url == "/favicon.ico" else "")
        for method in ("GET", "POST"):
            answer = client.get(url) if method == "GET" else client.post(url)
            status = answer.status_code
            if key in OPEN:
                assert status == OPEN[key][method], (method, url, status)
            elif key == "admin:logout" or (key == "logout" and method == "GET"):
                assert status in (302, 405), (method, url, status)  # nothing to log out of
                assert status == 405 or answer["Location"] in ("/admin/", "/login/")
            elif status == 302:
                location = answer["Location"]
                if key == "dashboard:home":  # only a redirect: to a page that needs a login
                    location = client.get(location)["Location"]
                assert location.startswith(("/login/?next=", "/admin/login/?next=")) or \
                    (key == "logout" and location == "/login/"), (method, url, location)
            else:
                assert status in (401, 403), (method, url, status)
    # Static files are open (the login page needs its stylesheet).
    static = client.get("/static/dashboard/style.css")
    assert static.status_code == 200
    static.close()


def test_the_api_schema_and_docs_need_a_login(client, users):
    anonymous = Client()
    assert anonymous.get("/api/schema/").status_code == 401
    docs = anonymous.get("/api/docs/")
    assert docs.status_code == 302 and docs["Location"] == "/login/?next=/api/docs/"
    client.force_login(users.nobody)  # any account: they hold no data
    assert client.get("/api/schema/").status_code == 200
    assert client.get("/api/docs/").status_code == 200
