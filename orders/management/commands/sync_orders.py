"""`python manage.py sync_orders [--account NAME | --all] [--json]`: refresh the open order
attempts of one account, or of every account, from their brokers (docs/design.md section 16).
Its options, JSON objects, errors and exit statuses are those of ``submit_orders``.
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
from orders.services.sync import orders_sync_open


class Command(BaseCommand):
    help = "Refresh open order attempts from the broker in bulk, now."

    def add_arguments(self, parser: CommandParser) -> None:
        add_account_arguments(parser)
        parser.add_argument("--json", action="store_true", help="print JSON")

    def handle(
        self,
        *args,
        json: bool,
        account: str | None,
        all_accounts: bool,
        verbosity: int = 1,
        **options,
    ) -> None:
        names = chosen_accounts(account=account, all_accounts=all_accounts)

        def sync(name: str) -> dict[str, object]:
            check_redis()  # named as such, rather than what it broke
            return orders_sync_open(account=name, actor="sync_orders command").report()

        with operator_console(verbosity):
            runs = for_each_account(names, sync)
        # A bug is raised here, before any output; an operator's error after the output.
        error = accounts_failed(runs, stderr=self.stderr, several=all_accounts)
        objects = [
            run.value if run.value is not None else {"account": run.account, "error": run.line}
            for run in runs
        ]
        if json:
            self.stdout.write(jsonlib.dumps(objects if all_accounts else objects[0]))
        else:
            for counts in objects:
                text = " ".join(f"{k}={v}" for k, v in counts.items() if k != "account")
                self.stdout.write(f"account {counts['account']}: {text}")
        if error is not None:
            raise error
