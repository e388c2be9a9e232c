"""`python manage.py sync_orders [--account NAME | --all] [--json]`: refresh the open order
attempts of one account, or of every account, from their brokers (docs/design.md section 16).
Its options, JSON objects, errors and exit statuses are those of ``submit_orders``.
"""

from django.core.management.base import BaseCommand, CommandParser

from brokerops.commands import (
    add_account_arguments,
    chosen_accounts,
    report_each_account,
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

        report_each_account(
            names,
            sync,
            stdout=self.stdout,
            stderr=self.stderr,
            several=all_accounts,
            json=json,
            line=_line,
            verbosity=verbosity,
        )


def _line(counts: dict[str, object]) -> str:
    """``account NAME: key=value ...``, or the account's error."""
    text = " ".join(f"{k}={v}" for k, v in counts.items() if k != "account")
    return f"account {counts['account']}: {text}"
