"""Liveness and readiness (docs/design.md section 13): what ``/healthz`` and ``/readyz`` answer.

- **Liveness** (``/healthz``): the process answers. Nothing is checked, nothing is read.
- **Readiness** (``/readyz``): three checks, each named with its state in the answer:

  - ``database``: a fresh connection to the Django database (``connect_timeout`` of
    ``READY_CHECK_TIMEOUT_S``) runs ``SELECT 1``;
  - ``redis``: a ``PING`` with ``READY_CHECK_TIMEOUT_S`` socket timeouts, when ``REDIS_URL`` is
    set (``skipped`` otherwise: the embedded set-up has no Redis);
  - ``reconciliation``: the last successful (non-dry) run finished at most
    ``READY_MAX_RUN_AGE_S`` ago (default three ``RECONCILE_INTERVAL_S``; ``0`` turns the check
    off); with several accounts, each account's own last run (the answer names a stale one). A
    fresh install has no run yet: it is ready while this process has been up for less than
    ``READY_MAX_RUN_AGE_S`` (the first scheduled run has that long to succeed), and not ready
    after that, since then nothing is reconciling.

The answer says which check failed and how (the exception's class, or the run's age), never an
error's text: the endpoint needs no login, and driver messages name hosts and users. The full
message is logged (WARNING) when a check starts failing in this process, once, and again (INFO)
when it recovers; a probe that changes nothing logs nothing.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from django.conf import settings
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.utils import timezone

from brokerops import readings

logger = logging.getLogger(__name__)

OK = "ok"
FAILING = "failing"
SKIPPED = "skipped"

# Monotonic time this process imported the module (the web process does so when it loads its
# URLs): the grace period of a fresh install counts from here.
PROCESS_STARTED = time.monotonic()


@dataclass(frozen=True)
class Check:
    """One readiness check: ``state`` is ``ok``, ``failing`` or ``skipped``; ``detail`` is safe
    to show to anyone."""

    name: str
    state: str
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.state != FAILING


@dataclass(frozen=True)
class Readiness:
    checks: tuple[Check, ...]

    @property
    def ok(self) -> bool:
        return all(check.ok for check in self.checks)

    def as_json(self) -> dict:
        return {
            "status": "ready" if self.ok else "not ready",
            "failing": [check.name for check in self.checks if not check.ok],
            "checks": {
                check.name: {"state": check.state, "detail": check.detail} for check in self.checks
            },
        }


def health_readiness(*, connection=None, redis_url: str | None = None) -> Readiness:
    """Run the three checks (module doc) against the configured database and Redis.

    ``connection`` (a Django database wrapper) and ``redis_url`` default to the settings'
    (``DATABASES["default"]``, ``REDIS_URL``)."""
    timeout_s = settings.READY_CHECK_TIMEOUT_S
    database = check_database(connection=connection, timeout_s=timeout_s)
    redis_check = check_redis(
        url=redis_url if redis_url is not None else settings.REDIS_URL, timeout_s=timeout_s
    )
    if not database.ok:
        run = Check("reconciliation", SKIPPED, "database unreachable")
        return Readiness((database, redis_check, run))
    alias = connection.alias if connection is not None else DEFAULT_DB_ALIAS
    try:
        run = _reconciliation_check(alias)
    except DatabaseError as exc:  # e.g. migrations not applied yet, or the database just went
        _note_failure("reconciliation", f"reconciliation runs unreadable: {exc}")
        run = Check("reconciliation", FAILING, f"runs unreadable ({type(exc).__name__})")
    return Readiness((database, redis_check, run))


def _reconciliation_check(alias: str) -> Check:
    """One account: its last success (:func:`check_reconciliation`). Several: each account's own,
    so one account whose runs stopped fails the check by name even while the others run."""
    max_age_s, up_s = settings.READY_MAX_RUN_AGE_S, time.monotonic() - PROCESS_STARTED
    names = _account_names()
    if len(names) < 2 or max_age_s <= 0:
        last_success = readings.last_successful_run_finished_at(using=alias)
        return check_reconciliation(max_age_s=max_age_s, last_success=last_success, up_s=up_s)
    now = timezone.now()
    lasts = {
        name: readings.last_successful_run_finished_at(account=name, using=alias) for name in names
    }
    checks = {
        name: check_reconciliation(max_age_s=max_age_s, last_success=last, up_s=up_s, now=now)
        for name, last in lasts.items()
    }
    failing = [f"account {name}: {c.detail}" for name, c in checks.items() if not c.ok]
    if failing:
        return Check("reconciliation", FAILING, "; ".join(failing))
    detail = f"{len(names)} accounts"
    ran = [last for last in lasts.values() if last is not None]
    if ran:
        detail += f"; the oldest last success {max((now - min(ran)).total_seconds(), 0):.0f} s ago"
    waiting = [name for name, last in lasts.items() if last is None]
    if waiting:
        detail += f"; no successful run yet: {', '.join(waiting)}"
    return Check("reconciliation", OK, detail)


def _account_names() -> list[str]:
    from django.core.exceptions import ImproperlyConfigured

    from brokerops.accounts import configured

    try:
        return list(configured().names)
    except ImproperlyConfigured:  # refused at start in a real process; the probe still answers
        return []


def check_database(*, connection=None, timeout_s: float) -> Check:
    """``SELECT 1`` over a new connection made with the Django connection's own parameters and a
    short connect timeout (a stopped or unreachable server fails within ``timeout_s``)."""
    connection = connection if connection is not None else connections[DEFAULT_DB_ALIAS]
    try:
        params = connection.get_connection_params()
        if connection.vendor == "postgresql":
            # libpq counts whole seconds (and treats 1 as 2).
            params["connect_timeout"] = max(2, math.ceil(timeout_s))
            statement_timeout = f"-c statement_timeout={int(timeout_s * 1000)}"
            params["options"] = f"{params.get('options', '')} {statement_timeout}".strip()
        elif connection.vendor == "sqlite":
            params["timeout"] = timeout_s
        raw = connection.Database.connect(**params)
        try:
            cursor = raw.cursor()
            cursor.execute("SELECT 1")
            cursor.fetchone()
        finally:
            raw.close()
    except (connection.Database.Error, OSError) as exc:
        _note_failure("database", f"{connection.vendor} database unreachable: {exc}")
        return Check("database", FAILING, f"unreachable ({type(exc).__name__})")
    _note_recovery("database")
    return Check("database", OK, connection.vendor)


def check_redis(*, url: str | None, timeout_s: float) -> Check:
    """``PING`` with short timeouts; ``skipped`` without a Redis URL (the embedded set-up)."""
    if not url:
        return Check("redis", SKIPPED, "REDIS_URL is not set")
    import redis

    try:
        _redis_client(url, timeout_s).ping()
    except redis.RedisError as exc:
        from brokerops.locks import redis_location

        _note_failure("redis", f"Redis at {redis_location(url)} unreachable: {exc}")
        return Check("redis", FAILING, f"unreachable ({type(exc).__name__})")
    _note_recovery("redis")
    return Check("redis", OK, "")


def check_reconciliation(
    *, max_age_s: float, last_success: datetime | None, up_s: float, now: datetime | None = None
) -> Check:
    """The last successful run is recent enough (module doc for the fresh-install rule)."""
    if max_age_s <= 0:
        return Check("reconciliation", SKIPPED, "READY_MAX_RUN_AGE_S is 0")
    if last_success is None:
        if up_s < max_age_s:
            return Check(
                "reconciliation",
                OK,
                f"no successful run yet; {max_age_s - up_s:.0f} s of grace left after start",
            )
        _note_failure("reconciliation", f"no successful reconciliation run in {up_s:.0f} s")
        return Check("reconciliation", FAILING, f"no successful run since start {up_s:.0f} s ago")
    age_s = ((now or timezone.now()) - last_success).total_seconds()
    if age_s > max_age_s:
        _note_failure(
            "reconciliation",
            f"last successful reconciliation run finished {age_s:.0f} s ago (bound {max_age_s:g})",
        )
        return Check(
            "reconciliation", FAILING, f"last success {age_s:.0f} s ago, over {max_age_s:g} s"
        )
    _note_recovery("reconciliation")
    return Check("reconciliation", OK, f"last success {max(age_s, 0):.0f} s ago")


@cache
def _redis_client(url: str, timeout_s: float):
    """One client per URL, kept: its pool reconnects after an outage, and a probe reuses the
    connection instead of opening one each time."""
    import redis

    return redis.Redis.from_url(url, socket_timeout=timeout_s, socket_connect_timeout=timeout_s)


# Checks failing in this process, so a failure and a recovery are each logged once, not on every
# probe.
_failing: set[str] = set()
_failing_lock = threading.Lock()


def _note_failure(name: str, message: str) -> None:
    with _failing_lock:
        if name in _failing:
            return
        _failing.add(name)
    logger.warning("readiness: %s", message)


def _note_recovery(name: str) -> None:
    with _failing_lock:
        if name not in _failing:
            return
        _failing.discard(name)
    logger.info("readiness: %s check passes again", name)
