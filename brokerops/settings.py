"""Django settings for brokerops.

Every setting is read once, here, from the environment through django-environ (``.env`` in the
project root is read when present). Each has an embedded default so that a newcomer's first run
needs nothing but Python: SQLite, Celery without a server, the embedded signal store and the
built-in paper broker. docs/configuration.md documents each variable.
"""

import math
import os
from datetime import datetime
from decimal import Decimal
from pathlib import Path
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import environ
from django.core.exceptions import ImproperlyConfigured

from brokerops.accounts import load_accounts, single_account

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()


def _env_decimal(name: str, default: str, *, low: Decimal, high: Decimal) -> Decimal:
    """A decimal setting within [low, high]; a bad value fails at start, naming the variable."""
    NUMERIC_SETTINGS[name] = (low, high)
    raw = env.str(name, default=default)
    try:
        value = Decimal(raw.strip())
    except ArithmeticError:
        value = None
    if value is None or not value.is_finite() or not low <= value <= high:
        raise ImproperlyConfigured(f"{name} must be a number from {low} to {high}, not {raw!r}")
    return value


#: Every numeric variable read through :func:`_env_number`, with its bounds (lowest, highest).
NUMERIC_SETTINGS: dict[str, tuple[float, float]] = {}


def _env_number(name: str, default: float, *, low: float, high: float) -> float:
    """A numeric setting within [low, high] (a whole number when the bounds and the default are
    whole numbers). ``nan``, ``inf``, a number out of range or no number at all fails at start
    with one line naming the variable and its range (docs/configuration.md), instead of a
    traceback, a silent skip (a negative batch size) or an overflow (a look-back of 10^9 h)."""
    whole = all(isinstance(v, int) for v in (default, low, high))
    NUMERIC_SETTINGS[name] = (low, high)
    raw = env.str(name, default=str(default))
    try:
        value = int(raw.strip()) if whole else float(raw.strip())
    except ValueError:
        value = None
    if value is None or not math.isfinite(value) or not low <= value <= high:
        kind = "a whole number" if whole else "a number"
        raise ImproperlyConfigured(f"{name} must be {kind} from {low} to {high}, not {raw!r}")
    return value


environ.Env.read_env(BASE_DIR / ".env")

# A key that only ever signs development sessions. Its "django-insecure-" prefix makes
# `check --deploy` flag it (security.W009), so it
# cannot reach production unnoticed: production sets DJANGO_SECRET_KEY.
DEV_SECRET_KEY = "django-insecure-dev-only-brokerops-key-never-use-in-production-0000"  # noqa: S105
SECRET_KEY = env.str("DJANGO_SECRET_KEY", default=DEV_SECRET_KEY)
DEBUG = env.bool("DJANGO_DEBUG", default=False)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "brokerops.intent",
    "audit",
    "reconciliation",
    "orders",
    "ledger",
    "alerts",
    # Evidence packs (docs/design.md section 19): read every app's trail, beside alerts.
    "evidence",
    # The compliance workspace (the admin of every app): the top floor, after the apps it reads.
    "workspace",
    "demo",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Times in the viewer's browser zone (workspace/zone.py, docs/compliance.md).
    "workspace.zone.viewer_zone_middleware",
]

ROOT_URLCONF = "brokerops.urls"
WSGI_APPLICATION = "brokerops.wsgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # The workspace's templates, as a directory too: its overrides of the admin's own
        # templates (the index, the change list) must win over django.contrib.admin's, which
        # comes first in INSTALLED_APPS.
        "DIRS": [BASE_DIR / "workspace" / "templates"],
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

DATABASES = {
    "default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'brokerops.sqlite3'}"),
}
DATABASES["default"].setdefault(
    "CONN_MAX_AGE", _env_number("DATABASE_CONN_MAX_AGE", 0, low=0, high=86400)
)
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # The embedded setup runs the admin, a worker and beat as threads of one process: wait for
    # a write lock instead of failing, and take it at the start of each transaction.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {"timeout": 30, "transaction_mode": "IMMEDIATE"}
    )
    # Tests use a file too: an in-memory test database shares one cache between threads, where
    # a lock conflict fails at once ("database table is locked") instead of waiting its turn.
    DATABASES["default"].setdefault("TEST", {}).setdefault(
        "NAME", str(BASE_DIR / "test_brokerops.sqlite3")
    )
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
# Timestamps in the admin with seconds and zone (brokerops/formats/en/formats.py).
FORMAT_MODULE_PATH = ["brokerops.formats"]

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {"BACKEND": "whitenoise.storage.CompressedStaticFilesStorage"},
}
# Serve the admin's static files straight from the apps when collectstatic has not run (the
# embedded first run); production runs collectstatic and leaves this off.
WHITENOISE_USE_FINDERS = env.bool("WHITENOISE_USE_FINDERS", default=True)

# --- Security (production values switch on with DJANGO_SECURE=true; `check --deploy` is clean) ---
_SECURE = env.bool("DJANGO_SECURE", default=False)
SECURE_SSL_REDIRECT = _SECURE
SESSION_COOKIE_SECURE = _SECURE
CSRF_COOKIE_SECURE = _SECURE
SECURE_HSTS_SECONDS = _env_number(
    "DJANGO_HSTS_SECONDS", 31536000 if _SECURE else 0, low=0, high=315360000
)
SECURE_HSTS_INCLUDE_SUBDOMAINS = _SECURE
SECURE_HSTS_PRELOAD = _SECURE
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if _SECURE else None
SECURE_CONTENT_TYPE_NOSNIFF = True
X_FRAME_OPTIONS = "DENY"

# --- Redis, Celery -----------------------------------------------------------------------------
# Unset REDIS_URL means "embedded": an in-memory Celery transport, tasks run eagerly in the
# calling process, and the rate limiter and locks are in-process.
REDIS_URL = env.str("REDIS_URL", default="") or None

# Single-flight locks (brokerops.locks) are Redis leases this long, renewed every third of it
# while the holder runs: a killed worker frees its lock within one lease.
LOCK_LEASE_S = _env_number("LOCK_LEASE_S", 60.0, low=0.001, high=3600.0)

CELERY_BROKER_URL = REDIS_URL or "memory://"
CELERY_RESULT_BACKEND = REDIS_URL or "cache+memory://"
CELERY_TASK_ALWAYS_EAGER = env.bool("CELERY_TASK_ALWAYS_EAGER", default=REDIS_URL is None)
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_TASK_TIME_LIMIT = _env_number("CELERY_TASK_TIME_LIMIT", 900, low=1, high=86400)
CELERY_TASK_SOFT_TIME_LIMIT = _env_number("CELERY_TASK_SOFT_TIME_LIMIT", 840, low=1, high=86400)
CELERY_RESULT_EXPIRES = 24 * 3600
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_TIMEZONE = TIME_ZONE
# How often beat triggers each job (seconds).
RECONCILE_INTERVAL_S = _env_number("RECONCILE_INTERVAL_S", 300, low=1, high=604800)
ORDER_SUBMIT_INTERVAL_S = _env_number("ORDER_SUBMIT_INTERVAL_S", 30, low=1, high=86400)
ORDER_SYNC_INTERVAL_S = _env_number("ORDER_SYNC_INTERVAL_S", 60, low=1, high=86400)
# The account's activities read from their cursor (docs/design.md section 18.2).
ACTIVITIES_SYNC_INTERVAL_S = _env_number("ACTIVITIES_SYNC_INTERVAL_S", 60, low=1, high=86400)
AUDIT_VERIFY_INTERVAL_S = _env_number("AUDIT_VERIFY_INTERVAL_S", 86400, low=1, high=2678400)
# The newest audit rows written outside a cycle (an operator's action, a rejection by the
# watcher) are covered by a signed chain head within this interval (docs/design.md section 12).
AUDIT_HEADS_INTERVAL_S = _env_number("AUDIT_HEADS_INTERVAL_S", 60, low=1, high=86400)
# Per-account jobs (reconciliation, order cycle, sync): beat fires one fan-out per interval, which
# enqueues one task per account on ACCOUNTS_QUEUE, each delayed by a random part of the first
# FANOUT_SPREAD of the interval (docs/design.md section 16).
ACCOUNTS_QUEUE = env.str("ACCOUNTS_QUEUE", default="accounts")
FANOUT_SPREAD = _env_number("FANOUT_SPREAD", 0.1, low=0.0, high=0.9)

# --- Audit integrity (docs/design.md section 12) --------------------------------------------------
# Signs the chain heads every finished run records: rewriting the chains then needs this key.
# Keep it out of the database's reach (a secret store); unset, heads are recorded unsigned.
AUDIT_HMAC_KEY = env.str("AUDIT_HMAC_KEY", default="") or None
# Processes verify_audit recomputes the chains with (0: one per core). Celery workers, whose
# processes cannot fork children, verify in their own process.
AUDIT_VERIFY_PROCESSES = _env_number("AUDIT_VERIFY_PROCESSES", 0, low=0, high=256)
# Years every audit row is kept (SEC rule 17a-4, FINRA rule 4511: six; docs/design.md section
# 19). Nothing deletes a younger row; the database's own backups must be kept as long (README).
AUDIT_RETENTION_YEARS = _env_number("AUDIT_RETENTION_YEARS", 6, low=6, high=100)

# --- Broker (Alpaca) ---------------------------------------------------------------------------
ALPACA_API_KEY = env.str("ALPACA_API_KEY", default="") or None
ALPACA_SECRET_KEY = env.str("ALPACA_SECRET_KEY", default="") or None
ALPACA_PAPER = env.bool("ALPACA_PAPER", default=True)
ALPACA_BASE_URL = env.str("ALPACA_BASE_URL", default="") or None
ALPACA_RATE_LIMIT_PER_MIN = _env_number("ALPACA_RATE_LIMIT_PER_MIN", 200, low=1, high=100000)
ALPACA_TIMEOUT_S = _env_number("ALPACA_TIMEOUT_S", 10.0, low=0.001, high=600.0)
# Longest pause a 429 can impose on every worker (Retry-After / X-RateLimit-Reset are clamped).
ALPACA_MAX_PAUSE_S = _env_number("ALPACA_MAX_PAUSE_S", 65.0, low=0.001, high=3600.0)
# A paged read of orders still going after this many pages fails as malformed (500 per page).
ALPACA_MAX_ORDER_PAGES = _env_number("ALPACA_MAX_ORDER_PAGES", 2000, low=1, high=1000000)
# Market-data API (latest trades for the risk check). Unset: https://data.alpaca.markets with
# real keys, the paper broker's own URL without them.
ALPACA_DATA_URL = env.str("ALPACA_DATA_URL", default="") or None

# The accounts' file (TOML, docs/configuration.md "Accounts"). Unset: one account, "default", of
# the ALPACA_* variables and CLIENT_ORDER_ID_PREFIX.
ACCOUNTS_FILE = env.str("ACCOUNTS_FILE", default="") or None

# The trade_updates websocket. Unset: derived from the trading endpoint (ws(s)://host/stream).
ALPACA_STREAM_URL = env.str("ALPACA_STREAM_URL", default="") or None
# The stream consumer reconnects after this long at first, doubling up to the cap (seconds),
# each wait jittered; a connection that got as far as listening resets it.
STREAM_RECONNECT_MIN_S = _env_number("STREAM_RECONNECT_MIN_S", 0.5, low=0.001, high=3600.0)
STREAM_RECONNECT_MAX_S = _env_number("STREAM_RECONNECT_MAX_S", 30.0, low=0.001, high=3600.0)

# --- Intent (signals) --------------------------------------------------------------------------
SIGNAL_STORE = env.str("SIGNAL_STORE", default="local")
GOOGLE_CLOUD_PROJECT = env.str("GOOGLE_CLOUD_PROJECT", default="") or None
FIRESTORE_EMULATOR_HOST = env.str("FIRESTORE_EMULATOR_HOST", default="") or None
FIRESTORE_SIGNALS_COLLECTION = env.str("FIRESTORE_SIGNALS_COLLECTION", default="signals")

# --- Orders ------------------------------------------------------------------------------------
CLIENT_ORDER_ID_PREFIX = env.str("CLIENT_ORDER_ID_PREFIX", default="bo")
# Risk limit: the largest order value (qty x price, or notional) sent; 0 turns the check off.
ORDER_MAX_NOTIONAL = _env_decimal(
    "ORDER_MAX_NOTIONAL", "100000", low=Decimal(0), high=Decimal("1e12")
)
# PENDING signals taken per order cycle.
ORDER_BATCH_SIZE = _env_number("ORDER_BATCH_SIZE", 200, low=1, high=10000)
# An order younger than this may not show in the broker's bulk list yet: it is left alone.
ORDER_GRACE_S = _env_number("ORDER_GRACE_S", 30, low=0, high=86400)
# A CREATED attempt untouched this long is taken over by the next cycle (its worker died).
ORDER_CLAIM_TIMEOUT_S = _env_number("ORDER_CLAIM_TIMEOUT_S", 120, low=1, high=86400)
# The signal watcher (`manage.py watch_signals`): the local store is polled this often
# (seconds, at most 1: Firestore pushes instead); this many threads send signals; a lost
# listener reconnects after WATCH_RECONNECT_MIN_S at first, doubling to the cap, jittered.
WATCH_POLL_S = _env_number("WATCH_POLL_S", 0.5, low=0.001, high=1.0)
WATCH_WORKERS = _env_number("WATCH_WORKERS", 4, low=1, high=256)
# Firestore's listener runs in a child process of its own (its own interpreter lock): on a
# thread of the watcher it fell seconds behind at 50 signals/s on two cores.
WATCH_LISTENER_PROCESS = env.bool("WATCH_LISTENER_PROCESS", default=True)
WATCH_RECONNECT_MIN_S = _env_number("WATCH_RECONNECT_MIN_S", 0.5, low=0.001, high=3600.0)
WATCH_RECONNECT_MAX_S = _env_number("WATCH_RECONNECT_MAX_S", 30.0, low=0.001, high=3600.0)

# --- Reconciliation ----------------------------------------------------------------------------
# Orders closed within this window are read in bulk (open ones always are).
RECONCILE_ORDER_LOOKBACK_HOURS = _env_number(
    "RECONCILE_ORDER_LOOKBACK_HOURS", 168, low=1, high=8784
)
# Runs read only the orders changed since the account's last successful run; the whole look-back
# is read when the last full read is this old (docs/design.md section 18.3), or on demand.
RECONCILE_FULL_EVERY_S = _env_number("RECONCILE_FULL_EVERY_S", 86400, low=0, high=31536000)
# Targeted look-ups per run to confirm an orphan or a missing order before acting on it.
RECONCILE_MAX_CONFIRMATIONS = _env_number("RECONCILE_MAX_CONFIRMATIONS", 50, low=0, high=10000)
# Alpaca takes a crypto buy's fee in the coin received (25 bps taker): a holding short of the
# filled quantity by at most this many basis points of it is not a QTY_MISMATCH.
CRYPTO_FEE_TOLERANCE_BPS = _env_decimal(
    "CRYPTO_FEE_TOLERANCE_BPS", "40", low=Decimal(0), high=Decimal(10_000)
)

# --- Probes (docs/design.md section 13; brokerops/health.py) --------------------------------------
# /readyz fails when the last successful reconciliation run finished longer ago than this (0: the
# check is off). With no successful run yet, a process is ready for this long after its start.
READY_MAX_RUN_AGE_S = _env_number(
    "READY_MAX_RUN_AGE_S", 3.0 * RECONCILE_INTERVAL_S, low=0.0, high=2678400.0
)
# Connect/ping timeout of /readyz's database and Redis checks (seconds).
READY_CHECK_TIMEOUT_S = _env_number("READY_CHECK_TIMEOUT_S", 2.0, low=0.001, high=60.0)
# Probes answer over plain HTTP from inside the container even with DJANGO_SECURE on.
SECURE_REDIRECT_EXEMPT = [r"^healthz$", r"^readyz$", r"^metrics$"]

# --- Metrics (docs/design.md section 13; brokerops/metrics.py, docs/operations.md, "Metrics") -----
# Bearer token /metrics requires; unset: /metrics answers loopback clients only.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="") or None
# prometheus_client's multiprocess directory, shared by every process (web, workers, stream,
# watcher). prometheus_client reads the variable itself when the first metric is made; here it
# tells /metrics to add up the directory's files. Unset: each process counts on its own.
PROMETHEUS_MULTIPROC_DIR = env.str("PROMETHEUS_MULTIPROC_DIR", default="") or None

# --- Mail and alerts (docs/design.md section 13; alerts/) -----------------------------------------
# Django's mail backend from one URL (smtp+tls://user:password@host:587, smtp+ssl://...:465,
# consolemail:// prints to stdout). Alerts go to ALERT_EMAILS through it, and as a JSON POST to
# ALERT_WEBHOOK_URL (Slack-compatible); either, both or neither may be set.
vars().update(env.email_url("EMAIL_URL", default="consolemail://"))
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="brokerops@localhost")
ALERT_EMAILS = env.list("ALERT_EMAILS", default=[])
ALERT_WEBHOOK_URL = env.str("ALERT_WEBHOOK_URL", default="") or None
# Breaks (docs/design.md section 17): how long a break may stay unsigned-off, by severity, before
# it is overdue (seconds from when it opened).
BREAK_DUE_CRITICAL_S = _env_number("BREAK_DUE_CRITICAL_S", 3600, low=1, high=31536000)
BREAK_DUE_WARNING_S = _env_number("BREAK_DUE_WARNING_S", 86400, low=1, high=31536000)
BREAK_DUE_INFO_S = _env_number("BREAK_DUE_INFO_S", 259200, low=1, high=31536000)
# An alert still open (the same orphan found run after run) is sent again after this long
# (seconds; 0: never again until it resolved). A stale-runs alert is sent once per outage.
ALERT_REALERT_S = _env_number("ALERT_REALERT_S", 86400, low=0, high=31536000)
# Wall-clock deadline of one delivery attempt, email or webhook: connecting, sending and the
# whole answer (seconds; a receiver trickling its answer is cut off at it). Deliveries start
# only after a run released its lock (docs/design.md, section 13).
ALERT_TIMEOUT_S = _env_number("ALERT_TIMEOUT_S", 10.0, low=0.001, high=600.0)
EMAIL_TIMEOUT = ALERT_TIMEOUT_S
# A failed delivery is retried in the background after ALERT_RETRY_BASE_S, doubling up to
# ALERT_RETRY_MAX_S, ALERT_MAX_ATTEMPTS attempts in all; beat sweeps due retries every
# ALERT_SWEEP_INTERVAL_S (also the safety net for a delivery that could not be queued).
ALERT_MAX_ATTEMPTS = _env_number("ALERT_MAX_ATTEMPTS", 8, low=1, high=100)
ALERT_RETRY_BASE_S = _env_number("ALERT_RETRY_BASE_S", 30.0, low=0.001, high=86400.0)
ALERT_RETRY_MAX_S = _env_number("ALERT_RETRY_MAX_S", 3600.0, low=0.001, high=604800.0)
ALERT_SWEEP_INTERVAL_S = _env_number("ALERT_SWEEP_INTERVAL_S", 60, low=1, high=86400)
# "No successful run" alerts after this many RECONCILE_INTERVAL_S without one (beat checks every
# interval).
ALERT_STALE_INTERVALS = _env_number("ALERT_STALE_INTERVALS", 3, low=1, high=1000)
# The end-of-day report (docs/design.md section 17; reconciliation/eod.py): mailed once a day,
# after REPORT_AT (24 h HH:MM) in the time zone REPORT_TZ, to REPORT_EMAILS (empty: beat sends
# nothing and says so once in the log; `manage.py eod_report` still prints it).
REPORT_EMAILS = env.list("REPORT_EMAILS", default=[])
REPORT_AT = env.str("REPORT_AT", default="16:30").strip()
REPORT_TZ = env.str("REPORT_TZ", default="America/New_York").strip()
# Days before today whose report beat still sends late when it was never sent (beat or the mail
# server down past the day's end); 0: none.
REPORT_CATCH_UP_DAYS = int(_env_number("REPORT_CATCH_UP_DAYS", 7, low=0, high=366))

# One line per event on stderr. The operator commands (reconcile, submit_orders, sync_orders)
# keep this "console" handler to CRITICAL while they run, so an error an operator can act on is
# one line; `-v 2` shows the log at LOG_LEVEL, and LOG_LEVEL=DEBUG adds the tracebacks.
# LOG_FORMAT=json writes each record as one JSON object (brokerops/logs.py: ts, level, logger,
# message, run_id, client_order_id, exc_info) for log shippers.
LOG_LEVEL = env.str("LOG_LEVEL", default="INFO").upper()
LOG_FORMAT = env.str("LOG_FORMAT", default="text").strip().lower()
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
        "json": {"()": "brokerops.logs.JsonFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": "json" if LOG_FORMAT == "json" else "plain",
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
}
# Celery's worker and beat replace the root logger's handlers with their own text format unless
# told not to: in JSON mode they keep the handler above, so their lines are JSON too.
CELERY_WORKER_HIJACK_ROOT_LOGGER = LOG_FORMAT != "json"

if SIGNAL_STORE not in {"local", "firestore"}:
    raise ImproperlyConfigured(f"SIGNAL_STORE must be 'local' or 'firestore', not {SIGNAL_STORE!r}")
if LOG_LEVEL not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
    raise ImproperlyConfigured(
        f"LOG_LEVEL must be DEBUG, INFO, WARNING, ERROR or CRITICAL, not {LOG_LEVEL!r}"
    )
if LOG_FORMAT not in {"text", "json"}:
    raise ImproperlyConfigured(f"LOG_FORMAT must be 'text' or 'json', not {LOG_FORMAT!r}")
try:
    datetime.strptime(REPORT_AT, "%H:%M")
except ValueError:
    raise ImproperlyConfigured(
        f"REPORT_AT must be a time as HH:MM (24 h), not {REPORT_AT!r}"
    ) from None
try:
    ZoneInfo(REPORT_TZ)
except (ZoneInfoNotFoundError, ValueError):
    raise ImproperlyConfigured(
        f"REPORT_TZ must be a time zone name such as America/New_York, not {REPORT_TZ!r}"
    ) from None
# The accounts this deployment serves (docs/design.md section 16): the file's, else one account
# "default" of the ALPACA_* variables above. A bad file stops the start with one line.
ACCOUNTS = (
    load_accounts(ACCOUNTS_FILE, os.environ, rate_limit_per_min=ALPACA_RATE_LIMIT_PER_MIN)
    if ACCOUNTS_FILE
    else single_account(
        api_key=ALPACA_API_KEY,
        secret_key=ALPACA_SECRET_KEY,
        paper=ALPACA_PAPER,
        base_url=ALPACA_BASE_URL,
        data_url=ALPACA_DATA_URL,
        stream_url=ALPACA_STREAM_URL,
        client_order_id_prefix=CLIENT_ORDER_ID_PREFIX,
        rate_limit_per_min=ALPACA_RATE_LIMIT_PER_MIN,
    )
)
for _low, _high in (
    ("STREAM_RECONNECT_MIN_S", "STREAM_RECONNECT_MAX_S"),
    ("WATCH_RECONNECT_MIN_S", "WATCH_RECONNECT_MAX_S"),
    ("ALERT_RETRY_BASE_S", "ALERT_RETRY_MAX_S"),
    ("CELERY_TASK_SOFT_TIME_LIMIT", "CELERY_TASK_TIME_LIMIT"),
):
    if vars()[_low] > vars()[_high]:
        raise ImproperlyConfigured(
            f"{_low} must be at most {_high} ({vars()[_high]}), not {vars()[_low]!r}"
        )
