"""Overdue breaks (docs/design.md sections 13 and 17): one ``BREAK_OVERDUE`` message through a
real SMTP server (aiosmtpd), again only every ``ALERT_REALERT_S``, an ``overdue`` event on the
break each time; nothing for a break closed before the check."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone

from alerts.breaks import alerts_check_overdue_breaks
from alerts.models import Alert
from alerts.receivers import on_run_finished
from alerts.tasks import alerts_check_overdue_breaks_task
from audit.services import audit_verify
from brokerops.celery import beat_schedule
from reconciliation.ageing import AGE_BUCKETS, age_bucket, age_bucket_q, is_overdue
from reconciliation.breaks import break_acknowledge, break_approve, break_propose
from reconciliation.diff import Severity
from reconciliation.models import Break, BreakEvent
from tests import factories
from tests.ops.test_alerts import smtp
from tests.reconciliation.test_breaks import finding, run_with

__all__ = ["smtp"]  # the SMTP server fixture, used here
HOUR = timedelta(hours=1)


def overdue_events(brk: Break) -> list[str]:
    return list(brk.events.filter(kind=BreakEvent.Kind.OVERDUE).values_list("message", flat=True))


@pytest.mark.django_db(transaction=True)
def test_an_overdue_break_is_mailed_once_then_again_only_after_the_realert_period(smtp, settings):
    settings.ALERT_REALERT_S = 4 * 3600
    run_with(finding())  # a warning: due a day after it opened
    brk = Break.objects.get()
    due = brk.due_at

    assert alerts_check_overdue_breaks(account="default", now=due - timedelta(seconds=1)) == 0
    assert smtp.messages == [] and overdue_events(brk) == []

    checks = [due, due + HOUR, due + 3 * HOUR, due + 4 * HOUR, due + 5 * HOUR]
    assert [alerts_check_overdue_breaks(account="default", now=t) for t in checks] == [
        1, 0, 0, 1, 0,
    ]  # fmt: skip
    assert len(smtp.messages) == 2
    message = smtp.messages[0]
    assert message["Subject"] == f"[brokerops] Break #{brk.pk} overdue: Quantity mismatch TSLA"
    body = message.get_payload(decode=True).decode()
    assert "was due at" in body and "Owner: nobody" in body
    brk.refresh_from_db()
    assert brk.overdue_alerted_at == due + 4 * HOUR
    assert len(overdue_events(brk)) == 2
    assert "alerted again" in overdue_events(brk)[1]
    alert = Alert.objects.get()
    assert (alert.kind, alert.notifications, alert.resolved_at) == ("BREAK_OVERDUE", 2, None)
    assert audit_verify(trigger="command", processes=1).ok  # the overdue events are chained


@pytest.mark.django_db(transaction=True)
def test_with_realert_zero_an_overdue_break_is_mailed_once(smtp, settings):
    settings.ALERT_REALERT_S = 0
    run_with(finding(severity=Severity.CRITICAL))
    due = Break.objects.get().due_at
    sent = [
        alerts_check_overdue_breaks(account="default", now=due + k * 24 * HOUR) for k in range(4)
    ]
    assert sent == [1, 0, 0, 0] and len(smtp.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_a_break_closed_before_the_check_raises_nothing(smtp):
    operator = factories.staff_user(group="operations")
    compliance = factories.staff_user(group="compliance")
    run_with(finding(), finding(symbol="NVDA", signal_ids=("s-2",)))
    signed, cleared = Break.objects.order_by("pk")
    break_acknowledge(break_id=signed.pk, user=operator, comment="mine")
    break_propose(break_id=signed.pk, user=operator, disposition="explained", reason="a split")
    break_approve(break_id=signed.pk, user=compliance)
    run_with(finding())  # the next run no longer finds NVDA: resolved; TSLA is found again
    run_with()  # and then neither: TSLA's break (closed) remembers the run, stays closed

    later = timezone.now() + 30 * 24 * HOUR
    assert alerts_check_overdue_breaks(account="default", now=later) == 0
    assert smtp.messages == [] and not Alert.objects.exists()
    assert not BreakEvent.objects.filter(kind=BreakEvent.Kind.OVERDUE).exists()
    assert Break.objects.get(pk=cleared.pk).state == "resolved"


@pytest.mark.django_db(transaction=True)
def test_the_alert_resolves_once_the_break_is_done_and_a_reopened_break_is_a_new_message(smtp):
    run_with(finding())
    due = Break.objects.get().due_at
    assert alerts_check_overdue_breaks(account="default", now=due) == 1
    run_with()  # cleared by a run
    assert alerts_check_overdue_breaks(account="default", now=due + HOUR) == 0
    assert Alert.objects.get().resolved_at is not None

    run_with(finding())  # it comes back: a new episode, due again later
    brk = Break.objects.get()
    assert brk.overdue_alerted_at is None
    assert alerts_check_overdue_breaks(account="default", now=brk.due_at) == 1
    assert len(smtp.messages) == 2


@pytest.mark.django_db(transaction=True)
def test_overdue_breaks_are_per_account(smtp, settings):
    run_with(finding(), account="desk")
    run_with(finding(), account="client")
    later = timezone.now() + 2 * 24 * HOUR
    assert alerts_check_overdue_breaks(account="desk", now=later) == 1
    (alert,) = Alert.objects.all()
    assert alert.key.startswith("BREAK_OVERDUE@desk:") and "of account 'desk'" in alert.subject
    assert Break.objects.get(account="client").overdue_alerted_at is None


@pytest.mark.django_db(transaction=True)
def test_the_end_of_a_run_and_beat_check_overdue_breaks(smtp, settings):
    run, _ = run_with(finding(severity=Severity.CRITICAL))
    Break.objects.update(due_at=timezone.now() - HOUR)  # due an hour ago
    dry = factories.reconciliation_run(dry_run=True)
    on_run_finished(None, run=dry)
    assert smtp.messages == []  # a dry run checks nothing
    on_run_finished(None, run=run)
    assert len(smtp.messages) == 1
    assert alerts_check_overdue_breaks_task() == 0  # already alerted

    schedule = beat_schedule()["alerts-overdue-breaks"]
    assert schedule["task"] == "alerts.check_overdue_breaks"
    assert schedule["schedule"] == float(settings.RECONCILE_INTERVAL_S)


def test_age_buckets_and_due_are_one_definition():
    now = timezone.now()
    ages = [timedelta(0), timedelta(minutes=59), HOUR, 23 * HOUR, 24 * HOUR, 71 * HOUR, 72 * HOUR]
    keys = [age_bucket(now - a, now) for a in ages]
    assert keys == [
        "under_1h", "under_1h", "under_1d", "under_1d", "under_3d", "under_3d", "older",
    ]  # fmt: skip
    assert age_bucket(now + HOUR, now) == "under_1h"  # a clock a little ahead: no negative age
    assert [b.key for b in AGE_BUCKETS] == ["under_1h", "under_1d", "under_3d", "older"]
    assert is_overdue(state="open", due_at=now, now=now)
    assert not is_overdue(state="closed", due_at=now - HOUR, now=now)
    assert not is_overdue(state="proposed", due_at=now + HOUR, now=now)
    with pytest.raises(KeyError, match="no age bucket 'week'"):
        age_bucket_q("week", now)


@pytest.mark.django_db
def test_the_bucket_filters_agree_with_the_bucket_function():
    run_with(*(finding(symbol=f"S{n}", signal_ids=(f"s-{n}",)) for n in range(7)))
    now = timezone.now()
    ages = [timedelta(0), timedelta(minutes=59), HOUR, 23 * HOUR, 24 * HOUR, 71 * HOUR, 72 * HOUR]
    for brk, elapsed in zip(Break.objects.order_by("pk"), ages, strict=True):
        Break.objects.filter(pk=brk.pk).update(opened_at=now - elapsed)
    for bucket in AGE_BUCKETS:
        in_db = set(
            Break.objects.filter(age_bucket_q(bucket.key, now)).values_list("pk", flat=True)
        )
        by_function = {
            b.pk for b in Break.objects.all() if age_bucket(b.opened_at, now) == bucket.key
        }
        assert in_db == by_function, bucket.key
