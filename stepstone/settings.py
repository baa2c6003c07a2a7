"""Django settings for Stepstone.

Everything configurable comes from the environment, read in the block below and nowhere
else. With no variables set, Stepstone runs on the embedded default: SQLite files under
``STEPSTONE_DATA_DIR`` and no servers to install.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import dj_database_url
from csp.constants import NONE, SELF

from workflows_app.limits import MAX_DOCUMENT_BYTES

BASE_DIR = Path(__file__).resolve().parent.parent


def _flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    return default if value is None else value.strip().lower() in {"1", "true", "yes", "on"}


# --------------------------------------------------------------------------- environment
# STEPSTONE_DATA_DIR: folder for the SQLite databases and the generated secret key.
DATA_DIR = Path(os.environ.get("STEPSTONE_DATA_DIR", BASE_DIR / "var")).resolve()
# DJANGO_DEBUG: development mode (detailed error pages). Off unless set.
DEBUG = _flag("DJANGO_DEBUG", False)
# DJANGO_ALLOWED_HOSTS: comma-separated host names this site answers to.
ALLOWED_HOSTS = [h.strip() for h in os.environ.get(
    "DJANGO_ALLOWED_HOSTS", "localhost,127.0.0.1,[::1]").split(",") if h.strip()]
# DJANGO_CSRF_TRUSTED_ORIGINS: comma-separated origins (scheme://host:port) behind a proxy.
CSRF_TRUSTED_ORIGINS = [o.strip() for o in os.environ.get(
    "DJANGO_CSRF_TRUSTED_ORIGINS", "").split(",") if o.strip()]
# DJANGO_SECRET_KEY: required in production; otherwise generated once into DATA_DIR.
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
# STEPSTONE_SQLITE_TIMEOUT: seconds a writer waits for SQLite's lock before failing.
SQLITE_TIMEOUT = float(os.environ.get("STEPSTONE_SQLITE_TIMEOUT", "20"))
# DJANGO_LOG_LEVEL: level of the console log.
LOG_LEVEL = os.environ.get("DJANGO_LOG_LEVEL", "INFO").upper()
# STEPSTONE_WORKFLOW_MODULES: comma-separated modules that register more workflows.
WORKFLOW_MODULES = ["workflows_app.examples"] + [m.strip() for m in os.environ.get(
    "STEPSTONE_WORKFLOW_MODULES", "").split(",") if m.strip()]
# STEPSTONE_WORKERS: worker processes per qcluster.
WORKERS = int(os.environ.get("STEPSTONE_WORKERS", "2"))
# STEPSTONE_TASK_TIMEOUT: seconds after which django-q2 kills a task; runs hand over to a
# fresh task well before (STEPSTONE_TASK_SLICE, default half of it).
TASK_TIMEOUT = int(os.environ.get("STEPSTONE_TASK_TIMEOUT", "600"))
TASK_SLICE = int(os.environ.get("STEPSTONE_TASK_SLICE", str(TASK_TIMEOUT // 2)))
# STEPSTONE_TASK_RETRY: seconds after which an unacknowledged task (its worker died) is
# delivered again. Must exceed the timeout.
TASK_RETRY = int(os.environ.get("STEPSTONE_TASK_RETRY", str(TASK_TIMEOUT + 60)))
# STEPSTONE_LEASE_SECONDS: how long a run stays owned by a silent worker before another may
# take it over (a dead worker's run runs again about a second after that);
# STEPSTONE_HEARTBEAT_SECONDS: how often a busy worker renews it.
LEASE_SECONDS = float(os.environ.get("STEPSTONE_LEASE_SECONDS", "5"))
HEARTBEAT_SECONDS = float(os.environ.get("STEPSTONE_HEARTBEAT_SECONDS", str(LEASE_SECONDS / 6)))
# DATABASE_URL: scale-out database, e.g. postgres://user:password@host:5432/stepstone. Unset:
# the embedded SQLite file in DATA_DIR. PostgreSQL only; the task queue (django-q2's ORM
# broker) lives in it too, so any number of qcluster processes on any machines share it.
DATABASE_URL = os.environ.get("DATABASE_URL", "").strip()
# STEPSTONE_DB_CONN_MAX_AGE: seconds a process keeps its PostgreSQL connection open between
# requests (checked before reuse); 0 closes it after each request. Only with DATABASE_URL.
DB_CONN_MAX_AGE = int(os.environ.get("STEPSTONE_DB_CONN_MAX_AGE", "60"))
# REDIS_URL: scale-out channel layer for live updates, e.g. redis://host:6379/0, shared by
# every web process and worker. Unset: the embedded SQLite channel layer (channels-lite).
REDIS_URL = os.environ.get("REDIS_URL", "").strip()
# STEPSTONE_CHECKPOINT_FLUSH_SECONDS: checkpoints of fast supersteps are committed together at
# most this far apart (group commit); 0 commits every checkpoint on its own.
CHECKPOINT_FLUSH_SECONDS = float(os.environ.get("STEPSTONE_CHECKPOINT_FLUSH_SECONDS", "0.02"))
# STEPSTONE_RETAIN_CHECKPOINTS: checkpoints kept per finished run by the hourly retention
# sweep (those with open requests, rehydrate sources and what they need are kept too);
# 0 keeps every checkpoint.
RETAIN_CHECKPOINTS = int(os.environ.get("STEPSTONE_RETAIN_CHECKPOINTS", "100"))
# --------------------------------------------------------------------------- end of environment

if DATABASE_URL and not DATABASE_URL.startswith(("postgres://", "postgresql://", "pgsql://")):
    raise ValueError("DATABASE_URL must be a PostgreSQL URL (postgres://...)")
if REDIS_URL and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ValueError("REDIS_URL must be a Redis URL (redis://, rediss:// or unix://)")

DATA_DIR.mkdir(parents=True, exist_ok=True)
if not SECRET_KEY:
    key_file = DATA_DIR / "secret_key"
    if not key_file.exists():
        key_file.write_text(secrets.token_urlsafe(50))
        key_file.chmod(0o600)
    SECRET_KEY = key_file.read_text().strip()

INSTALLED_APPS = [
    "daphne",
    "channels",
    *([] if REDIS_URL else ["channels_lite"]),  # the embedded channel layer's tables
    "django_q",
    "rest_framework",
    "rest_framework.authtoken",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",  # login throttling (see AXES_* below)
    "csp",  # Content-Security-Policy (see CONTENT_SECURITY_POLICY below)
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "workflows_app",
    "dashboard",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "stepstone.middleware.ContentSecurityPolicyMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # After authentication, so that its error page shows who is logged in; before anything
    # reads the body (the CSRF check reads it in a view's turn, after every __call__).
    "stepstone.middleware.RequestSizeLimitMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",  # last, as django-axes requires
]

# Request limits (workflows_app/limits.py says why; the README lists them). A request body
# (an API call's JSON, a form's fields) may be as large as a checkpoint export, so every
# export can be imported through the API as well as through the import page.
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_DOCUMENT_BYTES

# Login throttling with django-axes, on every login that goes through Django's
# authenticate() with a request: the dashboard's login page and the admin's (the API takes
# tokens and the dashboard's session, no passwords). Failures are counted per account and
# client address together, in the database (shared by every web process): after
# AXES_FAILURE_LIMIT of them that account is locked out from that address (status 429 and
# a page saying for how long) for AXES_COOLOFF_TIME, and a failure during the lockout starts
# it again. Counting per address alone would lock every user behind one proxy out; per
# account alone would let anyone lock any account. Behind a reverse proxy, set
# AXES_IPWARE_PROXY_COUNT so that the client's address is read from X-Forwarded-For.
AUTHENTICATION_BACKENDS = [
    "stepstone.authentication.LoginThrottleBackend",
    "django.contrib.auth.backends.ModelBackend",
]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = 0.25  # hours: 15 minutes
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "stepstone.authentication.lockout_response"
AXES_VERBOSE = False  # no start-up banner; failures and lockouts are still logged

# Content-Security-Policy (django-csp): scripts, styles, images, fonts and connections from
# this site only. No inline script anywhere (the pages' scripts are static files; their
# data blocks are JSON, which the policy does not concern), so an injected <script> or
# on*= attribute cannot run. Live updates connect to this host's websockets, which
# 'self' covers (stepstone.middleware names them too, for older browsers). Images may be
# data: URLs (the admin's and Swagger UI's icons). The only relaxation is inline styles on
# the pages of DRF's browsable API, whose templates need them (stepstone/middleware.py).
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
    },
}

ROOT_URLCONF = "stepstone.urls"
ASGI_APPLICATION = "stepstone.asgi.application"
WSGI_APPLICATION = "stepstone.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                "dashboard.context_processors.open_requests",
            ],
        },
    },
]

# SQLite tuned for a web process and workers writing at once: WAL lets readers run beside
# the writer, IMMEDIATE takes the write lock at BEGIN (so waiting honours the busy timeout
# instead of failing on lock upgrade), and synchronous=NORMAL is durable under WAL.
DATABASES = {
    "default": {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "stepstone.sqlite3",
        "OPTIONS": {
            "transaction_mode": "IMMEDIATE",
            "timeout": SQLITE_TIMEOUT,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL; "
                            "PRAGMA foreign_keys=ON;",
        },
    }
}
if DATABASE_URL:
    # PostgreSQL: persistent connections, health-checked before reuse so a restarted server
    # costs a reconnect rather than an error.
    DATABASES["default"] = dj_database_url.parse(
        DATABASE_URL, conn_max_age=DB_CONN_MAX_AGE, conn_health_checks=True)

if not REDIS_URL:
    # The live-update channel layer keeps its messages in a SQLite file of its own, so its
    # polling never contends with the main database's writers.
    DATABASES["channels"] = {
        "ENGINE": "django.db.backends.sqlite3",
        "NAME": DATA_DIR / "channels.sqlite3",
        "OPTIONS": {"transaction_mode": "IMMEDIATE", "timeout": SQLITE_TIMEOUT,
                    "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;"},
    }
    DATABASE_ROUTERS = ["channels_lite.router.ChannelsRouter"]
# Each web process has one task polling that file for its sockets' messages, at a fixed
# interval (channels-lite does not back off) while any socket is open, and until
# polling_idle_timeout seconds after its last message once none is. A shorter interval
# trades CPU on an idle site for latency; the README's performance section has the
# measured trade-off. The poller stops a minute after the last page closed instead of the
# default half hour.
# capacity counts the undelivered messages of a whole web process, not of one socket (its
# sockets share one channel prefix): 100 (the default) would drop messages silently when a
# status change goes to many open pages at once.
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "channels_lite.layers.core.SQLiteChannelLayer",
        "CONFIG": {"database": "channels", "polling_interval": 0.02,
                   "polling_idle_timeout": 60, "capacity": 1000},
    }
}
if REDIS_URL:
    # Scale-out: every daphne and worker process shares one Redis; same capacity reasoning.
    CHANNEL_LAYERS = {
        "default": {
            "BACKEND": "channels_redis.core.RedisChannelLayer",
            "CONFIG": {"hosts": [REDIS_URL], "capacity": 1000},
        }
    }

# django-q2 runs workflow runs. The ORM broker is at-least-once: a task is deleted only when
# it finished; if its worker dies, the task is delivered again after `retry` seconds.
Q_CLUSTER = {
    "name": "stepstone",
    "orm": "default",
    "workers": WORKERS,
    "timeout": TASK_TIMEOUT,
    "retry": TASK_RETRY,
    "max_attempts": 5,  # after that the recovery sweep takes over
    "ack_failures": False,  # a task that raised (e.g. database down) is retried
    "catch_up": False,
    "poll": 0.05,
    "bulk": 1,  # one task per fetch, so idle workers take the next runs
    # A cluster holds at most two tasks it has not started (one in its queue, one in its
    # pusher's hand), so that a busy cluster does not hoard runs that idle clusters could
    # take; tasks that die with a cluster are released by the recovery sweep.
    "queue_limit": 1,
    "save_limit": 1000,
    "label": "Tasks",
}

# The REST API (/api/): tokens for scripts, the session for the dashboard's own calls.
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",  # first: 401 with a challenge
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "EXCEPTION_HANDLER": "workflows_app.api.exceptions.handle_exception",
    # JSON within the nesting limit in (workflows_app/limits.py); out, any stored value.
    "DEFAULT_PARSER_CLASSES": ["workflows_app.api.parsers.JSONParser",
                               "rest_framework.parsers.FormParser",
                               "rest_framework.parsers.MultiPartParser"],
    "DEFAULT_RENDERER_CLASSES": ["workflows_app.api.renderers.JSONRenderer",
                                 "rest_framework.renderers.BrowsableAPIRenderer"],
}
SPECTACULAR_SETTINGS = {
    "TITLE": "Stepstone API",
    "DESCRIPTION": "Checkpointed workflows: runs, checkpoints, requests and their actions.",
    "VERSION": "1",
    # The documentation page's assets come from our static files, not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    "SERVE_INCLUDE_SCHEMA": False,
    # The schema and its documentation page need a login like the rest of the API: they hold
    # no data, but a deployed site need not describe itself to anonymous visitors.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.IsAuthenticated"],
}

STEPSTONE = {
    "WORKFLOW_MODULES": WORKFLOW_MODULES,
    "LEASE_SECONDS": LEASE_SECONDS,
    "HEARTBEAT_SECONDS": HEARTBEAT_SECONDS,
    "CHECKPOINT_FLUSH_SECONDS": CHECKPOINT_FLUSH_SECONDS,
    "TASK_SLICE_SECONDS": TASK_SLICE,
    "RETAIN_CHECKPOINTS": RETAIN_CHECKPOINTS,
}

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATICFILES_DIRS = [BASE_DIR / "static"]
STATIC_ROOT = DATA_DIR / "staticfiles"
STATIC_ROOT.mkdir(exist_ok=True)
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve from the app folders directly too, so a forgotten collectstatic is not an outage.
WHITENOISE_USE_FINDERS = True

LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "dashboard:home"
LOGOUT_REDIRECT_URL = "login"

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
