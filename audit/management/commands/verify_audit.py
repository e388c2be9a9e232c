"""`python manage.py verify_audit [--json] [--processes N]`: prove the audit trail intact.

Recomputes every hash chain (order events, mismatches, run events) and checks every chain head
the runs recorded (and its signature, with ``AUDIT_HMAC_KEY``). Exit status 0 when the trail is
intact, 1 naming the first broken link (one line on stderr). With ``--json`` one JSON object is
printed on stdout in both cases. The result is stored and shown in the admin.
"""

import json

from django.core.management.base import BaseCommand, CommandParser

from audit.services import audit_verify
from brokerops.commands import fail, operator_console, operator_failures


class Command(BaseCommand):
    help = "Recompute the audit hash chains and check the recorded heads (exit 1 when broken)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument(
            "--processes",
            type=int,
            default=None,
            help="processes to recompute with (default AUDIT_VERIFY_PROCESSES; 0: one per core)",
        )

    def handle(self, *args, json: bool, processes: int | None, verbosity: int = 1, **options):
        if processes is not None and processes < 0:
            raise fail("--processes must be 0 (one per core) or more", stderr=self.stderr)
        with (
            operator_console(verbosity),
            operator_failures(stderr=self.stderr, prefix="verify_audit failed: "),
        ):
            result = audit_verify(trigger="command", processes=processes)
        report = result.as_json()
        if json:
            self.stdout.write(_dumps(report))
        else:
            self._print(report)
        if not result.ok:
            raise fail(
                f"audit trail BROKEN: {report['problems']} problem(s); first: "
                f"{report['first_problem']}",
                stderr=self.stderr,
            )

    def _print(self, report: dict) -> None:
        for name, chain in report["chains"].items():
            state = "intact" if not chain["problems"] else f"{chain['problems']} problem(s)"
            self.stdout.write(
                f"{name}: {chain['rows']:,} rows, {chain['heads_checked']:,} heads checked, {state}"
            )
        for note in report["notes"]:
            self.stdout.write(f"note: {note}")
        verdict = "intact" if report["ok"] else "BROKEN"
        self.stdout.write(
            f"audit trail {verdict}: {report['rows_checked']:,} rows in {report['duration_s']} s"
            f" (verification #{report['verification_id']})"
        )


def _dumps(report: dict) -> str:
    return json.dumps(report, indent=2, sort_keys=True)
