"""Settings of the dpm_async service.

Every setting is read here, once, through one `StrictEnv` (django-environ's Env with strict typed
readers, dpm_async/environment.py); code reads them at call time through `django.conf.settings` so
that `override_settings` works in tests. `.env` beside manage.py is read when present (`make run`
writes one with a generated secret key on first start).

A value that is not one of the documented spellings stops the process with one line naming the
variable, the value and what is allowed (manage.py and gunicorn.conf.py print it). Two variables
fall back to their default with a warning instead, as spec/api.md section 5 prescribes:
DPM_ASYNC_EXECUTION_MODE and DPM_ASYNC_OPERATIONS_TTL_SECONDS.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured

from dpm_async.environment import ConfigurationInvalid, StrictEnv
from dpm_async.logs import LOG_FORMATS, LOG_LEVELS, logging_config

BASE_DIR = Path(__file__).resolve().parent.parent

env = StrictEnv()
# The variables' file: `.env` beside manage.py unless DJANGO_ENV_FILE names another (e.g. one
# managed by the deployment), or is empty to read none. The process environment always wins. A
# file that is named but missing is refused: its settings would be silently replaced by defaults.
_default_env_file = str(BASE_DIR / ".env")
_env_file = env.raw("DJANGO_ENV_FILE")
if _env_file is None:
    _env_file = _default_env_file
if _env_file and Path(_env_file).is_file():
    environ.Env.read_env(_env_file, overwrite=False)
elif _env_file and _env_file != _default_env_file:
    raise ConfigurationInvalid(
        f"DJANGO_ENV_FILE={_env_file!r} is not allowed: use the path of an existing file, or an empty value to read none"
    )

_startup_warnings: list[str] = []

DEBUG = env.flag("DJANGO_DEBUG", default=False)
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default="")
if not SECRET_KEY:
    if not DEBUG:
        raise ImproperlyConfigured(
            "DJANGO_SECRET_KEY is not set. Set it (see .env.example), or set DJANGO_DEBUG=true for local work."
        )
    SECRET_KEY = "django-insecure-local-development-only"  # noqa: S105 - DEBUG only, refused otherwise

ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["127.0.0.1", "localhost", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# --- HTTPS (docs/security.md) ------------------------------------------------------------------
# Secure by default: with DEBUG off the service assumes it is reached over HTTPS (redirect, HSTS,
# secure cookies). `make run` serves plain http on 127.0.0.1, so the .env it writes from
# .env.example says DJANGO_SECURE_HTTPS=false; a deployment behind TLS leaves it unset (or true).
DJANGO_SECURE_HTTPS = env.flag("DJANGO_SECURE_HTTPS", default=not DEBUG)
SECURE_SSL_REDIRECT = DJANGO_SECURE_HTTPS
# Load balancers probe over plain http inside the network: the probes are never redirected.
SECURE_REDIRECT_EXEMPT = [r"^health/"]
SESSION_COOKIE_SECURE = DJANGO_SECURE_HTTPS
CSRF_COOKIE_SECURE = DJANGO_SECURE_HTTPS
SECURE_HSTS_SECONDS = env.whole("DJANGO_SECURE_HSTS_SECONDS", default=31_536_000 if DJANGO_SECURE_HTTPS else 0,
                                minimum=0)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.flag("DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=DJANGO_SECURE_HTTPS)
SECURE_HSTS_PRELOAD = env.flag("DJANGO_SECURE_HSTS_PRELOAD", default=DJANGO_SECURE_HTTPS)
# Behind a TLS-terminating proxy, e.g. "HTTP_X_FORWARDED_PROTO,https": without it every request
# looks like http and SECURE_SSL_REDIRECT would redirect forever. Set it only when the proxy
# always overwrites that header. Anything but two words is refused rather than ignored.
SECURE_PROXY_SSL_HEADER = env.pair("DJANGO_SECURE_PROXY_SSL_HEADER")
SESSION_COOKIE_HTTPONLY = True
SESSION_COOKIE_SAMESITE = "Lax"
CSRF_COOKIE_SAMESITE = "Lax"
# Django's defaults, spelled out because docs/security.md promises them.
SECURE_CONTENT_TYPE_NOSNIFF = True
SECURE_REFERRER_POLICY = "same-origin"
SECURE_CROSS_ORIGIN_OPENER_POLICY = "same-origin"
X_FRAME_OPTIONS = "DENY"

INSTALLED_APPS = [
    # Django's admin with a login that refuses an address after too many failures
    # (dpm_async/admin_site.py); the ModelAdmins register on it as on the default site.
    "dpm_async.apps.DpmAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "dpm_async.apps.DpmAsyncConfig",
    "rebalance",
    "operations",
    # After "operations", whose `db_worker` (the backend's worker plus lease recovery) must win
    # over the backend's own command of the same name: the first app listed wins.
    "django_tasks_db",
]

MIDDLEWARE = [
    # Outermost, so that its count and latency cover every answer, those of the middleware below
    # included (413s, bad correlation ids).
    "dpm_async.metrics.RequestMetricsMiddleware",
    # Answers carry confidential data: no cache keeps them (every error included).
    "dpm_async.security.NoStoreMiddleware",
    # Next, so that every response - Django's own error pages included - carries the id.
    "dpm_async.middleware.CorrelationIdMiddleware",
    "dpm_async.limits.RequestBodyLimitMiddleware",
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "dpm_async.urls"
APPEND_SLASH = False  # the API's paths are exact; no redirects on POST

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

WSGI_APPLICATION = "dpm_async.wsgi.application"
ASGI_APPLICATION = "dpm_async.asgi.application"

DATABASES = {"default": env.database("DATABASE_URL", default="sqlite:///db.sqlite3")}
# A database that cannot be reached, or does not answer, costs a request at most these many seconds
# before it is answered `503 DATABASE_UNAVAILABLE` (docs/deployment.md, "Database outages").
# Connecting (PostgreSQL): libpq's connect_timeout. A statement: PostgreSQL's statement_timeout,
# and 1 s later the client's own deadline, for a server that cannot answer at all. 0: no limit
# (e.g. `DPM_DB_STATEMENT_TIMEOUT_SECONDS=0 manage.py migrate` on a large database).
DPM_DB_CONNECT_TIMEOUT_SECONDS = env.whole("DPM_DB_CONNECT_TIMEOUT_SECONDS", default=5, minimum=1, maximum=600)
DPM_DB_STATEMENT_TIMEOUT_SECONDS = env.whole("DPM_DB_STATEMENT_TIMEOUT_SECONDS", default=10, minimum=0, maximum=86400)
# A run (INLINE, execute, a worker's) whose write to the database fails retries it, backing off,
# for this long before it gives the run up (its lease then lapses and it is run again).
DPM_DB_WRITE_RETRY_SECONDS = env.whole("DPM_DB_WRITE_RETRY_SECONDS", default=30, minimum=0, maximum=3600)
_db = DATABASES["default"]
if _db["ENGINE"] == "django.db.backends.sqlite3":
    if _db["NAME"] not in ("", ":memory:") and not Path(_db["NAME"]).is_absolute():
        _db["NAME"] = str(BASE_DIR / _db["NAME"])
    # WAL lets readers poll while a writer works; IMMEDIATE transactions take the write lock up
    # front, so two racing writers queue on the busy timeout instead of failing on lock upgrade.
    _db.setdefault("OPTIONS", {}).update(
        {
            "timeout": 30,
            "transaction_mode": "IMMEDIATE",
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
    # Tests race real threads, each on its own connection: that needs a database file (shared-cache
    # memory databases lock whole tables). One file per test process, so parallel runs never meet.
    _db.setdefault("TEST", {}).setdefault(
        "NAME", str(Path(tempfile.gettempdir()) / f"dpm_async_test_{os.getpid()}.sqlite3")
    )
elif _db["ENGINE"] == "django.db.backends.postgresql":
    # Django's backend plus a client-side deadline on every statement (dpm_async/postgresql/base.py).
    _db["ENGINE"] = "dpm_async.postgresql"
    _db.setdefault("CONN_MAX_AGE", env.whole("DJANGO_CONN_MAX_AGE", default=60, minimum=0))
    _db.setdefault("CONN_HEALTH_CHECKS", True)
    # libpq waits forever for an unreachable host by default; a readiness probe (and every request)
    # must fail instead of hanging. A URL's own ?connect_timeout= wins.
    _db.setdefault("OPTIONS", {}).setdefault("connect_timeout", DPM_DB_CONNECT_TIMEOUT_SECONDS)
    if DPM_DB_STATEMENT_TIMEOUT_SECONDS > 0:
        # The server ends a statement that runs longer (and its locks with it).
        _db["OPTIONS"].setdefault("options", f"-c statement_timeout={DPM_DB_STATEMENT_TIMEOUT_SECONDS * 1000}")
    # Values travel as bind parameters, not inside the SQL text: a statement that fails (a timeout
    # while storing a result, say) is logged by PostgreSQL without the portfolio or the result in
    # it (docs/security.md, "What the database logs"), and a 70 MB result is sent as one binary
    # parameter instead of being quoted into a 70 MB statement.
    _db["OPTIONS"].setdefault("server_side_binding", True)

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
# Only needed for a collectstatic deployment; whitenoise serves from the apps otherwise.
STATIC_ROOT = env.str("DJANGO_STATIC_ROOT", default="") or None
# Serve the admin's and Swagger UI's files straight from the installed apps, so /docs/ works offline
# without a collectstatic step.
WHITENOISE_USE_FINDERS = True
WHITENOISE_AUTOREFRESH = DEBUG

# --- request limits --------------------------------------------------------------------------
# Bodies above this many bytes are refused with 413 before they are read.
DPM_MAX_REQUEST_BYTES = env.whole("DPM_MAX_REQUEST_BYTES", default=16 * 1024 * 1024, minimum=1)
DATA_UPLOAD_MAX_MEMORY_SIZE = DPM_MAX_REQUEST_BYTES

# What one request may cost: distinct instruments (positions, model targets, shelf entries) x
# scenarios. Above it the batch is refused with 413 BATCH_TOO_LARGE before the engine runs; at the
# default a web process peaks at about 420 MB (docs/deployment.md, "Request cost").
DPM_MAX_BATCH_CELLS = env.whole("DPM_MAX_BATCH_CELLS", default=100_000, minimum=1)

# --- fair use (docs/deployment.md, "Fair use") -------------------------------------------------
# DRF rate strings per caller (its user, else its address), or `off`.
DPM_THROTTLE_ANALYZE_RATE = env.rate("DPM_THROTTLE_ANALYZE_RATE", default="600/min")
DPM_THROTTLE_SUBMIT_RATE = env.rate("DPM_THROTTLE_SUBMIT_RATE", default="1200/min")
# Failed token or admin-login attempts per client address; past it, credentials are refused with
# 429 before they are looked up or hashed.
DPM_AUTH_FAILURE_RATE = env.rate("DPM_AUTH_FAILURE_RATE", default="20/min")
# PENDING or RUNNING operations one owner may have; 0: no cap.
DPM_ASYNC_MAX_UNFINISHED_PER_OWNER = env.whole("DPM_ASYNC_MAX_UNFINISHED_PER_OWNER", default=1000, minimum=0)
# The proxies whose X-Forwarded-For is believed (dpm_async/addresses.py); none: REMOTE_ADDR.
DPM_TRUSTED_PROXIES = env.networks("DPM_TRUSTED_PROXIES")

# The limits count in Django's cache: Redis when REDIS_URL is set (shared by every process and
# host), else each process's memory (a limit then holds per process). Redis is asked with short
# timeouts and fails open (dpm_async/cache.py): while it is down the limits are not enforced.
REDIS_URL = env.raw("REDIS_URL")
if REDIS_URL is not None and not REDIS_URL.startswith(("redis://", "rediss://", "unix://")):
    raise ConfigurationInvalid(
        "REDIS_URL is not allowed: use a redis://, rediss:// or unix:// URL, e.g. redis://127.0.0.1:6379/0"
    )
DPM_CACHE_KEY_PREFIX = env.str("DPM_CACHE_KEY_PREFIX", default="dpm_async")
if REDIS_URL:
    CACHES = {
        "default": {
            "BACKEND": "dpm_async.cache.FailOpenRedisCache",
            "LOCATION": REDIS_URL,
            "KEY_PREFIX": DPM_CACHE_KEY_PREFIX,
            "OPTIONS": {"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
        }
    }
else:
    CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "KEY_PREFIX": DPM_CACHE_KEY_PREFIX}
    }

# --- who may call the API (spec/api.md section 9; docs/security.md) ----------------------------
# false opens every endpoint to anonymous callers, for local experiments only: logged at start.
# Strict like every flag, so it fails closed: a misspelt value stops the service, never opens it.
DPM_API_AUTH_REQUIRED = env.flag("DPM_API_AUTH_REQUIRED", default=True)
if not DPM_API_AUTH_REQUIRED:
    _startup_warnings.append(
        "DPM_API_AUTH_REQUIRED=false: the API answers anonymous callers; use this for local experiments only"
    )

# --- REST framework and OpenAPI ----------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_RENDERER_CLASSES": ["dpm_async.renderers.FastJSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["dpm_async.parsers.DecimalJSONParser"],
    # Token first: its `WWW-Authenticate: Token` makes a missing credential a 401 (DRF answers 403
    # when the first class names no challenge). Sessions serve the admin and Swagger UI users.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "dpm_async.authentication.ApiTokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["dpm_async.authentication.ApiAuthRequired"],
    "EXCEPTION_HANDLER": "dpm_async.problems.problem_exception_handler",
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "UNAUTHENTICATED_USER": None,
}

SPECTACULAR_SETTINGS = {
    "TITLE": "dpm_async",
    "DESCRIPTION": (
        "Discretionary portfolio management rebalance analysis: a synchronous what-if batch "
        "(`POST /rebalance/analyze`) and the same batch as an asynchronous operation (RFC-0018).\n\n"
        "Every endpoint but `/health/*` requires a caller: send `Authorization: Token <key>` "
        "(`python manage.py issue_token <username>` prints a key), or use a logged-in admin session. "
        "Without credentials the answer is a 401 problem. An operation is visible only to the user "
        "who submitted it (and to staff with the view permission)."
    ),
    "VERSION": "0.1.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # /schema/ and /docs/ are public (spec/api.md section 9) and ignore credentials altogether, so a
    # stale token in a browser or client never stops anyone reading the contract.
    "SERVE_PERMISSIONS": ["rest_framework.permissions.AllowAny"],
    "SERVE_AUTHENTICATION": [],
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "REDOC_DIST": "SIDECAR",
    # Components are derived from the declared shapes and named after them (dpm_async/openapi.py).
    "COMPONENT_SPLIT_REQUEST": False,
}

# --- async operations (RFC-0018; spec/api.md section 5) ----------------------------------------
DPM_ASYNC_OPERATIONS_ENABLED = env.flag("DPM_ASYNC_OPERATIONS_ENABLED", default=True)
DPM_ASYNC_MANUAL_EXECUTION_ENABLED = env.flag("DPM_ASYNC_MANUAL_EXECUTION_ENABLED", default=True)

# spec/api.md section 5 prescribes a fallback (with a warning) for these two, not a refusal.
_DEFAULT_TTL = 86400
try:
    DPM_ASYNC_OPERATIONS_TTL_SECONDS = env.whole("DPM_ASYNC_OPERATIONS_TTL_SECONDS", default=_DEFAULT_TTL, minimum=1)
except ConfigurationInvalid as invalid:
    _startup_warnings.append(f"{invalid}; falling back to the default {_DEFAULT_TTL}")
    DPM_ASYNC_OPERATIONS_TTL_SECONDS = _DEFAULT_TTL

EXECUTION_MODES = ("INLINE", "ACCEPT_ONLY", "WORKER")
try:
    DPM_ASYNC_EXECUTION_MODE = env.choice("DPM_ASYNC_EXECUTION_MODE", EXECUTION_MODES, default="INLINE")
except ConfigurationInvalid as invalid:
    _startup_warnings.append(f"{invalid}; falling back to INLINE")
    DPM_ASYNC_EXECUTION_MODE = "INLINE"

DPM_ASYNC_EXECUTION_LEASE_SECONDS = env.whole("DPM_ASYNC_EXECUTION_LEASE_SECONDS", default=300, minimum=1)
DPM_ASYNC_MAX_ATTEMPTS = env.whole("DPM_ASYNC_MAX_ATTEMPTS", default=3, minimum=1)
# How often every worker settles lapsed leases (and re-enqueues what it requeued): at most 30 s,
# and a quarter of the lease for short leases, so a dead worker's operation runs again within
# lease + this interval (+ the queue's polling interval).
DPM_ASYNC_RECOVERY_INTERVAL_SECONDS = env.seconds(
    "DPM_ASYNC_RECOVERY_INTERVAL_SECONDS", default=min(30.0, max(1.0, DPM_ASYNC_EXECUTION_LEASE_SECONDS / 4))
)

# --- readiness and metrics (docs/deployment.md, "Monitoring") ----------------------------------
# WORKER mode: /health/ready answers 503 when PENDING work is older than this and no worker has
# sent a heartbeat within it. Workers beat every few seconds (operations/heartbeats.py).
DPM_READY_MAX_PENDING_AGE_SECONDS = env.whole("DPM_READY_MAX_PENDING_AGE_SECONDS", default=120, minimum=1)
# Where each `manage.py db_worker` serves its Prometheus metrics (unset: it serves none). Several
# workers on one host need one port each (docs/deployment.md). The address defaults to loopback:
# open it to the Prometheus server's network deliberately.
DPM_WORKER_METRICS_PORT = env.integer("DPM_WORKER_METRICS_PORT", default=None, minimum=1, maximum=65535)
DPM_WORKER_METRICS_ADDRESS = env.str("DPM_WORKER_METRICS_ADDRESS", default="127.0.0.1")
# What /metrics adds to the per-process metrics: collectors computed at scrape time (the queue).
DPM_METRICS_COLLECTORS = ["operations.metrics.OperationsCollector"]
# What /health/ready checks beyond the database and its migrations: name -> a function returning
# (state, passed).
DPM_READINESS_CHECKS = {"workers": "operations.readiness.workers_ready"}

# --- background tasks (WORKER mode; docs/deployment.md) ----------------------------------------
# Any django.tasks backend: the database backend by default (workers: `manage.py db_worker`),
# another one (e.g. RQ on Redis) by naming its class here and its options as a JSON object.
TASKS = {
    "default": {
        "BACKEND": env.str("DPM_TASKS_BACKEND", default="django_tasks_db.DatabaseBackend"),
        "OPTIONS": env.json_object("DPM_TASKS_OPTIONS", default={}),
    }
}

# --- logging (docs/deployment.md, "Logs") -------------------------------------------------------
# text: one readable line per event; json: one JSON object per line, for log shippers. Every line
# carries the correlation id of the request (or operation) it belongs to.
LOG_LEVEL = env.choice("DJANGO_LOG_LEVEL", LOG_LEVELS, default="INFO")
DPM_LOG_FORMAT = env.choice("DPM_LOG_FORMAT", LOG_FORMATS, default="text")
LOGGING = logging_config(DPM_LOG_FORMAT, LOG_LEVEL)

# Logged once logging is configured (dpm_async.apps.DpmAsyncConfig.ready).
DPM_SETTINGS_WARNINGS = tuple(_startup_warnings)
