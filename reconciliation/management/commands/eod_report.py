"""`python manage.py eod_report [--date YYYY-MM-DD] [--send] [--csv FILE]`: the end-of-day report
(docs/design.md section 17) of a day in ``REPORT_TZ`` (default: today there).

Without ``--send`` it is printed (and with ``--csv`` its CSV written); nothing is recorded. With
``--send`` it is mailed to ``REPORT_EMAILS`` (even a day already sent: an operator asked) and
recorded, so beat does not send that day again. A bad date, or ``--send`` with no
``REPORT_EMAILS``, is exit status 2 with one line; a mail server that refuses or cannot be
reached is exit status 1 with one line.
"""

from datetime import date
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from brokerops.commands import fail, operator_console
from reconciliation.eod import eod_report, report_csv, report_day, report_text
from reconciliation.eod_mail import ReportNotSent, eod_report_send


class Command(BaseCommand):
    help = "Print (or with --send, mail) the end-of-day report of a day (default: today)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--date", default=None, help="YYYY-MM-DD in REPORT_TZ (default: today)")
        parser.add_argument("--send", action="store_true", help="mail it to REPORT_EMAILS")
        parser.add_argument("--csv", default=None, metavar="FILE", help="also write its CSV here")

    def handle(
        self, *args, date: str | None, send: bool, csv: str | None, verbosity: int = 1, **options
    ) -> None:
        day = _day(date)
        with operator_console(verbosity):
            if send:
                self._send(day)
                return
            report = eod_report(day=day)
            self.stdout.write(report_text(report), ending="")
            if csv:
                try:
                    Path(csv).write_text(report_csv(report), encoding="utf-8")
                except OSError as exc:
                    raise CommandError(f"cannot write {csv}: {exc.strerror}", returncode=1) from exc

    def _send(self, day: date) -> None:
        if not settings.REPORT_EMAILS:
            raise CommandError("REPORT_EMAILS is unset: nobody to send it to", returncode=2)
        try:
            row = eod_report_send(day=day, trigger="command", again=True)
        except ReportNotSent as exc:
            line = f"end-of-day report {day} not sent: {exc}"
            raise fail(line, stderr=self.stderr, exc=exc) from exc
        if row is None:
            raise CommandError(
                f"the report of {day} is being sent by another process", returncode=2
            )
        self.stdout.write(
            f"end-of-day report {day} sent to {row.recipients} (sent {row.times_sent} time(s))"
        )


def _day(text: str | None) -> date:
    if text is None:
        return report_day()
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise CommandError(f"--date must be YYYY-MM-DD, not {text!r}", returncode=2) from None
