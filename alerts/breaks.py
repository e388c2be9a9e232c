"""Overdue breaks (docs/design.md sections 13 and 17): a live break past its due time raises one
``BREAK_OVERDUE`` alert through the alert channels, and again only every ``ALERT_REALERT_S``
(``0``: once per episode); the break records an ``overdue`` event each time
(:func:`reconciliation.breaks.breaks_mark_overdue`, the breaks' one writer).

Checked per account by beat (``alerts.check_overdue_breaks``) and at the end of each of the
account's runs. One alert per break (its key names the break), resolved once the break is no
longer live and overdue (signed off, cleared by a run, or reopened: a reopened break starts a new
episode and its next overdue sighting is a new message).
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.conf import settings
from django.db import transaction
from django.urls import NoReverseMatch, reverse
from django.utils import timezone

from brokerops.accounts import DEFAULT_ACCOUNT
from reconciliation.ageing import human_age, overdue_q
from reconciliation.breaks import breaks_mark_overdue
from reconciliation.models import Break

from .models import Alert
from .services import account_key, alerts_raise, alerts_resolve

logger = logging.getLogger(__name__)
KIND = Alert.Kind.BREAK_OVERDUE


def overdue_prefix(account: str) -> str:
    """The start of the keys of the account's overdue-break alerts (then the break's id)."""
    return f"{account_key(KIND, account)}:"


def alerts_check_overdue_breaks(*, account: str, now: datetime | None = None) -> int:
    """Resolve the account's overdue alerts whose break is done, mark its overdue breaks and
    raise their alerts (module doc); returns how many messages were raised. One transaction:
    a break is marked only with its alert, whose deliveries go when it commits."""
    now = now or timezone.now()
    prefix = overdue_prefix(account)
    _resolve_done(prefix, now)
    raised = 0
    with transaction.atomic():
        marked = breaks_mark_overdue(
            account=account, now=now, realert_s=float(settings.ALERT_REALERT_S)
        )
        for brk, first in marked:
            key = f"{prefix}{brk.pk}"
            if first:  # a new episode (reopened since the last alert): a new message
                alerts_resolve(kind=KIND, key=key, now=now)
            raised += alerts_raise(
                kind=KIND, key=key, subject=_subject(brk), body=_body(brk, now), now=now
            ).notified
    return raised


def alerts_overdue_after_run(*, run) -> None:
    """At the end of a (non-dry) run: its account's overdue breaks. Never raises."""
    if run.dry_run:
        return
    try:
        alerts_check_overdue_breaks(account=run.account)
    except Exception:  # alerting never fails the run that raised it
        logger.exception("reconciliation run %s: overdue breaks not checked", run.pk)


def _resolve_done(prefix: str, now: datetime) -> None:
    open_keys = Alert.objects.filter(
        kind=KIND, resolved_at__isnull=True, key__startswith=prefix
    ).values_list("key", flat=True)
    by_id = {int(k[len(prefix) :]): k for k in open_keys if k[len(prefix) :].isdigit()}
    if not by_id:
        return
    still = set(
        Break.objects.filter(overdue_q(now), pk__in=list(by_id)).values_list("pk", flat=True)
    )
    for pk, key in by_id.items():
        if pk not in still:
            alerts_resolve(kind=KIND, key=key, now=now)


def _subject(brk: Break) -> str:
    about = brk.symbol or brk.client_order_id or ", ".join(brk.signal_ids)[:80]
    account = "" if brk.account == DEFAULT_ACCOUNT else f" of account {brk.account!r}"
    return f"Break #{brk.pk}{account} overdue: {brk.get_kind_display()} {about}".strip()


def _body(brk: Break, now: datetime) -> str:
    owner = brk.owner_username or "nobody (not acknowledged)"
    lines = [
        f"Break #{brk.pk} ({brk.get_severity_display().lower()}, {brk.get_state_display()}) "
        f"of account {brk.account} was due at {brk.due_at:%Y-%m-%d %H:%M:%S} UTC and is still "
        "not signed off.",
        f"Opened {brk.opened_at:%Y-%m-%d %H:%M:%S} UTC ({human_age(now - brk.opened_at)} ago), "
        f"found by {brk.occurrences} run(s), last seen {brk.last_seen_at:%Y-%m-%d %H:%M:%S} UTC.",
        f"Owner: {owner}.",
        f"What the last run said: {brk.detail or '-'}",
    ]
    try:
        page = reverse("admin:reconciliation_break_change", args=[brk.pk])
        lines.append(f"In the workspace: {page}")
    except NoReverseMatch:  # the breaks pages are not installed
        pass
    lines.append(
        "Sent again every ALERT_REALERT_S while it stays overdue; resolved once it is signed off "
        "or a run no longer finds it."
    )
    return "\n".join(lines)
