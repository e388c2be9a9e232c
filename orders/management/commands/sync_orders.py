"""`python manage.py sync_orders [--json]`: refresh open order attempts from the broker.

An error an operator can act on (broker down, Redis down, bad keys) is one line on stderr and exit
status 1; with ``--json`` the JSON object is printed too, with the failure in ``error``.
"""

import json as jsonlib

from django.core.management.base import BaseCommand, CommandParser

from brokerops.commands import operator_console, operator_failures
from brokerops.locks import check_redis
from orders.services import order_attempts_sync


class Command(BaseCommand):
    help = "Refresh open order attempts from the broker in bulk, now."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, json: bool, verbosity: int = 1, **options) -> None:
        def print_failure(line: str) -> None:
            self.stdout.write(jsonlib.dumps({"error": line}))

        with (
            operator_console(verbosity),
            operator_failures(stderr=self.stderr, on_failure=print_failure if json else None),
        ):
            check_redis()
            counts = order_attempts_sync(actor="sync_orders command").counts()
        self.stdout.write(
            jsonlib.dumps(counts) if json else " ".join(f"{k}={v}" for k, v in counts.items())
        )
