"""`python manage.py submit_orders [--json]`: one order cycle for PENDING signals.

An error an operator can act on (broker down, Redis down, bad keys) is one line on stderr and exit
status 1; with ``--json`` the JSON object is printed too, with the failure in ``error``.
"""

import json as jsonlib

from django.core.management.base import BaseCommand, CommandParser

from brokerops.commands import operator_console, operator_failures
from brokerops.locks import check_redis
from orders.services import SubmitResult, orders_submit_pending


class Command(BaseCommand):
    help = "Submit orders for PENDING signals now (one cycle), and report each signal's outcome."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON object")
        parser.add_argument("--limit", type=int, default=None, help="signals in this cycle")

    def handle(self, *args, json: bool, limit: int | None, verbosity: int = 1, **options) -> None:
        result = SubmitResult()  # filled as the cycle goes: kept when an error stops it

        def print_failure(line: str) -> None:
            self.stdout.write(jsonlib.dumps({**_as_json(result), "error": line}))

        with (
            operator_console(verbosity),
            operator_failures(stderr=self.stderr, on_failure=print_failure if json else None),
        ):
            check_redis()
            orders_submit_pending(limit=limit, actor="submit_orders command", result=result)
        if json:
            self.stdout.write(jsonlib.dumps(_as_json(result)))
            return
        for o in result.outcomes:
            self.stdout.write(
                f"{o.signal_id:<24} {o.client_order_id:<40} {o.outcome:<10} {o.reason}"
            )
        self.stdout.write(f"{result.counts()}")


def _as_json(result: SubmitResult) -> dict:
    return {**result.counts(), "signals": [o.as_dict() for o in result.outcomes]}
