"""`python manage.py reconcile [--account NAME | --all] [--dry-run] [--full] [--json]`:
reconciliation runs, now, here. ``--full`` reads every order of the look-back instead of only
those changed since the account's last successful run (docs/design.md section 18.3).

One account (``--account NAME``, or the default account): exit status 0 when the run completed, 1
when it failed (one line on stderr naming the cause), 2 when another run of the account held its
lock; the run is recorded either way. With ``--json`` the run's JSON object (with its
``account``) is printed on stdout in every case.

``--all``: every configured account, one after the other (docs/design.md section 16), each in a
run of its own; one line per account, or with ``--json`` a list of one object per account. Exit
status 1 when any run failed (the line names those accounts), else 2 when any was skipped, else 0.
An unknown account is exit status 2, naming the known ones, before anything runs.
"""

import json
from dataclasses import dataclass

from django.core.management.base import BaseCommand, CommandError, CommandParser

from brokerops.accounts import configured
from brokerops.alpaca.operator import run_error_hint
from brokerops.commands import (
    add_account_arguments,
    chosen_accounts,
    fail,
    operator_console,
    operator_error,
)
from reconciliation.models import ReconciliationRun
from reconciliation.report import run_as_json
from reconciliation.services import reconciliation_run

Status = ReconciliationRun.Status


@dataclass
class Outcome:
    """One account's run as the command reports it: its JSON object, and what went wrong."""

    report: dict
    problem: str = ""  # the one line for stderr; empty when the run completed
    status: str = Status.SUCCEEDED
    exc: BaseException | None = None


class Command(BaseCommand):
    help = (
        "Run a reconciliation of an account (--account NAME, default: the default account) or of "
        "every account (--all) now in this process (exit status 1 when a run failed)."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_account_arguments(parser)
        parser.add_argument("--dry-run", action="store_true", help="report without repairing")
        parser.add_argument("--json", action="store_true", help="print JSON (a list with --all)")
        parser.add_argument(
            "--full",
            action="store_true",
            help="read every order of the look-back, not only those changed since the last run",
        )

    def handle(
        self,
        *args,
        dry_run: bool,
        json: bool,
        full: bool = False,
        account: str | None = None,
        all_accounts: bool = False,
        verbosity: int = 1,
        **options,
    ) -> None:
        names = chosen_accounts(account=account, all_accounts=all_accounts)
        outcomes = []
        with operator_console(verbosity):
            for name in names:
                outcome = self._reconcile(name, dry_run=dry_run, full=full)
                outcomes.append(outcome)
                if not json:
                    self._print(outcome.report)
        if json:
            reports = [o.report for o in outcomes]
            self.stdout.write(_dumps(reports if all_accounts else reports[0]))
        if all_accounts:
            self._exit_all(outcomes)
        else:
            self._exit_one(outcomes[0])

    def _reconcile(self, name: str, *, dry_run: bool, full: bool = False) -> Outcome:
        try:
            run = reconciliation_run(
                trigger=ReconciliationRun.Trigger.COMMAND, dry_run=dry_run, account=name, full=full
            )
        except Exception as exc:
            # No run could be recorded (Redis down before the lock, the database down).
            line = operator_error(exc)
            if line is None:
                raise
            report = _unrecorded_failure(line, account=name, dry_run=dry_run)
            return Outcome(report, f"reconciliation failed: {line}", Status.FAILED, exc)
        report = run_as_json(run)
        if run.status == Status.FAILED:
            hint = run_error_hint(run.error, configured().get(name))
            return Outcome(report, f"run {run.pk} failed: {run.error}{hint}", Status.FAILED)
        if run.status == Status.SKIPPED:
            return Outcome(report, f"run {run.pk} skipped: {run.error}", Status.SKIPPED)
        return Outcome(report)

    def _exit_one(self, outcome: Outcome) -> None:
        if outcome.status == Status.FAILED:
            raise fail(outcome.problem, stderr=self.stderr, exc=outcome.exc)
        if outcome.status == Status.SKIPPED:
            raise CommandError(outcome.problem, returncode=2)

    def _exit_all(self, outcomes: list[Outcome]) -> None:
        """One line naming every account whose run failed (1), else every skipped one (2)."""
        for status, returncode in ((Status.FAILED, 1), (Status.SKIPPED, 2)):
            hit = [o for o in outcomes if o.status == status]
            if not hit:
                continue
            accounts = ", ".join(o.report["account"] for o in hit)
            problems = "; ".join(f"account {o.report['account']!r}: {o.problem}" for o in hit)
            line = f"reconciliation {status} for {len(hit)} of {len(outcomes)} accounts "
            line += f"({accounts}): {problems}"
            if returncode == 1:
                raise fail(line, stderr=self.stderr, exc=hit[0].exc)
            raise CommandError(line, returncode=returncode)

    def _print(self, report: dict) -> None:
        if report["run_id"] is None:
            self.stdout.write(f"{report['account']}: no run recorded: {report['error']}")
            return
        self.stdout.write(
            f"{report['account']}: run #{report['run_id']} {report['status']}"
            f"{' (dry run)' if report['dry_run'] else ''}: "
            f"{report['positions_seen']} positions, {report['orders_seen']} orders, "
            f"{report['signals_seen']} signals, {report['api_calls']} API calls, "
            f"{report['duration_s']} s"
        )
        for m in report["mismatches"]:
            self.stdout.write(
                f"  {m['kind']:<20} {m['symbol'] or '-':<10} signal={m['signal_id'] or '-'} "
                f"coid={m['client_order_id'] or '-'} expected={m['expected_qty']} "
                f"actual={m['actual_qty']} -> {m['action']}"
            )
        if not report["mismatches"]:
            self.stdout.write("  no mismatches")


def _unrecorded_failure(error: str, *, account: str, dry_run: bool) -> dict:
    """The JSON object of a run that could not even be recorded: the same keys, nothing seen."""
    return {
        "account": account,
        "run_id": None,
        "status": Status.FAILED,
        "dry_run": dry_run,
        "positions_seen": 0,
        "signals_seen": 0,
        "orders_seen": 0,
        "api_calls": 0,
        "duration_s": 0.0,
        "error": error,
        "mismatches": [],
    }


def _dumps(report: dict | list[dict]) -> str:
    return json.dumps(report, sort_keys=False)
