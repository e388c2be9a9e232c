"""The end-of-day report (docs/design.md section 17): its data, the e-mail through a real SMTP
server (aiosmtpd) with the HTML body and the CSV, beat's check at REPORT_AT in REPORT_TZ that
sends a day once, and the command."""

from __future__ import annotations

import csv
import io
import logging
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from audit.models import AuditVerification
from brokerops.celery import beat_schedule
from reconciliation import eod_mail
from reconciliation.breaks import (
    break_acknowledge,
    break_approve,
    break_propose,
    breaks_close_repaired,
)
from reconciliation.eod import eod_report, report_day
from reconciliation.eod_mail import eod_report_due, eod_report_send
from reconciliation.models import Break, DailyReport
from tests import factories
from tests.ops.test_alerts import smtp
from tests.reconciliation.test_breaks import ORPHAN, finding, run_with

__all__ = ["smtp"]
NY = ZoneInfo("America/New_York")


@pytest.fixture
def day_of_breaks(settings):
    """Today: TSLA open (and overdue), NVDA signed off, an orphan repaired by its run; a break
    of the client account; two orders rejected before sending, one rejected by the broker."""
    settings.REPORT_EMAILS = ["compliance@example.com"]
    operator = factories.staff_user(group="operations")
    compliance = factories.staff_user(group="compliance")
    run, rows = run_with(
        finding(),
        finding(symbol="NVDA", signal_ids=("s-n",)),
        finding(kind=ORPHAN, symbol="ETH/USD", signal_ids=("s-eth",)),
    )
    run_with(finding(), account="client")
    tsla, nvda, eth = Break.objects.filter(account="default").order_by("pk")
    Break.objects.filter(pk=tsla.pk).update(due_at=timezone.now() - timedelta(minutes=1))
    break_acknowledge(break_id=nvda.pk, user=operator, comment="mine")
    break_propose(break_id=nvda.pk, user=operator, disposition="explained", reason="a split")
    break_approve(break_id=nvda.pk, user=compliance)
    breaks_close_repaired(run=run, mismatches=[r for r in rows if r.break_case_id == eth.pk])
    for reason, broker_id in (("not tradable: HALTD", ""), ("sub-penny <b>price</b>", ""),
                              ("broker said no", "alpaca-1")):  # fmt: skip
        factories.order_attempt(status="rejected", reason=reason, alpaca_order_id=broker_id)
    now = timezone.now()
    AuditVerification.objects.create(
        started_at=now, finished_at=now, ok=True, rows_checked=42, trigger="schedule"
    )
    return tsla, nvda, eth


@pytest.mark.django_db
def test_the_report_counts_the_days_breaks_repairs_rejections_and_verification(day_of_breaks):
    tsla, _, eth = day_of_breaks
    report = eod_report(day=report_day())
    assert report.totals == {"opened": 4, "closed": 2, "open": 2}
    default_qty = next(
        r for r in report.by_kind if (r["account"], r["kind"]) == ("default", "QTY_MISMATCH")
    )
    assert (default_qty["opened"], default_qty["closed"], default_qty["open"]) == (2, 1, 1)
    assert [(r["account"], r["under_1h"], r["total"]) for r in report.by_age] == [
        ("client", 1, 1), ("default", 1, 1),
    ]  # fmt: skip
    assert [b.id for b in report.overdue] == [tsla.pk] and report.overdue_total == 1
    assert [b.id for b in report.repaired] == [eth.pk]
    assert [a.reason for a in report.rejected] == ["not tradable: HALTD", "sub-penny <b>price</b>"]
    assert report.verification.rows_checked == 42

    mine = eod_report(day=report_day(), accounts=frozenset({"client"}))
    assert mine.totals == {"opened": 1, "closed": 0, "open": 1} and mine.overdue == []


@pytest.mark.django_db
def test_the_report_as_of_a_past_moment_says_what_was_open_then(day_of_breaks):
    tsla, _, _ = day_of_breaks
    compliance = factories.staff_user(group="compliance")
    operator = factories.staff_user(group="operations")
    break_acknowledge(break_id=tsla.pk, user=operator, comment="mine")
    break_propose(break_id=tsla.pk, user=operator, disposition="accepted", reason="fine")
    break_approve(break_id=tsla.pk, user=compliance)

    now = eod_report(day=report_day())
    assert now.totals["open"] == 1 and now.overdue == []  # TSLA signed off since
    taken = tsla.events.get(kind="acknowledged").created_at
    then = eod_report(day=report_day(), now=taken - timedelta(microseconds=1))
    assert then.totals["open"] == 2 and [b.id for b in then.overdue] == [tsla.pk]
    assert then.overdue[0].state == "open"


@pytest.mark.django_db(transaction=True)
def test_the_email_has_an_html_body_and_the_csv_and_the_day_is_recorded(day_of_breaks, smtp):
    tsla, _, eth = day_of_breaks
    row = eod_report_send(day=report_day(), trigger="command")
    assert (row.status, row.times_sent, row.recipients) == ("sent", 1, "compliance@example.com")

    (message,) = smtp.messages
    assert message["Subject"].startswith(f"[brokerops] End-of-day report {report_day()}: ")
    assert message["To"] == "compliance@example.com"
    parts = {p.get_content_type(): p for p in message.walk() if not p.is_multipart()}
    assert set(parts) == {"text/plain", "text/html", "text/csv"}
    html = parts["text/html"].get_payload(decode=True).decode()
    assert f"#{tsla.pk}" in html and "Overdue (1)" in html and "42 rows" in html
    assert "sub-penny &lt;b&gt;price&lt;/b&gt;" in html  # escaped
    assert parts["text/csv"].get_filename() == f"eod-report-{report_day()}.csv"
    rows = list(csv.DictReader(io.StringIO(parts["text/csv"].get_payload(decode=True).decode())))
    assert {"breaks", "open_by_age", "overdue", "repaired_break", "rejected_order"} <= {
        r["section"] for r in rows
    }
    assert [r["id"] for r in rows if r["section"] == "repaired_break"] == [str(eth.pk)]


def ny(day: date, hour: int, minute: int) -> datetime:
    return datetime(day.year, day.month, day.day, hour, minute, tzinfo=NY)


@pytest.mark.django_db(transaction=True)
def test_beat_sends_once_a_day_after_report_at_in_report_tz(smtp, settings):
    settings.REPORT_EMAILS = ["compliance@example.com"]
    settings.REPORT_AT, settings.REPORT_TZ = "16:30", "America/New_York"
    day = date(2026, 3, 9)
    # 16:29 New York is 20:29 UTC in March (EDT): not yet; 20:31 UTC is past it.
    assert eod_report_due(now=ny(day, 16, 29)) == "early"
    assert eod_report_due(now=ny(day, 16, 31)) == "sent"
    assert eod_report_due(now=ny(day, 16, 36)) == "already sent"
    assert eod_report_due(now=ny(day, 23, 59)) == "already sent"
    assert eod_report_due(now=ny(day + timedelta(days=1), 9, 0)) == "early"
    assert eod_report_due(now=ny(day + timedelta(days=1), 16, 30)) == "sent"
    assert len(smtp.messages) == 2
    assert list(DailyReport.objects.order_by("day").values_list("day", "trigger")) == [
        (day, "schedule"), (day + timedelta(days=1), "schedule"),
    ]  # fmt: skip
    settings.REPORT_TZ = "Asia/Tokyo"  # 16:31 New York is 06:31 the next morning in Tokyo
    # ...and the 11th in Tokyo, which ended unsent in the switch, is sent late.
    assert eod_report_due(now=ny(day + timedelta(days=2), 16, 31)) == "early; sent 1 missed day(s)"

    entry = beat_schedule()["eod-report"]
    assert entry["task"] == "reconciliation.eod_report" and entry["schedule"] == 300.0


@pytest.mark.django_db(transaction=True)
def test_a_failed_sending_is_recorded_and_sent_at_the_next_check(smtp, settings):
    settings.REPORT_EMAILS = ["compliance@example.com"]
    port = settings.EMAIL_PORT
    settings.EMAIL_PORT = 1  # nobody listens
    day = date(2026, 3, 9)
    assert eod_report_due(now=ny(day, 17, 0)) == "failed"
    row = DailyReport.objects.get()
    assert row.status == "failed" and "Connection refused" in row.error
    settings.EMAIL_PORT = port
    assert eod_report_due(now=ny(day, 17, 5)) == "sent"
    assert len(smtp.messages) == 1


@pytest.mark.django_db(transaction=True)
def test_days_missed_while_beat_or_mail_was_down_are_sent_late_each_as_of_its_end(smtp, settings):
    settings.REPORT_EMAILS = ["compliance@example.com"]
    settings.REPORT_CATCH_UP_DAYS = 3
    day = date(2026, 3, 9)
    assert eod_report_due(now=ny(day, 16, 31)) == "sent"
    # SMTP down from the next afternoon until past midnight: the 10th fails and its day ends.
    port, settings.EMAIL_PORT = settings.EMAIL_PORT, 1
    assert eod_report_due(now=ny(day + timedelta(days=1), 16, 31)) == "failed"
    settings.EMAIL_PORT = port
    # Beat down for the 11th and 12th; back on the 13th in the morning, before REPORT_AT.
    back = ny(day + timedelta(days=4), 9, 0)
    assert eod_report_due(now=back) == "early; sent 3 missed day(s)"
    late = {m["Subject"] for m in smtp.messages[1:]}
    assert late == {f"[brokerops] End-of-day report 2026-03-{d}: 0 break(s) open, 0 overdue"
                    for d in (10, 11, 12)}  # fmt: skip
    rows = dict(DailyReport.objects.values_list("day", "trigger"))
    assert rows[day + timedelta(days=1)] == rows[day + timedelta(days=3)] == "catch-up"
    assert eod_report_due(now=back + timedelta(minutes=5)) == "early"  # nothing sent twice
    assert len(smtp.messages) == 4


@pytest.mark.django_db
def test_catching_up_goes_back_at_most_report_catch_up_days_and_never_before_the_first(
    smtp, settings
):
    settings.REPORT_EMAILS = ["compliance@example.com"]
    settings.REPORT_CATCH_UP_DAYS = 2
    day = date(2026, 3, 9)
    # A new deployment mails from its first day on, never the days before it.
    assert eod_report_due(now=ny(day, 16, 31)) == "sent"
    # Down for a week: only the last two days before today are sent late, then today's.
    assert eod_report_due(now=ny(day + timedelta(days=8), 16, 31)) == "sent; sent 2 missed day(s)"
    assert sorted(DailyReport.objects.values_list("day", flat=True)) == [
        day, day + timedelta(days=6), day + timedelta(days=7), day + timedelta(days=8),
    ]  # fmt: skip
    settings.REPORT_CATCH_UP_DAYS = 0  # catching up off
    assert eod_report_due(now=ny(day + timedelta(days=11), 16, 31)) == "sent"


@pytest.mark.django_db
def test_without_recipients_beat_sends_nothing_and_says_so_once(settings, caplog, monkeypatch):
    settings.REPORT_EMAILS = []
    monkeypatch.setattr(eod_mail, "_said_unset", False)
    with caplog.at_level(logging.WARNING, logger="reconciliation.eod_mail"):
        results = [eod_report_due(now=ny(date(2026, 3, 9), 17, m)) for m in (0, 5, 10)]
    assert results == ["unconfigured"] * 3
    assert [r.message for r in caplog.records].count(
        "REPORT_EMAILS is unset: the end-of-day report is not mailed "
        "(manage.py eod_report prints it; the admin shows it)"
    ) == 1
    assert not DailyReport.objects.exists()


@pytest.mark.django_db(transaction=True)
def test_the_command_prints_writes_and_sends(day_of_breaks, smtp, settings, tmp_path):
    out = io.StringIO()
    call_command("eod_report", "--csv", str(tmp_path / "r.csv"), stdout=out)
    assert out.getvalue().startswith(f"End-of-day report {report_day()} (America/New_York)")
    assert "Breaks: 4 opened, 2 closed, 2 still open, 1 overdue." in out.getvalue()
    assert (tmp_path / "r.csv").read_text().startswith("section,account,kind")
    assert smtp.messages == [] and not DailyReport.objects.exists()  # printing records nothing

    for _ in range(2):  # an operator may send a day again
        call_command("eod_report", "--send", stdout=io.StringIO())
    assert len(smtp.messages) == 2 and DailyReport.objects.get().times_sent == 2

    with pytest.raises(CommandError, match="--date must be YYYY-MM-DD, not '9/3/2026'"):
        call_command("eod_report", "--date", "9/3/2026")
    settings.REPORT_EMAILS = []
    with pytest.raises(CommandError, match="REPORT_EMAILS is unset"):
        call_command("eod_report", "--send")


def test_the_csv_makes_formulas_inert():
    from reconciliation.eod import _cell

    assert _cell("=HYPERLINK(1)") == "'=HYPERLINK(1)" and _cell("TSLA") == "TSLA"
