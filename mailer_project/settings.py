"""Settings: every value comes from the environment (docs/operations.md lists them), with defaults
that make a local run work with no credentials. Production sets DATABASE_URL, SECRET_KEY,
ALLOWED_HOSTS, SQS_ENDPOINT_URL="" (real AWS) and the provider keys."""

import os
import re
from datetime import timedelta
from pathlib import Path
from urllib.parse import quote, urlsplit

import environ
from csp.constants import NONCE, NONE, SELF
from kombu import Exchange, Queue

from mailer_project.local_secrets import binds_beyond_loopback, local_secret_key
from providers.registry import REGISTRY

BASE_DIR = Path(__file__).resolve().parent.parent
VAR_DIR = Path(environ.Env().str("MAILER_VAR_DIR", default=str(BASE_DIR / "var")))

env = environ.Env()

DEBUG = env.bool("DEBUG", default=False)
# Unset: a local run's own random key, or a refusal to serve (see "Secret key and binding" below).
SECRET_KEY = env("SECRET_KEY", default="")
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])

# Production serves HTTPS (TLS ends at the load balancer): HTTPS=true turns on what that needs.
HTTPS = env.bool("HTTPS", default=False)
if HTTPS:
    if len(SECRET_KEY) < 50:
        raise environ.ImproperlyConfigured("With HTTPS=true, set SECRET_KEY to a random string of 50+ characters")
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    # The load balancer's health checks come over plain HTTP.
    SECURE_REDIRECT_EXEMPT = [r"^healthz\Z", r"^readyz\Z"]
    SECURE_HSTS_SECONDS = 365 * 24 * 3600
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True
    CSRF_TRUSTED_ORIGINS = [f"https://{host}" for host in ALLOWED_HOSTS if not host.startswith(".")]

MAILER_MODE = env("MAILER_MODE", default="all")
if MAILER_MODE not in ("all", "consumer", "processor"):
    raise environ.ImproperlyConfigured(f"MAILER_MODE must be all, consumer or processor, not {MAILER_MODE!r}")
BIND_ADDRESS = env("BIND_ADDRESS", default="127.0.0.1:8000")
# gunicorn gevent workers: WEB_WORKERS processes (one per core and one more), each serving up to
# WEB_CONNECTIONS connections as greenlets. Not threads: a client sending its body a byte at a
# time held one of 3 x 2 gthread threads, and eight such clients took the API down
# (docs/security.md). The request body must arrive within the deadline of mailer_project/serving.py.
WEB_WORKERS = env.int("WEB_WORKERS", default=3)
WEB_CONNECTIONS = env.int("WEB_CONNECTIONS", default=200)
# gevent (the default, for the reason above) or gthread: gunicorn's threads workers, WEB_THREADS
# threads each, WEB_CONNECTIONS connections each (idle keep-alive ones hold no thread). gthread is
# here so that bench/accept.py can measure both models (issue 21, docs/benchmarks.md); under it the
# body deadline of mailer_project/serving.py does not hold (a gevent timeout never fires in a thread
# that is not patched), so a slow client holds one of the threads.
WEB_SERVER_MODEL = env("WEB_SERVER_MODEL", default="gevent")
if WEB_SERVER_MODEL not in ("gevent", "gthread"):
    raise environ.ImproperlyConfigured(f"WEB_SERVER_MODEL must be gevent or gthread, not {WEB_SERVER_MODEL!r}")
WEB_THREADS = env.int("WEB_THREADS", default=16)
REQUEST_BODY_TIMEOUT_SECONDS = env.float("REQUEST_BODY_TIMEOUT_SECONDS", default=10)
REQUEST_BODY_MIN_BYTES_PER_SECOND = env.int("REQUEST_BODY_MIN_BYTES_PER_SECOND", default=50_000)

# --- Secret key and binding beyond loopback (issue 23) -----------------------------------------
# Reachable from other machines means production rules: a SECRET_KEY of the operator's and a
# METRICS_TOKEN for /metrics. On loopback (`make run`, the tests) an unset SECRET_KEY is this
# machine's own random key, made once in var/ (mode 0600) and shared by every local process so
# sessions survive a restart. Beyond loopback with none, the settings still load (collectstatic at
# image build, migrate) but the API refuses to start: mailer_project/wsgi.py raises this reason.
BINDS_BEYOND_LOOPBACK = binds_beyond_loopback(BIND_ADDRESS)
MISSING_SECRET_KEY = ""
if not SECRET_KEY:
    if BINDS_BEYOND_LOOPBACK:
        MISSING_SECRET_KEY = (
            f"BIND_ADDRESS={BIND_ADDRESS} is beyond loopback: set SECRET_KEY to a random string of 50+ characters"
        )
    else:
        SECRET_KEY = local_secret_key(VAR_DIR / "local-secret-key")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "rest_framework_api_key",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "axes",
    "csp",
    "mail",
    "mail.callbacks",
    "mail.templating",
]

MIDDLEWARE = [
    # First, so that every answer carries its policy, the probes' and the static files' too.
    "mailer_project.content_security.ContentSecurityPolicy",
    # Health checks and metrics by task IP, before the Host header is checked (see the class).
    "mail.api.probes.HostIndependentProbes",
    "django.middleware.security.SecurityMiddleware",
    # The admin's CSS and JavaScript, served by the app itself (no web server in front locally).
    "whitenoise.middleware.WhiteNoiseMiddleware",
    # Outside the body limits, so the requests they refuse are archived too.
    "mail.api.archive.ArchiveRejectedRequests",
    "mail.api.middleware.RequestBodyLimits",
    "mail.api.middleware.RateLimitHeaders",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes requires: turns a locked-out login into its 429 (see "Admin login").
    "axes.middleware.AxesMiddleware",
]

ROOT_URLCONF = "mailer_project.urls"
WSGI_APPLICATION = "mailer_project.wsgi.application"
# The API answers on /api/v1/messages with or without a trailing slash (mail/api/urls.py); a
# redirect would turn a client's POST into a GET.
APPEND_SLASH = False

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

DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{VAR_DIR / 'mailer.sqlite3'}")}
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DATABASE_CONN_MAX_AGE", default=60)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Connections per process to PostgreSQL, in a pool (psycopg_pool, through Django's own support).
# Celery's Django fixup closes a task's connection before and after every task; without a pool
# each delivery opened a new PostgreSQL connection, a tenth of a worker's time (docs/benchmarks.md).
# A delivery also hands its connection back while it waits for the provider, so a worker's sends
# in flight are not capped by its connections. 0 = no pool: persistent connections instead.
DATABASE_POOL_SIZE = env.int("DATABASE_POOL_SIZE", default=10)
# A pooled connection idle for longer than this is checked with a round trip before it is used.
DATABASE_POOL_CHECK_IDLE_SECONDS = env.float("DATABASE_POOL_CHECK_IDLE_SECONDS", default=2.0)
if DATABASES["default"]["ENGINE"] == "django.db.backends.postgresql" and DATABASE_POOL_SIZE:
    DATABASES["default"]["CONN_MAX_AGE"] = 0  # Django refuses persistent connections with a pool
    # Django's backend, whose pool checks a connection only when it was idle for longer than this
    # (mailer_project/database_pool.py); Django's own check is a round trip at every checkout.
    DATABASES["default"]["ENGINE"] = "mailer_project.postgresql"
    DATABASES["default"]["CONN_HEALTH_CHECKS"] = False
    DATABASES["default"]["OPTIONS"] = {
        **DATABASES["default"].get("OPTIONS", {}),
        # A connection waited for longer than `timeout` fails like a database outage (503, a retried task).
        "pool": {"min_size": 1, "max_size": DATABASE_POOL_SIZE, "timeout": 10},
    }
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The API and the worker write from different processes: WAL lets readers and one writer
    # work at once, IMMEDIATE transactions queue writers instead of failing with "locked", and the
    # test database is a file so worker processes started by the tests see it.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
    }
    DATABASES["default"]["TEST"] = {"NAME": str(VAR_DIR / "test.sqlite3")}
    Path(DATABASES["default"]["NAME"]).parent.mkdir(parents=True, exist_ok=True)

DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
STATIC_URL = "static/"
# Set where static files are collected (the Docker image); unset, they are served straight from
# the apps' static folders, so a local run or a test needs no collectstatic.
STATIC_ROOT = env("STATIC_ROOT", default=None)
WHITENOISE_USE_FINDERS = True

# --- Templates (mail/templating/, docs/templates.md) -------------------------------------------
# A render's bounds: block bodies entered (loop passes, branches taken), wall time as a backstop,
# characters of each part's output (and of any value an operator or filter makes); and the size of
# a template's source. Over a bound, a send is refused with 422, never rendered half.
TEMPLATE_MAX_ITERATIONS = env.int("TEMPLATE_MAX_ITERATIONS", default=50_000)
TEMPLATE_RENDER_SECONDS = env.float("TEMPLATE_RENDER_SECONDS", default=1.0)
TEMPLATE_MAX_OUTPUT_CHARS = env.int("TEMPLATE_MAX_OUTPUT_CHARS", default=1_000_000)
TEMPLATE_MAX_SOURCE_CHARS = env.int("TEMPLATE_MAX_SOURCE_CHARS", default=200_000)

# --- Retention (mail/retention.py, run by the housekeeping command) ---------------------------------
# Bodies: the tasks kept with dead letters (and, by the bucket's lifecycle rule, large messages' S3
# objects) are forgotten after BODY_RETENTION_DAYS; message rows with their events after
# MESSAGE_RETENTION_DAYS, once the message is done. Deleted RETENTION_BATCH_SIZE rows per transaction.
BODY_RETENTION_DAYS = env.int("BODY_RETENTION_DAYS", default=30)
MESSAGE_RETENTION_DAYS = env.int("MESSAGE_RETENTION_DAYS", default=90)
RETENTION_BATCH_SIZE = env.int("RETENTION_BATCH_SIZE", default=1000)
if not 1 <= BODY_RETENTION_DAYS <= MESSAGE_RETENTION_DAYS or RETENTION_BATCH_SIZE < 1:
    # A row must outlive its body: the operator's page for a message shows what became of it.
    raise environ.ImproperlyConfigured(
        "Retention: 1 <= BODY_RETENTION_DAYS <= MESSAGE_RETENTION_DAYS and RETENTION_BATCH_SIZE >= 1"
    )

# --- Optional integrations (later issues) ------------------------------------------------------
MONGODB_URI = env("MONGODB_URI", default="")
MONGODB_ARCHIVE_TTL_DAYS = env.int("MONGODB_ARCHIVE_TTL_DAYS", default=30)
CLOUDWATCH_LOG_GROUP = env("CLOUDWATCH_LOG_GROUP", default="")
REDIS_URL = env("REDIS_URL", default="")
# /metrics asks for `Authorization: Bearer <METRICS_TOKEN>`. Unset, it is open only on a local run
# (loopback bind, no HTTPS) and off (404, saying why) wherever others can reach it (mail/api/probes.py).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
METRICS_OPEN_WITHOUT_TOKEN = not (HTTPS or BINDS_BEYOND_LOOPBACK)
# Rate-limit counts: shared by every process through Redis when there is one, else per process.
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": REDIS_URL}
    if REDIS_URL
    else {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}
}

# --- Admin login: brute-force limit (issue 23, django-axes) ----------------------------------------
# Failures are counted per account and, separately, per client address: ADMIN_LOGIN_FAILURE_LIMIT
# wrong passwords for one username (from anywhere) lock that username, and as many from one
# address (any usernames) lock that address, for ADMIN_LOGIN_COOLOFF_MINUTES after the last counted
# failure. Attempts while locked are refused without being counted, so the lock clears on time and
# an attacker cannot keep an operator locked out by trying on; a successful login clears that
# account's failures. `manage.py axes_reset` (or axes_reset_username NAME) clears locks at once.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = env.int("ADMIN_LOGIN_FAILURE_LIMIT", default=10)
AXES_COOLOFF_TIME = timedelta(minutes=env.int("ADMIN_LOGIN_COOLOFF_MINUTES", default=15))
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_COOL_OFF_ON_FAILURE_DURING_LOCKOUT = False
AXES_RESET_ON_SUCCESS = True
AXES_LOCKOUT_CALLABLE = "mail.admin_login.locked_out"
AXES_CLIENT_IP_CALLABLE = "mail.client_address.client_address"
# Proxies in front that append the client's address to X-Forwarded-For: the ALB with HTTPS=true
# (the same trust as SECURE_PROXY_SSL_HEADER above), none otherwise, so that without a proxy a
# client-sent X-Forwarded-For is never believed.
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=1 if HTTPS else 0)
# No second copy of every login request (axes' access log); failures and lockouts are still logged.
AXES_DISABLE_ACCESS_LOG = True

# --- Content-Security-Policy (issue 23, django-csp; mailer_project/content_security.py) -------------
# Everything but the browser pages is JSON (or Prometheus text): nothing may load, nothing may frame it.
CONTENT_SECURITY_POLICY = {"DIRECTIVES": {"default-src": [NONE], "frame-ancestors": [NONE]}}
# The admin and the API docs: only this service's own scripts, styles, images and fonts (the admin's
# and Swagger UI's, served by WhiteNoise; no CDN), no inline script (the docs page's init script is
# a URL of its own, mail/api/urls.py), one inline style allowed by nonce (mail/templates/mail/
# swagger_ui.html), data: images (both UIs' icons), forms posting only here, no framing.
BROWSER_PAGES_PREFIXES = ("/admin/", "/api/docs/")
BROWSER_PAGES_CSP = {
    "default-src": [SELF],
    "script-src": [SELF],
    "style-src": [SELF, NONCE],
    "img-src": [SELF, "data:"],
    "connect-src": [SELF],
    "font-src": [SELF],
    "object-src": [NONE],
    "base-uri": [NONE],
    "form-action": [SELF],
    "frame-ancestors": [NONE],
}

# --- API -------------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": ["mail.api.auth.ApiKeyAuthentication"],
    # Every view names the scope each method needs (mail/api/auth.py ScopeRequired).
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated", "mail.api.auth.ScopeRequired"],
    "DEFAULT_PARSER_CLASSES": ["mail.api.parsers.StrictJSONParser"],
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "EXCEPTION_HANDLER": "mail.api.errors.api_exception_handler",
    "UNAUTHENTICATED_USER": None,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_THROTTLE_CLASSES": ["mail.api.auth.ApiKeyRateThrottle"],
    # A list's errors keyed by the failing items' indexes ({"3": {...}}), not a list of mostly
    # empty objects: a batch's 400 names the message at fault.
    "LIST_SERIALIZER_ERRORS_AS_DICT": True,
}
# How long a process remembers an API key that authenticated (mail/verified_keys.py): a revoked,
# deleted or changed key is refused or changed within this many seconds everywhere. 0: read every time.
API_KEY_CACHE_SECONDS = env.float("API_KEY_CACHE_SECONDS", default=10.0)
if API_KEY_CACHE_SECONDS < 0:
    raise environ.ImproperlyConfigured("API_KEY_CACHE_SECONDS must be 0 (off) or more")
# Per API key, e.g. "20/s", "1200/min".
API_RATE_LIMIT = env("API_RATE_LIMIT", default="1200/min")
if not re.fullmatch(r"[1-9][0-9]*/[smhd][a-z]*", API_RATE_LIMIT):
    raise environ.ImproperlyConfigured(f"API_RATE_LIMIT must look like '1200/min' or '20/s', not {API_RATE_LIMIT!r}")
SPECTACULAR_SETTINGS = {
    "TITLE": "Mailer API",
    "DESCRIPTION": "Send transactional mail; follow each message's delivery. Errors share one shape: see Error.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    # The docs page's JavaScript from the app itself, not from a CDN.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "COMPONENT_SPLIT_REQUEST": True,
    # Two models have a `status`: each enum named for its own.
    "ENUM_NAME_OVERRIDES": {"MessageStatusEnum": "mail.models.Message.Status", "ErasureStatusEnum": "mail.models.Erasure.Status"},
    "POSTPROCESSING_HOOKS": [
        "drf_spectacular.hooks.postprocess_schema_enums",
        "mail.api.schema.batch_size_limits",
        # Issue 23: the 429 of every rate-limited operation, a send_at example in the future.
        "mail.api.schema.rate_limits_and_a_future_send_at",
    ],
}

# --- AWS (SQS and S3), or the embedded server that speaks both ----------------------------------
AWS_REGION = env("AWS_REGION", default="us-east-1")
# Empty means real AWS; the default is the embedded server that `make run` starts.
SQS_ENDPOINT_URL = env("SQS_ENDPOINT_URL", default="http://127.0.0.1:9324") or None
# An SQS-compatible server accepts any credentials; real AWS uses boto3's chain (task role).
AWS_ACCESS_KEY_ID = env("AWS_ACCESS_KEY_ID", default="local" if SQS_ENDPOINT_URL else None)
AWS_SECRET_ACCESS_KEY = env("AWS_SECRET_ACCESS_KEY", default="local" if SQS_ENDPOINT_URL else None)

# --- Large messages: the S3 claim-check (mail/claim_check.py) ----------------------------------
# Locally the embedded server is S3 too (moto serves both), with a bucket of its own; against AWS
# there is no default bucket, and without one a message too big for SQS gets 413.
S3_ENDPOINT_URL = env("S3_ENDPOINT_URL", default=SQS_ENDPOINT_URL or "") or None
S3_BUCKET = env("S3_BUCKET", default="mailer-local" if SQS_ENDPOINT_URL else "")
# A task larger than this on the wire (an upper bound, mail/delivery_task.py wire_size) goes to S3:
# comfortably under SQS's 1 MiB, so the estimate's allowance never decides a borderline case.
LARGE_MESSAGE_BYTES = env.int("LARGE_MESSAGE_BYTES", default=768 * 1024)

# --- Limits (per recipient, tag and header: the strictest provider's, mail/api/serializers.py) ---
MAX_BATCH_MESSAGES = 100
# Recipients (to, cc and bcc) of one batch request in all: bounds the CPU one request takes to
# validate (about 0.7 s at this limit, docs/security.md).
MAX_BATCH_RECIPIENTS = 10_000
MAX_MESSAGE_BYTES = 25 * 1000 * 1000
# A 25 MB message arrives base64-encoded inside JSON (4/3 larger) plus the JSON around it. Without
# large-message storage (S3_BUCKET) no task over 1 MiB can be queued, and a body much over that
# cannot make one: refusing it before parsing keeps a few large requests from filling the API's memory.
MAX_REQUEST_BYTES = env.int("MAX_REQUEST_BYTES", default=36 * 1000 * 1000 if S3_BUCKET else 4 * 1000 * 1000)
# Django's guard when a body is read; mail/api/middleware.py answers 413 before that.
DATA_UPLOAD_MAX_MEMORY_SIZE = MAX_REQUEST_BYTES

# --- Queue (Amazon SQS) --------------------------------------------------------------------------
SQS_QUEUE_NAME = env("SQS_QUEUE_NAME", default="mail")
SQS_DLQ_NAME = env("SQS_DLQ_NAME", default="mail-dlq")
if SQS_QUEUE_NAME.endswith(".fifo"):
    # Retries and scheduled sends wait as per-message DelaySeconds, which FIFO queues refuse.
    raise environ.ImproperlyConfigured("SQS_QUEUE_NAME: a FIFO queue takes no per-message delay; use a standard queue")
SQS_MAX_RECEIVE_COUNT = env.int("SQS_MAX_RECEIVE_COUNT", default=3)
# Provider calls are bounded by their timeouts (below); the visibility timeout must outlast the
# slowest one by a wide margin or a message still being sent is handed to a second worker.
SQS_VISIBILITY_TIMEOUT = env.int("SQS_VISIBILITY_TIMEOUT", default=300)
SQS_MAX_MESSAGE_BYTES = 1024 * 1024
SQS_DLQ_RETENTION_SECONDS = 14 * 24 * 3600
SQS_DLQ_DRAIN_VISIBILITY_TIMEOUT = env.int("SQS_DLQ_DRAIN_VISIBILITY_TIMEOUT", default=60)
# Concurrent accepts in one API worker are written in one transaction and published with
# SendMessageBatch (mail/coalescing.py): at most this many messages a flush, and a leader waits
# this long for company first when its worker's last flush had company (0: never; groups then
# form only while a flush is under way, which bench/accept.py measured slower: docs/benchmarks.md).
ACCEPT_COALESCE_MAX_MESSAGES = env.int("ACCEPT_COALESCE_MAX_MESSAGES", default=50)
ACCEPT_COALESCE_WINDOW_SECONDS = env.float("ACCEPT_COALESCE_WINDOW_SECONDS", default=0.002)
if ACCEPT_COALESCE_MAX_MESSAGES < 1 or not 0 <= ACCEPT_COALESCE_WINDOW_SECONDS <= 1:
    raise environ.ImproperlyConfigured("ACCEPT_COALESCE_MAX_MESSAGES must be 1 or more, ACCEPT_COALESCE_WINDOW_SECONDS 0 to 1")

# --- Providers ---------------------------------------------------------------------------------
MAIL_PROVIDERS = env.list("MAIL_PROVIDERS", default=["sendgrid", "mailgun"])
_unknown_providers = sorted(set(MAIL_PROVIDERS) - set(REGISTRY.names()))
if _unknown_providers or not MAIL_PROVIDERS:
    raise environ.ImproperlyConfigured(
        f"MAIL_PROVIDERS must name one or more of {', '.join(REGISTRY.names())}; unknown: {_unknown_providers}"
    )
# Each provider's own settings, declared in its folder (providers/<name>/__init__.py): its API key
# and URL, and its webhook's verification key (unset: that webhook refuses every request, since
# unsigned events are never believed). A value the provider cannot work with stops the start.
#
# On a local run (SQS on this machine) the provider simulator that `make run` and `make services`
# start writes the settings that send to it into LOCAL_PROVIDER_SETTINGS (devtools/simulator.py),
# so that `manage.py runserver` and a plain `celery worker` send there too. They are defaults only:
# a provider with any of them set in the environment takes all of its settings from there.
LOCAL_PROVIDER_SETTINGS = VAR_DIR / "local-providers.env"


def _local_provider_settings() -> dict[str, str]:
    local_run = SQS_ENDPOINT_URL and urlsplit(SQS_ENDPOINT_URL).hostname in ("127.0.0.1", "localhost", "::1")
    if not (local_run and LOCAL_PROVIDER_SETTINGS.is_file()):
        return {}
    lines = LOCAL_PROVIDER_SETTINGS.read_text().splitlines()
    return dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))


_local = _local_provider_settings()
for _provider in REGISTRY.names():
    _settings = REGISTRY.get(_provider).settings
    _simulated = not any(s.name in os.environ for s in _settings if s.name in _local)
    for _setting in _settings:
        _default = _local.get(_setting.name, _setting.default) if _simulated else _setting.default
        globals()[_setting.name] = env.get_value(_setting.name, cast=_setting.cast, default=_default)
        try:
            _setting.check and _setting.check(globals()[_setting.name])
        except ValueError as exc:
            raise environ.ImproperlyConfigured(f"{_setting.name}: {exc}") from exc
# A signed webhook older (or further ahead) than this is refused; Mailgun tokens are remembered as long.
WEBHOOK_MAX_AGE_SECONDS = env.int("WEBHOOK_MAX_AGE_SECONDS", default=300)
# Workers read the admin's provider switches (mail/models.py ProviderSetting) at most this stale.
PROVIDER_SETTINGS_CACHE_SECONDS = env.float("PROVIDER_SETTINGS_CACHE_SECONDS", default=5.0)
# With every provider switched off, a message's task waits this long in SQS before looking again.
NO_PROVIDER_RECHECK_SECONDS = env.int("NO_PROVIDER_RECHECK_SECONDS", default=30)
PROVIDER_CONNECT_TIMEOUT = env.float("PROVIDER_CONNECT_TIMEOUT", default=5.0)
PROVIDER_READ_TIMEOUT = env.float("PROVIDER_READ_TIMEOUT", default=30.0)
# How long a worker's claim on a message stands before another worker may take it over: longer
# than the slowest provider call (or a slow send would be taken over and sent twice), shorter than
# the visibility timeout (or a crashed worker's message would come back still claimed).
DELIVERY_LEASE_SECONDS = env.int("DELIVERY_LEASE_SECONDS", default=int(PROVIDER_CONNECT_TIMEOUT + PROVIDER_READ_TIMEOUT) * 2)
if not PROVIDER_CONNECT_TIMEOUT + PROVIDER_READ_TIMEOUT < DELIVERY_LEASE_SECONDS < SQS_VISIBILITY_TIMEOUT:
    raise environ.ImproperlyConfigured(
        "Need PROVIDER_CONNECT_TIMEOUT + PROVIDER_READ_TIMEOUT < DELIVERY_LEASE_SECONDS < SQS_VISIBILITY_TIMEOUT"
    )
# Circuit breakers (providers/circuit.py): a provider that keeps failing or answering slowly is
# skipped until a probe finds it well again. Shared by every worker through REDIS_URL when set.
BREAKER_ENABLED = env.bool("BREAKER_ENABLED", default=True)
BREAKER_FAILURE_RUN = env.int("BREAKER_FAILURE_RUN", default=5)
BREAKER_FAILURE_RATE = env.float("BREAKER_FAILURE_RATE", default=0.5)
BREAKER_SLOW_CALL_SECONDS = env.float("BREAKER_SLOW_CALL_SECONDS", default=5.0)
BREAKER_SLOW_CALL_RATE = env.float("BREAKER_SLOW_CALL_RATE", default=0.5)
BREAKER_MIN_CALLS = env.int("BREAKER_MIN_CALLS", default=10)
BREAKER_WINDOW_SECONDS = env.float("BREAKER_WINDOW_SECONDS", default=60.0)
BREAKER_COOLDOWN_SECONDS = env.float("BREAKER_COOLDOWN_SECONDS", default=30.0)
# Transient failures are retried on the same provider this many times, the n-th wait drawn from
# [base * 2^(n-1) / 2, base * 2^(n-1)] seconds ("equal jitter"), or Retry-After when longer. The
# wait is an SQS delay, which SQS caps at 15 minutes.
DELIVERY_MAX_RETRIES = env.int("DELIVERY_MAX_RETRIES", default=3)
DELIVERY_RETRY_BASE_SECONDS = env.float("DELIVERY_RETRY_BASE_SECONDS", default=10.0)
SQS_MAX_DELAY_SECONDS = 900
# Ambiguous attempts (mail/ambiguity.py): a worker died between calling a provider and writing
# what it said. Before sending again, the providers are asked (their webhook events, their log
# APIs) for up to AMBIGUOUS_GRACE_SECONDS after the attempt began, looking again every
# AMBIGUOUS_RECHECK_SECONDS (an SQS delay); only then is the message sent again. Each process asks
# a provider's log API at most AMBIGUOUS_LOOKUPS_PER_MINUTE times a minute.
AMBIGUOUS_GRACE_SECONDS = env.int("AMBIGUOUS_GRACE_SECONDS", default=180)
AMBIGUOUS_RECHECK_SECONDS = env.int("AMBIGUOUS_RECHECK_SECONDS", default=20)
AMBIGUOUS_LOOKUPS_PER_MINUTE = env.int("AMBIGUOUS_LOOKUPS_PER_MINUTE", default=60)
# A `queued` or `sending` row untouched this long has no live task (the longest SQS delay, every
# receive's visibility timeout, the lease, and a margin): housekeeping settles it (mail/sweeper.py).
STALE_MESSAGE_SECONDS = env.int(
    "STALE_MESSAGE_SECONDS",
    default=SQS_MAX_DELAY_SECONDS + SQS_VISIBILITY_TIMEOUT * SQS_MAX_RECEIVE_COUNT + DELIVERY_LEASE_SECONDS + 600,
)
if not 1 <= AMBIGUOUS_RECHECK_SECONDS <= SQS_MAX_DELAY_SECONDS or AMBIGUOUS_LOOKUPS_PER_MINUTE < 1:
    raise environ.ImproperlyConfigured("Need 1 <= AMBIGUOUS_RECHECK_SECONDS <= 900 and AMBIGUOUS_LOOKUPS_PER_MINUTE >= 1")
# send_at up to this far ahead; beyond SQS_MAX_DELAY_SECONDS the message waits in the database.
MAX_SCHEDULE_AHEAD = timedelta(hours=72)

# --- Callbacks to the clients' endpoints (mail/callbacks/, docs/api.md "Callbacks") ---------------
# Their own queue and dead-letter queue, so a slow or dead client endpoint never delays a mail.
CALLBACK_QUEUE_NAME = env("CALLBACK_QUEUE_NAME", default=f"{SQS_QUEUE_NAME}-callbacks")
CALLBACK_DLQ_NAME = env("CALLBACK_DLQ_NAME", default=f"{CALLBACK_QUEUE_NAME}-dlq")
# Seconds before each retry (Svix's schedule); a wait over SQS_MAX_DELAY_SECONDS is held in the
# database and released by housekeeping. Attempts in all: one more than the waits.
CALLBACK_RETRY_SCHEDULE = [
    int(n) for n in env.list("CALLBACK_RETRY_SCHEDULE", default=["5", "300", "1800", "7200", "18000", "36000", "36000"])
]
CALLBACK_CONNECT_TIMEOUT = env.float("CALLBACK_CONNECT_TIMEOUT", default=3.0)
CALLBACK_READ_TIMEOUT = env.float("CALLBACK_READ_TIMEOUT", default=5.0)
# What is read of an endpoint's answer (the first 500 characters are kept in the attempt's log).
CALLBACK_MAX_RESPONSE_BYTES = env.int("CALLBACK_MAX_RESPONSE_BYTES", default=4096)
# A worker's hold on one delivery: longer than connect + read, shorter than the queue's visibility.
CALLBACK_LEASE_SECONDS = env.int("CALLBACK_LEASE_SECONDS", default=int(CALLBACK_CONNECT_TIMEOUT + CALLBACK_READ_TIMEOUT) * 2)
CALLBACK_VISIBILITY_TIMEOUT = env.int("CALLBACK_VISIBILITY_TIMEOUT", default=max(60, CALLBACK_LEASE_SECONDS * 2))
if not CALLBACK_CONNECT_TIMEOUT + CALLBACK_READ_TIMEOUT < CALLBACK_LEASE_SECONDS < CALLBACK_VISIBILITY_TIMEOUT:
    raise environ.ImproperlyConfigured(
        "Need CALLBACK_CONNECT_TIMEOUT + CALLBACK_READ_TIMEOUT < CALLBACK_LEASE_SECONDS < CALLBACK_VISIBILITY_TIMEOUT"
    )
# Deliveries in flight to one endpoint at once, across all workers; more wait CALLBACK_BUSY_DELAY_SECONDS.
CALLBACK_ENDPOINT_CONCURRENCY = env.int("CALLBACK_ENDPOINT_CONCURRENCY", default=4)
# Each event writes a row per endpoint inside the mail path's own transactions: a key has a few.
CALLBACK_MAX_ENDPOINTS_PER_KEY = env.int("CALLBACK_MAX_ENDPOINTS_PER_KEY", default=10)
CALLBACK_BUSY_DELAY_SECONDS = env.int("CALLBACK_BUSY_DELAY_SECONDS", default=2)
# An endpoint whose attempts have all failed for this long is disabled (the reason is kept on it).
CALLBACK_DISABLE_AFTER_SECONDS = env.int("CALLBACK_DISABLE_AFTER_SECONDS", default=5 * 24 * 3600)
# A rotated-out secret still signs for this long.
CALLBACK_SECRET_OVERLAP_SECONDS = env.int("CALLBACK_SECRET_OVERLAP_SECONDS", default=24 * 3600)
# A delivery due this long ago whose task never ran (lost publish, dead-lettered task) is published again.
CALLBACK_STALE_SECONDS = env.int("CALLBACK_STALE_SECONDS", default=900)
# Plain-http endpoint URLs: only for development.
CALLBACK_ALLOW_HTTP = env.bool("CALLBACK_ALLOW_HTTP", default=DEBUG)
# Networks (CIDR) a callback may reach although they are loopback, private or link-local; none by default.
CALLBACK_ALLOWED_NETWORKS = env.list("CALLBACK_ALLOWED_NETWORKS", default=[])
# Encrypts the endpoints' signing secrets at rest; derived from SECRET_KEY when empty. Changing it
# (or SECRET_KEY, when empty) makes the stored secrets unreadable: rotate every endpoint's then.
CALLBACK_ENCRYPTION_KEY = env("CALLBACK_ENCRYPTION_KEY", default="")
# What a Celery worker consumes: "mail" or "callbacks" (`manage.py serve` runs one of each).
WORKER_CONSUMES = env("WORKER_CONSUMES", default="mail")
if WORKER_CONSUMES not in ("mail", "callbacks"):
    raise environ.ImproperlyConfigured("WORKER_CONSUMES must be mail or callbacks")
# The callbacks worker's greenlets.
CALLBACK_WORKER_CONCURRENCY = env.int("CALLBACK_WORKER_CONCURRENCY", default=16)
# Background jobs a Celery worker also runs, in greenlets of its own (mailer_project/worker_jobs.py):
# `serve` gives drain_dlq and housekeeping to the callbacks' worker. None by default.
WORKER_JOBS = env.list("WORKER_JOBS", default=[])
if not set(WORKER_JOBS) <= {"drain_dlq", "housekeeping"}:
    raise environ.ImproperlyConfigured(f"WORKER_JOBS: any of drain_dlq, housekeeping, not {WORKER_JOBS!r}")

# --- Celery on SQS (docs/architecture.md, "Celery on SQS") ----------------------------------------
# Two attempts in all (one retry) of at most 3 s to connect and 5 s to answer: SQS answers in
# milliseconds when it works, and a client waiting for its 503 should not wait long.
SQS_CLIENT_CONFIG = {"connect_timeout": 3, "read_timeout": 5, "retries": {"mode": "standard", "total_max_attempts": 2}}


def _broker_url() -> str:
    if not SQS_ENDPOINT_URL:
        return "sqs://"
    endpoint = urlsplit(SQS_ENDPOINT_URL)
    credentials = ""
    if AWS_ACCESS_KEY_ID:
        credentials = f"{quote(AWS_ACCESS_KEY_ID, safe='')}:{quote(AWS_SECRET_ACCESS_KEY or '', safe='')}@"
    return f"sqs://{credentials}{endpoint.netloc}"


CELERY_BROKER_URL = _broker_url()
# kombu's SQS transport with acks batched off the worker's event loop (see the module).
CELERY_BROKER_TRANSPORT = "mailer_project.sqs_transport:Transport"
CELERY_BROKER_TRANSPORT_OPTIONS = {
    "region": AWS_REGION,
    "is_secure": (urlsplit(SQS_ENDPOINT_URL).scheme == "https") if SQS_ENDPOINT_URL else True,
    # Long polls end before the SQS client's read timeout (SQS_CLIENT_CONFIG): the gevent pool
    # receives with that synchronous client, and a poll cut off by it loses its answer (the
    # messages in it stay hidden for the visibility timeout).
    "wait_time_seconds": SQS_CLIENT_CONFIG["read_timeout"] - 1,
    "polling_interval": 0.1,
    # Filled per process with the queue URL (mail/queues.py use_predefined_queue) so kombu never
    # creates a queue on its own: one it created would have no redrive policy.
    "predefined_queues": {},
    # The synchronous client publishes, acks and reads attributes (the worker receives through
    # kombu's own asynchronous client). botocore's defaults (60 s timeouts, retries) would hold
    # an API request for minutes when SQS hangs; the client must get its 503 within seconds.
    "client-config": SQS_CLIENT_CONFIG,
}
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_TASK_DEFAULT_QUEUE = SQS_QUEUE_NAME
# Both queues named; a worker consumes the one WORKER_CONSUMES says (mailer_project/celery.py).
CELERY_TASK_QUEUES = [Queue(name, Exchange(name), routing_key=name) for name in (SQS_QUEUE_NAME, CALLBACK_QUEUE_NAME)]
CELERY_TASK_CREATE_MISSING_QUEUES = False
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_IGNORE_RESULT = True
CELERY_RESULT_BACKEND = None
# Ack after the task ran, so a killed worker's message stays in SQS (guarantee 3) ...
CELERY_TASK_ACKS_LATE = True
# ... and not even then when it failed, so the redrive policy can dead-letter it (guarantee 7).
CELERY_TASK_ACKS_ON_FAILURE = False
CELERY_TASK_REJECT_ON_WORKER_LOST = True
# Prefetched messages burn their visibility time while they wait.
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
# Sends are I/O-bound: one process, its sends in flight as greenlets sharing its provider
# connection pools. Chosen from bench/delivery.py's measurements (docs/benchmarks.md): against a
# provider answering in 100 ms, gevent × 64 delivered more per process than any threads or
# prefork setting, at no more memory. `serve` names the pool on the worker's command line, the
# one way Celery monkey-patches for gevent before anything else is imported. Celery's own
# worker_pool setting is left alone: it must never select gevent (a worker started without the
# patching hangs), and any value would make Celery ignore `-P prefork` typed on its command line.
# So a plain `celery worker` runs Celery's default pool, prefork (mailer_project/celery.py).
WORKER_POOL = env("WORKER_POOL", default="gevent")
# Sends in flight per worker; 0: by the pool (64 greenlets or threads, a process per core).
WORKER_CONCURRENCY = env.int("WORKER_CONCURRENCY", default=0)
# SQS has no broadcast: remote control and events would try to create SNS topics.
CELERY_WORKER_ENABLE_REMOTE_CONTROL = False
CELERY_WORKER_SEND_TASK_EVENTS = False
# The root logger's handlers (JSON on stdout, CloudWatch) stay as LOGGING made them.
CELERY_WORKER_HIJACK_ROOT_LOGGER = False
# Touched by the running worker for the container's health check (docker/healthcheck.py); unset, none.
WORKER_HEARTBEAT_FILE = env("WORKER_HEARTBEAT_FILE", default="")
# botocore already retries a failed publish once (SQS_CLIENT_CONFIG); Celery's own publish
# retries on top would multiply the wait before the API can answer 503.
CELERY_TASK_PUBLISH_RETRY = False

# --- Logging: JSON lines on stdout (one readable line each with LOG_FORMAT=text) ----------------
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOG_FORMAT = env("LOG_FORMAT", default="json")
if LOG_FORMAT not in ("json", "text"):
    raise environ.ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}")
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "stdout": {"()": "mailer_project.log_format.formatter", "style": LOG_FORMAT},
        "json": {"()": "mailer_project.log_format.formatter", "style": "json"},
    },
    "handlers": {"stdout": {"class": "logging.StreamHandler", "formatter": "stdout"}},
    # A bad Host header: WARNING, one line, not an ERROR with a traceback (issue 23).
    "filters": {"host_refused_as_warning": {"()": "mailer_project.log_format.HostRefusedAsWarning"}},
    "root": {"handlers": ["stdout"], "level": LOG_LEVEL},
    "loggers": {
        "django.security.DisallowedHost": {"filters": ["host_refused_as_warning"]},
        "botocore": {"level": "WARNING"},
        "urllib3": {"level": "WARNING"},
        # Celery's own line per task ("received", "succeeded") repeats what mail.delivery logs
        # about each message, at a cost measured in the worker's throughput; failures still show.
        "celery.app.trace": {"level": "WARNING"},
        "celery.worker.strategy": {"level": "WARNING"},
        # django-axes announces itself at INFO in every process and command; lockouts are WARNING.
        "axes.apps": {"level": "WARNING"},
    },
}
if CLOUDWATCH_LOG_GROUP:
    # The same JSON lines, also shipped to CloudWatch Logs in batches (mailer_project.cloudwatch).
    LOGGING["handlers"]["cloudwatch"] = {
        "()": "mailer_project.cloudwatch.CloudWatchHandler",
        "log_group_name": CLOUDWATCH_LOG_GROUP,
        "region_name": AWS_REGION,
        "formatter": "json",
    }
    LOGGING["root"]["handlers"].append("cloudwatch")
