"""Mailing the end-of-day report (docs/design.md section 17): one e-mail a day to
``REPORT_EMAILS``, an HTML body (the template the admin page includes too), the plain text and
the CSV attached.

Beat checks every few minutes (:func:`eod_report_due`): once the day in ``REPORT_TZ`` reached
``REPORT_AT``, the day's report is sent unless a ``DailyReport`` row says it was. The row is
claimed before sending (unique per day: two checks at once send once); a failed sending is
recorded and tried again at the next check; a claim older than :data:`CLAIM_LEASE` (its process
died) is taken over. A day whose end passed unsent (beat or the mail server down) is sent late,
as of its own end, at the next check (``REPORT_CATCH_UP_DAYS`` back at most). ``manage.py
eod_report --send`` sends even a day already sent (an operator asked for it), and counts it.
"""

from __future__ import annotations

import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from django.conf import settings
from django.core.mail import EmailMultiAlternatives
from django.db import IntegrityError, transaction
from django.template.loader import render_to_string
from django.utils import timezone

from .eod import EodReport, eod_report, report_csv, report_day, report_text
from .models import DailyReport

logger = logging.getLogger(__name__)
Status = DailyReport.Status
CLAIM_LEASE = timedelta(minutes=15)
_said_unset = False  # "REPORT_EMAILS is unset" is logged once per process


class ReportNotSent(Exception):
    """The report could not be mailed (the message says why, for the command's one line)."""


def report_time() -> tuple[int, int]:
    hour, minute = settings.REPORT_AT.split(":")
    return int(hour), int(minute)


def eod_report_due(*, now: datetime | None = None) -> str:
    """Beat's check: send the days missed (:func:`_catch_up`), then today's report if it is time
    and it was not sent; returns what it did (``unconfigured``, ``early``, ``already sent``,
    ``sending elsewhere``, ``sent``, ``failed``; ``; sent N missed day(s)`` after it)."""
    global _said_unset
    now = now or timezone.now()
    if not settings.REPORT_EMAILS:
        if not _said_unset:
            logger.warning(
                "REPORT_EMAILS is unset: the end-of-day report is not mailed "
                "(manage.py eod_report prints it; the admin shows it)"
            )
            _said_unset = True
        return "unconfigured"
    day = report_day(now)
    late = _catch_up(day, now)
    caught_up = f"; sent {late} missed day(s)" if late else ""
    local = now.astimezone(ZoneInfo(settings.REPORT_TZ))
    if (local.hour, local.minute) < report_time():
        return "early" + caught_up
    if DailyReport.objects.filter(day=day, status=Status.SENT).exists():
        return "already sent" + caught_up
    try:
        sent = eod_report_send(day=day, now=now, trigger="schedule")
    except ReportNotSent as exc:
        logger.error("end-of-day report %s not sent: %s; tried again at the next check", day, exc)
        return "failed" + caught_up
    return ("sent" if sent is not None else "sending elsewhere") + caught_up


def _catch_up(today: date, now: datetime) -> int:
    """Send the days before ``today`` that were never sent (beat or the mail server was down
    past their end), each as of its own end, going back at most ``REPORT_CATCH_UP_DAYS`` and
    never before the first day this deployment recorded (a new one does not mail its past).
    Returns how many were sent; one that fails again is tried at the next check."""
    back = settings.REPORT_CATCH_UP_DAYS
    first = DailyReport.objects.order_by("day").values_list("day", flat=True).first()
    if not back or first is None:
        return 0
    since = max(first, today - timedelta(days=back))
    done = set(
        DailyReport.objects.filter(day__gte=since, day__lt=today, status=Status.SENT).values_list(
            "day", flat=True
        )
    )
    sent = 0
    for offset in range((today - since).days):
        day = since + timedelta(days=offset)
        if day in done:
            continue
        try:
            if eod_report_send(day=day, now=now, trigger="catch-up") is not None:
                sent += 1
        except ReportNotSent as exc:
            logger.error("end-of-day report %s (missed) not sent: %s; tried again", day, exc)
            break  # the mail server is down: today's attempt says so too
    if sent:
        logger.warning("end-of-day reports: %d missed day(s) sent late", sent)
    return sent


def eod_report_send(
    *, day: date, now: datetime | None = None, trigger: str, again: bool = False
) -> DailyReport | None:
    """Mail ``day``'s report to ``REPORT_EMAILS`` and record it; None when another process
    holds the day (or it was sent, unless ``again``). Raises :class:`ReportNotSent`."""
    now = now or timezone.now()
    recipients = list(settings.REPORT_EMAILS)
    if not recipients:
        raise ReportNotSent("REPORT_EMAILS is unset: nobody to send it to")
    row = _claim(day, trigger, now, again=again)
    if row is None:
        return None
    report = eod_report(day=day, now=now)
    try:
        report_email(report, to=recipients).send()
    except Exception as exc:  # SMTP refused, unreachable, timed out: recorded, then said
        error = f"{type(exc).__name__}: {exc}"
        DailyReport.objects.filter(pk=row.pk).update(status=Status.FAILED, error=error[:2000])
        raise ReportNotSent(error) from exc
    DailyReport.objects.filter(pk=row.pk).update(
        status=Status.SENT,
        sent_at=timezone.now(),
        recipients=", ".join(recipients),
        error="",
        times_sent=row.times_sent + 1,
    )
    logger.info("end-of-day report %s sent to %d recipient(s)", day, len(recipients))
    return DailyReport.objects.get(pk=row.pk)


def _claim(day: date, trigger: str, now: datetime, *, again: bool) -> DailyReport | None:
    with transaction.atomic():
        row = DailyReport.objects.select_for_update().filter(day=day).first()
        if row is None:
            try:
                with transaction.atomic():
                    return DailyReport.objects.create(
                        day=day, status=Status.SENDING, trigger=trigger, claimed_at=now
                    )
            except IntegrityError:  # another process claimed the day first
                return None
        busy = row.status == Status.SENDING and now - row.claimed_at < CLAIM_LEASE
        if not again and (row.status == Status.SENT or busy):
            return None
        row.status, row.trigger, row.claimed_at = Status.SENDING, trigger, now
        row.save(update_fields=["status", "trigger", "claimed_at"])
        return row


def report_email(report: EodReport, *, to: list[str]) -> EmailMultiAlternatives:
    """The e-mail: the plain text, the HTML body, the CSV attached. Sent with Django's mail
    backend (``EMAIL_URL``; ``EMAIL_TIMEOUT`` bounds each socket operation)."""
    t = report.totals
    subject = (
        f"[brokerops] End-of-day report {report.day}: {t['open']} break(s) "
        f"open, {report.overdue_total} overdue"
    )
    message = EmailMultiAlternatives(subject, report_text(report), settings.DEFAULT_FROM_EMAIL, to)
    html = render_to_string("reconciliation/eod_report_email.html", {"report": report})
    message.attach_alternative(html, "text/html")
    message.attach(f"eod-report-{report.day}.csv", report_csv(report), "text/csv")
    return message
