"""`python manage.py submit_orders [--account NAME | --all] [--json]`: one order cycle for
PENDING signals, of one account or of every account (docs/design.md section 16).

Neither option: the default account. With ``--json``, one object (``--all``: a list of one
object per account), each carrying ``account``. An error an operator can act on (broker down,
Redis down, bad keys) is one line on stderr and exit status 1 (with ``--all``, naming each
account that failed; the others' cycles run to their end); with ``--json`` the objects are
printed too, a failed account's with the failure in ``error``. An unknown account: exit 2.
"""

import json as jsonlib

from django.core.management.base import BaseCommand, CommandParser

from brokerops.commands import (
    accounts_failed,
    add_account_arguments,
    chosen_accounts,
    for_each_account,
    operator_console,
)
from brokerops.locks import check_redis
from orders.services import SubmitResult, orders_submit_pending


class Command(BaseCommand):
    help = "Submit orders for PENDING signals now (one cycle), and report each signal's outcome."

    def add_arguments(self, parser: CommandParser) -> None:
        add_account_arguments(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")
        parser.add_argument("--limit", type=int, default=None, help="signals in this cycle")

    def handle(
        self,
        *args,
        json: bool,
        limit: int | None,
        account: str | None,
        all_accounts: bool,
        verbosity: int = 1,
        **options,
    ) -> None:
        names = chosen_accounts(account=account, all_accounts=all_accounts)
        # Filled as each cycle goes: kept when an error stops it.
        results = {name: SubmitResult(account=name) for name in names}

        def cycle(name: str) -> SubmitResult:
            check_redis()  # named as such, rather than what it broke
            return orders_submit_pending(
                account=name, limit=limit, actor="submit_orders command", result=results[name]
            )

        with operator_console(verbosity):
            runs = for_each_account(names, cycle)
        # A bug is raised here, before any output; an operator's error after the output.
        error = accounts_failed(runs, stderr=self.stderr, several=all_accounts)
        objects = [
            {**_as_json(results[run.account]), **({"error": run.line} if run.line else {})}
            for run in runs
        ]
        if json:
            self.stdout.write(jsonlib.dumps(objects if all_accounts else objects[0]))
        else:
            for name in names:
                self._write_text(results[name], heading=all_accounts)
        if error is not None:
            raise error

    def _write_text(self, result: SubmitResult, *, heading: bool) -> None:
        if heading:
            self.stdout.write(f"account {result.account}:")
        if result.skipped:
            self.stdout.write(f"skipped: {result.skipped}")
        for o in result.outcomes:
            self.stdout.write(
                f"{o.signal_id:<24} {o.client_order_id:<40} {o.outcome:<10} {o.reason}"
            )
        self.stdout.write(f"{result.counts()}")


def _as_json(result: SubmitResult) -> dict:
    return {**result.report(), "signals": [o.as_dict() for o in result.outcomes]}
