"""`python manage.py activities [--account NAME | --all] [--json]`: read and store the new
account activities of one account, or of every account, now, then print what each sync did
(docs/design.md section 18.2). Options, errors and exit statuses as ``sync_orders``: an unknown
account exits 2 naming the known ones; a broker or database failure is one line and exit
status 1, after the other accounts' lines. A read that stopped early (``complete`` false) is
not a failure: its reason is printed and the next sync goes on from the cursor.
"""

from django.core.management.base import BaseCommand, CommandParser

from brokerops.commands import (
    add_account_arguments,
    chosen_accounts,
    report_each_account,
)
from brokerops.locks import check_redis
from ledger.services import activities_sync

SHOWN = ("new", "already_stored", "pages", "api_calls", "complete", "cursor")


class Command(BaseCommand):
    help = "Read the account activities from Alpaca into the ledger, now."

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
            return activities_sync(account=name).report()

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


def _line(report: dict[str, object]) -> str:
    """``account NAME: new=.. already_stored=.. pages=.. api_calls=.. complete=.. cursor=..``,
    then why the read stopped, the sync was skipped, or the account failed."""
    if "error" in report:
        return f"account {report['account']}: error: {report['error']}"
    if report.get("skipped"):
        return f"account {report['account']}: skipped: {report['skipped']}"
    text = " ".join(
        f"{key}={str(report[key]).lower() if key == 'complete' else report[key]}" for key in SHOWN
    )
    stop = f" stopped: {report['stop_reason']}" if report.get("stop_reason") else ""
    return f"account {report['account']}: {text}{stop}"
