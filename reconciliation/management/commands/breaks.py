"""`python manage.py breaks [--account NAME | --all] [--state open|closed|all] [--json]`: the
breaks (docs/design.md sections 10 and 17), most urgent first.

``--state open`` (the default) lists the live breaks (open, acknowledged, proposed), ``closed``
the signed-off and cleared ones, ``all`` both. One account (``--account NAME``, or the default
account), or every account's breaks with ``--all`` (those of an account no longer configured
included). A readable table, or with ``--json`` a list of objects (:func:`break_as_json`). An
unknown account or state is exit status 2 with one line saying what is known.
"""

import json

from django.core.management.base import BaseCommand, CommandParser
from django.utils import timezone

from brokerops.commands import add_account_arguments, chosen_accounts
from reconciliation.ageing import LIVE_STATES, age, human_age, is_overdue
from reconciliation.models import Break
from reconciliation.report import break_as_json

STATES = {
    "open": sorted(LIVE_STATES),
    "closed": [Break.State.CLOSED, Break.State.RESOLVED],
    "all": None,
}
_COLUMNS = (
    "{id:>7}  {account:<10} {state:<12} {severity:<8} {kind:<20} {about:<24} {age:>10}  {due}"
)


class Command(BaseCommand):
    help = (
        "List the breaks of an account (--account NAME, default: the default account) or of "
        "every account (--all): the live ones (--state open, the default), closed or all."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        add_account_arguments(parser)
        parser.add_argument(
            "--state",
            choices=list(STATES),
            default="open",
            help="open (open, acknowledged, proposed; the default), closed (signed off or "
            "cleared by a run) or all",
        )
        parser.add_argument("--json", action="store_true", help="print a JSON list")

    def handle(
        self,
        *args,
        state: str,
        json: bool,
        account: str | None = None,
        all_accounts: bool = False,
        **options,
    ) -> None:
        breaks = Break.objects.order_by("account", "due_at", "pk")
        if not all_accounts:
            (name,) = chosen_accounts(account=account, all_accounts=False)
            breaks = breaks.filter(account=name)
        if STATES[state] is not None:
            breaks = breaks.filter(state__in=STATES[state])
        now = timezone.now()
        if json:
            self.stdout.write(_dumps([break_as_json(b, now=now) for b in breaks.iterator()]))
            return
        self._table(breaks, now)

    def _table(self, breaks, now) -> None:
        header = _COLUMNS.format(
            id="id", account="account", state="state", severity="severity", kind="kind",
            about="symbol / order / signal", age="age", due="due (UTC), owner, seen",
        )  # fmt: skip
        self.stdout.write(header)
        shown = 0
        for brk in breaks.iterator():
            shown += 1
            late = " OVERDUE" if is_overdue(state=brk.state, due_at=brk.due_at, now=now) else ""
            about = brk.symbol or brk.client_order_id or ",".join(brk.signal_ids) or "-"
            self.stdout.write(
                _COLUMNS.format(
                    id=f"#{brk.pk}",
                    account=brk.account,
                    state=brk.state,
                    severity=brk.severity,
                    kind=brk.kind,
                    about=about[:24],
                    age=human_age(age(brk.opened_at, now)),
                    due=f"{brk.due_at:%Y-%m-%d %H:%M}{late}, {brk.owner_username or '-'}, "
                    f"{brk.occurrences}x",
                )
            )
        self.stdout.write(f"{shown} break(s)")


def _dumps(value: list[dict]) -> str:
    return json.dumps(value, sort_keys=False)
