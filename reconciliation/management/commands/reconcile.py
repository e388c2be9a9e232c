"""`python manage.py reconcile [--dry-run] [--json]`: one reconciliation run, now, here.

Exit status 0 when the run completed, 1 when it failed (one line on stderr naming the cause),
2 when another run held the lock; the run is recorded either way. With ``--json`` the run's JSON
object is printed on stdout in every case.
"""

import json

from django.core.management.base import BaseCommand, CommandError, CommandParser

from brokerops.alpaca.operator import run_error_hint
from brokerops.commands import fail, operator_console, operator_failures
from reconciliation.models import ReconciliationRun
from reconciliation.report import run_as_json
from reconciliation.services import reconciliation_run


class Command(BaseCommand):
    help = "Run one reconciliation now in this process (exit status 1 when the run failed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="report without repairing")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, dry_run: bool, json: bool, verbosity: int = 1, **options) -> None:
        def print_failure(line: str) -> None:
            # No run could be recorded (Redis down before the lock, the database down).
            self.stdout.write(_dumps(_unrecorded_failure(line, dry_run=dry_run)))

        with operator_console(verbosity):
            with operator_failures(
                stderr=self.stderr,
                prefix="reconciliation failed: ",
                on_failure=print_failure if json else None,
            ):
                run = reconciliation_run(trigger=ReconciliationRun.Trigger.COMMAND, dry_run=dry_run)
            report = run_as_json(run)
        if json:
            self.stdout.write(_dumps(report))
        else:
            self._print(report)
        if run.status == ReconciliationRun.Status.FAILED:
            raise fail(
                f"run {run.pk} failed: {run.error}{run_error_hint(run.error)}", stderr=self.stderr
            )
        if run.status == ReconciliationRun.Status.SKIPPED:
            raise CommandError(f"run {run.pk} skipped: {run.error}", returncode=2)

    def _print(self, report: dict) -> None:
        self.stdout.write(
            f"run #{report['run_id']} {report['status']}"
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


def _unrecorded_failure(error: str, *, dry_run: bool) -> dict:
    """The JSON object of a run that could not even be recorded: the same keys, nothing seen."""
    return {
        "run_id": None,
        "status": ReconciliationRun.Status.FAILED,
        "dry_run": dry_run,
        "positions_seen": 0,
        "signals_seen": 0,
        "orders_seen": 0,
        "api_calls": 0,
        "duration_s": 0.0,
        "error": error,
        "mismatches": [],
    }


def _dumps(report: dict) -> str:
    return json.dumps(report, sort_keys=False)
