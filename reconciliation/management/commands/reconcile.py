"""`python manage.py reconcile [--dry-run] [--json]`: one reconciliation run, now, here."""

import json

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError, CommandParser

from brokerops.alpaca import PAPER_BROKER_URL
from reconciliation.models import ReconciliationRun
from reconciliation.services import reconciliation_run, run_as_json


class Command(BaseCommand):
    help = "Run one reconciliation now in this process (exit status 1 when the run failed)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--dry-run", action="store_true", help="report without repairing")
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, dry_run: bool, json: bool, **options) -> None:
        run = reconciliation_run(trigger=ReconciliationRun.Trigger.COMMAND, dry_run=dry_run)
        report = run_as_json(run)
        if json:
            self.stdout.write(_dumps(report))
        else:
            self._print(report)
        if run.status == ReconciliationRun.Status.FAILED:
            hint = ""
            if not settings.ALPACA_API_KEY and "BrokerUnavailable" in run.error:
                hint = (
                    f" (no ALPACA_API_KEY set: the built-in paper broker is expected at "
                    f"{settings.ALPACA_BASE_URL or PAPER_BROKER_URL}; start one with "
                    "`python -m brokerops.sim --scenario demo`, or run `./dev demo`)"
                )
            raise CommandError(f"run {run.pk} failed: {run.error}{hint}", returncode=1)
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


def _dumps(report: dict) -> str:
    return json.dumps(report, sort_keys=False)
