"""Alerts (docs/design.md section 13): one message per event, deduplicated, redacted, retried.

An alert is a condition with a ``key``; :func:`alerts_raise` records that it was seen:

- the first sighting (or the first after it resolved) raises a message: each configured channel
  (``ALERT_EMAILS`` through Django's mail backend, ``ALERT_WEBHOOK_URL`` as a Slack-compatible
  JSON POST) becomes ``pending`` and a delivery task is queued when the transaction commits;
- the same condition seen again while open only counts (``times_seen``, ``last_seen_at``); it
  raises a message again once ``ALERT_REALERT_S`` passed (``0``: never), except a stale-runs
  alert, which is sent once per outage;
- :func:`alerts_resolve` closes it (the next successful run, an intact audit chain), so its next
  sighting is a new message.

:func:`alerts_deliver` makes one attempt on one channel: it claims the channel (``pending`` ->
``sending``, attempts + 1) with a conditional update, sends outside any transaction within one
wall-clock deadline (``ALERT_TIMEOUT_S`` for the whole attempt, :mod:`alerts.senders`), and records
``sent``, or ``pending`` with the next attempt's time (``ALERT_RETRY_BASE_S`` doubling up to
``ALERT_RETRY_MAX_S``), or ``failed`` after ``ALERT_MAX_ATTEMPTS``. The Celery task retries at that
time; beat's sweep (:func:`alerts_deliver_due`) delivers whatever is due, including a delivery
that could not be queued (Redis down) and, with tasks run eagerly (no Redis), every retry.
Deliveries are queued once the raising thread holds no lock (``after_locks_released``): a run
is never held by a receiver. Run inline, a channel that failed is not tried again in the same
batch or sweep; its other alerts wait for the next sweep (docs/design.md, section 13).

The hooks (:func:`alerts.runs.alerts_reconciliation_run_finished`,
:func:`alerts_audit_verified`) listen to the runs' and verifications' announcements
(:mod:`alerts.receivers`) and never raise: a run or a verification is recorded before it
announces, and an alert that cannot be raised is logged at ERROR, not passed on. Text goes
through :func:`clean_text` (credentials in settings, URL passwords and the webhook's URL masked)
before it is stored or sent.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import partial
from hashlib import sha256
from urllib.parse import urlsplit

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import F, Q
from django.utils import timezone

from brokerops.accounts import DEFAULT_ACCOUNT, configured
from brokerops.locks import after_locks_released
from brokerops.redaction import REDACTED, redact

from .models import Alert
from .senders import SENDERS, AlertDeliveryError

logger = logging.getLogger(__name__)
Kind = Alert.Kind
Delivery = Alert.Delivery

EMAIL = "email"
WEBHOOK = "webhook"
CHANNELS = (EMAIL, WEBHOOK)
#: Kinds sent once per episode (an outage): never re-alerted while open.
ONCE_PER_EPISODE = frozenset({Kind.RUNS_STALE})
#: Fixed keys of the conditions there is one of at a time.
RUN_FAILED_KEY = "RUN_FAILED"
RUNS_STALE_KEY = "RUNS_STALE"
AUDIT_CHAIN_KEY = "AUDIT_CHAIN_BROKEN"
_KEY_MAX = 255
_SUBJECT_MAX = 255
_BODY_MAX = 8000
_MANY = 1000  # alerts per statement of alerts_raise_many
# Settings whose values never leave the process in an alert.
_SECRET_SETTINGS = (
    "SECRET_KEY",
    "ALPACA_API_KEY",
    "ALPACA_SECRET_KEY",
    "AUDIT_HMAC_KEY",
    "EMAIL_HOST_PASSWORD",
    "METRICS_TOKEN",
    "ALERT_WEBHOOK_URL",
)
_URL_PASSWORD = re.compile(r"(?<=://)[^/\s:@]+:[^/\s@]+@")


@dataclass(frozen=True)
class Raised:
    alert: Alert
    notified: bool  # this sighting raised a message (queued for delivery)


@dataclass(frozen=True)
class DeliveryResult:
    status: str  # the channel's status after the attempt (or as found: nothing to do)
    retry_in_s: float | None = None  # set when a retry is due after this long
    attempted: bool = False


# --- Raising and resolving ----------------------------------------------------------------------


def alerts_raise(
    *, kind: str, key: str, subject: str, body: str, now: datetime | None = None
) -> Raised:
    """Record a sighting of condition ``key``; raise a message when it is new, reopened or due
    again (module doc). Deliveries are queued on commit of the caller's transaction."""
    now = now or timezone.now()
    key = alert_key(key)
    try:
        with transaction.atomic():
            return _raise(kind, key, clean_text(subject), clean_text(body), now)
    except IntegrityError:  # another process created the same key first: count on its row
        with transaction.atomic():
            return _raise(kind, key, clean_text(subject), clean_text(body), now)


def _raise(kind: str, key: str, subject: str, body: str, now: datetime) -> Raised:
    alert = Alert.objects.select_for_update().filter(key=key).first()
    alert, notify = _sighting(alert, kind, key, subject, body, now)
    alert.save()
    return _announced(alert, notify)


def _sighting(
    alert: Alert | None, kind: str, key: str, subject: str, body: str, now: datetime
) -> tuple[Alert, bool]:
    """The alert (``None``: none yet) after one more sighting, not saved; and whether that
    sighting raises a message."""
    if alert is None:
        alert = Alert(key=key, kind=kind, first_seen_at=now, times_seen=0, notifications=0)
        notify = True
    elif alert.resolved_at is not None:  # a new episode
        alert.first_seen_at, alert.times_seen, alert.resolved_at = now, 0, None
        notify = True
    else:
        notify = _realert_due(alert, now)
    alert.kind = kind
    alert.last_seen_at = now
    alert.times_seen += 1
    if notify:
        alert.subject = subject[:_SUBJECT_MAX]
        alert.body = body[:_BODY_MAX]
        alert.notified_at = now
        alert.notifications += 1
        alert.last_error = ""
        for channel in CHANNELS:
            configured = _configured(channel)
            _set_channel(
                alert,
                channel,
                status=Delivery.PENDING if configured else Delivery.SKIPPED,
                attempts=0,
                next_attempt_at=None,  # due at once
                sent_at=None,
            )
    return alert, notify


def _announced(alert: Alert, notify: bool) -> Raised:
    """A saved sighting: a message raised is logged and its deliveries queued on commit."""
    if notify:
        logger.warning("alert %s: %s", alert.kind, alert.subject)
        for channel in CHANNELS:
            if getattr(alert, f"{channel}_status") == Delivery.PENDING:
                transaction.on_commit(partial(_queue_delivery, alert.pk, channel))
    return Raised(alert, notify)


def alerts_raise_many(
    sightings: Sequence[tuple[str, str, str, str]], *, now: datetime | None = None
) -> list[Raised]:
    """:func:`alerts_raise` of each ``(kind, key, subject, body)`` in turn, with the same
    outcome, in a few statements: the alerts read (and locked) together, the new ones inserted
    together, the others updated together. A run's 1,000 orphans took 4,000 statements one by
    one (docs/benchmarks.md). Another process creating one of the keys meanwhile, or a key
    twice: one by one."""
    now = now or timezone.now()
    items = [(kind, alert_key(key), subject, body) for kind, key, subject, body in sightings]
    if len({key for _, key, _, _ in items}) == len(items):
        try:
            with transaction.atomic():
                return _raise_many(items, now)
        except IntegrityError:
            pass
    return [
        alerts_raise(kind=kind, key=key, subject=subject, body=body, now=now)
        for kind, key, subject, body in items
    ]


def _raise_many(items: list[tuple[str, str, str, str]], now: datetime) -> list[Raised]:
    keys = [key for _, key, _, _ in items]
    found: dict[str, Alert] = {}
    for start in range(0, len(keys), _MANY):
        rows = Alert.objects.select_for_update().filter(key__in=keys[start : start + _MANY])
        found.update((alert.key, alert) for alert in rows)
    sighted = [
        _sighting(found.get(key), kind, key, clean_text(subject), clean_text(body), now)
        for kind, key, subject, body in items
    ]
    new = [alert for alert, _ in sighted if alert.pk is None]
    Alert.objects.bulk_create(new, batch_size=_MANY)
    if new and new[0].pk is None:  # a backend that returns no ids: read them back
        ids = dict(Alert.objects.filter(key__in=[a.key for a in new]).values_list("key", "pk"))
        for alert in new:
            alert.pk = ids[alert.key]
    fields = [f.name for f in Alert._meta.concrete_fields if not f.primary_key]
    Alert.objects.bulk_update([a for a in found.values()], fields, batch_size=_MANY)
    return [_announced(alert, notify) for alert, notify in sighted]


def _realert_due(alert: Alert, now: datetime) -> bool:
    if alert.kind in ONCE_PER_EPISODE or settings.ALERT_REALERT_S <= 0:
        return False
    return now - alert.notified_at >= timedelta(seconds=settings.ALERT_REALERT_S)


def alerts_resolve(
    *, kind: str, key: str | None = None, keep: set[str] | frozenset[str] = frozenset(),
    now: datetime | None = None, key_prefix: str | None = None,
) -> int:  # fmt: skip
    """Resolve the open alerts of ``kind`` (only ``key`` when given, only those whose key starts
    with ``key_prefix`` when given; not those in ``keep``); returns how many. Their next
    sighting raises a new message."""
    alerts = Alert.objects.filter(kind=kind, resolved_at__isnull=True)
    if key is not None:
        alerts = alerts.filter(key=alert_key(key))
    if key_prefix is not None:
        alerts = alerts.filter(key__startswith=key_prefix)
    if keep:
        alerts = alerts.exclude(key__in=keep)
    resolved = alerts.update(resolved_at=now or timezone.now())
    if resolved:
        logger.info("%d %s alert(s) resolved", resolved, kind)
    return resolved


def account_key(base: str, account: str) -> str:
    """The key of condition ``base`` for one account (docs/design.md section 16): one alert per
    account, resolved by that account's runs only. The single account of a deployment without
    ACCOUNTS_FILE keeps the plain key."""
    return base if account == DEFAULT_ACCOUNT else f"{base}@{account}"


def _of_account(account: str) -> str:
    return "" if account == DEFAULT_ACCOUNT else f" of account {account!r}"


def alert_key(key: str) -> str:
    """``key`` as stored: a key too long for the column keeps its start and a digest."""
    if len(key) <= _KEY_MAX:
        return key
    digest = sha256(key.encode()).hexdigest()
    return f"{key[: _KEY_MAX - 72]}~sha256:{digest}"


def clean_text(text: str) -> str:
    """``text`` without secrets: the values of credential settings, the webhook's URL and its
    path (a Slack webhook's secret), and passwords in URLs."""
    secrets = [value for name in _SECRET_SETTINGS if (value := getattr(settings, name, None))]
    webhook = settings.ALERT_WEBHOOK_URL
    if webhook and len(path := urlsplit(webhook).path) > 4:
        secrets.append(path)
    secrets = sorted((s for s in secrets if isinstance(s, str) and len(s) >= 4), key=len)
    return _URL_PASSWORD.sub(f"{REDACTED}@", redact(str(text), secrets=tuple(reversed(secrets))))


def _configured(channel: str) -> bool:
    if channel == EMAIL:
        return bool(settings.ALERT_EMAILS)
    return bool(settings.ALERT_WEBHOOK_URL)


def _set_channel(alert: Alert, channel: str, **values: object) -> None:
    for name, value in values.items():
        setattr(alert, f"{channel}_{name}", value)


_batch = threading.local()  # per thread: deliveries waiting for the locks to be released


def _queue_delivery(alert_id: int, channel: str) -> None:
    """After commit: queue a delivery once this thread holds no lock (a run raises its alerts
    while it holds the reconciliation lock; a receiver's answer must never hold the lock)."""
    queued = getattr(_batch, "queued", None)
    if queued is not None:  # a batch waits for the locks already
        queued.append((alert_id, channel))
        return
    _batch.queued = [(alert_id, channel)]
    after_locks_released(_deliver_queued)


def _deliver_queued() -> None:
    """Queue this thread's waiting deliveries. Run inline (tasks eager, no Redis), a channel
    that failed is not tried again in the same batch: its other alerts stay pending, due, for
    beat's sweep, so one slow receiver costs the caller one deadline, not one per alert."""
    queued, _batch.queued = getattr(_batch, "queued", None) or [], None
    failed: set[str] = set()
    for alert_id, channel in queued:
        if channel not in failed and not _enqueue(alert_id, channel):
            failed.add(channel)


def _enqueue(alert_id: int, channel: str) -> bool:
    """Queue one delivery; False when it ran inline and did not send. A broker that is down is
    logged: the sweep sends it."""
    from celery.result import EagerResult

    from .tasks import alerts_deliver_task

    try:
        result = alerts_deliver_task.delay(alert_id=alert_id, channel=channel)
    except Exception:  # never fail the caller: the row stays pending for the sweep
        logger.exception(
            "alert #%s: %s delivery not queued; beat's sweep sends it", alert_id, channel
        )
        return True
    return not isinstance(result, EagerResult) or result.result == Delivery.SENT


# --- Delivering ---------------------------------------------------------------------------------


def alerts_deliver(*, alert_id: int, channel: str, now: datetime | None = None) -> DeliveryResult:
    """One attempt to send alert ``alert_id``'s current message on ``channel`` (module doc)."""
    if channel not in CHANNELS:
        raise ValueError(f"unknown alert channel {channel!r}")
    now = now or timezone.now()
    status, attempts, next_at = (
        f"{channel}_status",
        f"{channel}_attempts",
        f"{channel}_next_attempt_at",
    )
    # A claim is a lease: an attempt whose worker died is taken again after it.
    lease = now + timedelta(seconds=3 * settings.ALERT_TIMEOUT_S + 30)
    claimed = (
        Alert.objects.filter(pk=alert_id, **{f"{status}__in": (Delivery.PENDING, Delivery.SENDING)})
        .filter(Q(**{f"{next_at}__lte": now}) | Q(**{f"{next_at}__isnull": True}))
        .update(**{status: Delivery.SENDING, attempts: F(attempts) + 1, next_at: lease})
    )
    alert = Alert.objects.filter(pk=alert_id).first()
    if alert is None:
        return DeliveryResult("gone")
    if not claimed:  # sent, given up, not configured, or not due yet / taken by another worker
        return DeliveryResult(getattr(alert, status))
    attempt = getattr(alert, attempts)
    try:
        SENDERS[channel](alert)
    except AlertDeliveryError as exc:
        return _attempt_failed(alert, channel, attempt, exc)
    Alert.objects.filter(pk=alert_id, **{status: Delivery.SENDING}).update(
        **{status: Delivery.SENT, next_at: None, f"{channel}_sent_at": timezone.now()}
    )
    logger.info("alert #%s sent by %s (attempt %d)", alert_id, channel, attempt)
    return DeliveryResult(Delivery.SENT, attempted=True)


def _attempt_failed(
    alert: Alert, channel: str, attempt: int, exc: AlertDeliveryError
) -> DeliveryResult:
    error = clean_text(f"{channel}: attempt {attempt}: {exc}")
    status, next_at = f"{channel}_status", f"{channel}_next_attempt_at"
    if attempt >= settings.ALERT_MAX_ATTEMPTS:
        logger.error("alert #%s: %s; giving up after %d attempts", alert.pk, error, attempt)
        result = DeliveryResult(Delivery.FAILED, attempted=True)
        changes = {status: Delivery.FAILED, next_at: None}
    else:
        retry_in = retry_delay_s(attempt)
        logger.warning("alert #%s: %s; retry in %.0f s", alert.pk, error, retry_in)
        result = DeliveryResult(Delivery.PENDING, retry_in_s=retry_in, attempted=True)
        changes = {
            status: Delivery.PENDING,
            next_at: timezone.now() + timedelta(seconds=retry_in),
        }
    Alert.objects.filter(pk=alert.pk, **{status: Delivery.SENDING}).update(
        **changes, last_error=error
    )
    return result


def retry_delay_s(attempt: int) -> float:
    """Wait after failed attempt ``attempt`` (1-based): doubling from the base, capped."""
    return min(settings.ALERT_RETRY_BASE_S * 2 ** (attempt - 1), settings.ALERT_RETRY_MAX_S)


def alerts_deliver_due(*, now: datetime | None = None) -> int:
    """Attempt every delivery that is due (beat's sweep); returns how many were sent."""
    now = now or timezone.now()
    sent = 0
    for channel in CHANNELS:
        next_at = f"{channel}_next_attempt_at"
        due = (
            Alert.objects.filter(**{f"{channel}_status__in": (Delivery.PENDING, Delivery.SENDING)})
            .filter(Q(**{f"{next_at}__lte": now}) | Q(**{f"{next_at}__isnull": True}))
            .values_list("pk", flat=True)
        )
        for alert_id in list(due):
            result = alerts_deliver(alert_id=alert_id, channel=channel, now=now)
            sent += result.status == Delivery.SENT and result.attempted
            if result.attempted and result.status != Delivery.SENT:
                break  # the receiver did not take it: the rest wait for the next sweep
    return sent


# --- Hooks: the conditions ----------------------------------------------------------------------


def alerts_check_stale_runs(
    *, now: datetime | None = None, account: str | None = None
) -> Raised | None:
    """Beat's check of one account (the default account when None; the task checks every
    configured one): no successful run of it for ``ALERT_STALE_INTERVALS`` reconcile intervals
    raises one alert per outage (resolved by the account's next success); returns it when
    raised or counted.

    Counted from the account's last successful (non-dry) run's end or, before any success, from
    its first run's start; with no run at all there is nothing to compare (``/readyz`` reports
    that)."""
    from reconciliation.models import ReconciliationRun
    from reconciliation.readings import last_successful_run_finished_at

    account = account or configured().rows_owner
    now = now or timezone.now()
    window_s = settings.RECONCILE_INTERVAL_S * settings.ALERT_STALE_INTERVALS
    since = last_successful_run_finished_at(account=account)
    what = "the last successful reconciliation run"
    if since is None:
        since = (
            ReconciliationRun.objects.filter(account=account)
            .order_by("started_at")
            .values_list("started_at", flat=True)
            .first()
        )
        what = "the first reconciliation run (none has succeeded yet)"
    key = account_key(RUNS_STALE_KEY, account)
    if since is None:
        return None
    age_s = (now - since).total_seconds()
    if age_s <= window_s:
        alerts_resolve(kind=Kind.RUNS_STALE, key=key, now=now)
        return None
    return alerts_raise(
        kind=Kind.RUNS_STALE,
        key=key,
        subject=f"No successful reconciliation run{_of_account(account)} for {_duration(age_s)}",
        body=(
            f"{what.capitalize()}{_of_account(account)} was at {since:%Y-%m-%d %H:%M:%S} UTC, "
            f"{_duration(age_s)} ago: more than {settings.ALERT_STALE_INTERVALS} intervals of "
            f"{settings.RECONCILE_INTERVAL_S} s. Check the Celery worker, beat and the failed "
            "runs in the admin. Sent once for this outage."
        ),
        now=now,
    )


def _duration(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60} h {minutes % 60} min" if minutes >= 60 else f"{minutes} min"


def alerts_audit_verified(*, verification) -> None:
    """After a verification is stored: a broken chain raises, an intact one resolves. Never
    raises."""
    try:
        if verification.ok:
            alerts_resolve(kind=Kind.AUDIT_CHAIN_BROKEN)
            return
        alerts_raise(
            kind=Kind.AUDIT_CHAIN_BROKEN,
            key=AUDIT_CHAIN_KEY,
            subject=f"Audit trail broken: {verification.problems} problem(s)",
            body=(
                f"Verification #{verification.pk} ({verification.trigger}) found "
                f"{verification.problems} problem(s) in {verification.rows_checked} rows; first: "
                f"{verification.first_problem}\nSee the verification in the admin and run "
                "`manage.py verify_audit` for the full report."
            ),
        )
    except Exception:  # alerting never fails the verification
        logger.exception("audit verification %s: alert not raised", verification.pk)
