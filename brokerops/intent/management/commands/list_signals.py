"""``python manage.py list_signals [--status ACTIVE ...] [--json]``: show stored signals.

Without ``--status`` every document is listed (a full scan); with it, only those statuses (plus,
with ``--include-unknown-status``, documents whose status is not a known one). Documents that do
not parse are listed separately with their reasons. ``--json`` prints one object:
``{"signals": [...], "invalid": [...]}`` with decimals as strings and timestamps in ISO 8601.
"""

import json

from django.core.management.base import BaseCommand, CommandError

from brokerops.intent.factory import get_signal_store
from brokerops.intent.schema import SignalStatus
from brokerops.intent.store import SignalStoreError


class Command(BaseCommand):
    help = "List the signals in the configured signal store."

    def add_arguments(self, parser):
        parser.add_argument(
            "--status",
            action="append",
            choices=[s.value for s in SignalStatus],
            help="only this status (repeatable)",
        )
        parser.add_argument(
            "--include-unknown-status",
            action="store_true",
            help="with --status: also documents whose status is not a known one",
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, status, include_unknown_status, **options):
        store = get_signal_store()
        try:
            if status:
                result = store.read(
                    statuses={SignalStatus(s) for s in status},
                    include_unknown_status=include_unknown_status,
                )
            else:
                result = store.read_all()
        except SignalStoreError as exc:
            raise CommandError(f"signal store failed: {exc}") from exc

        if options["json"]:
            self._print_json(result)
            return
        header = f"{'id':<24} {'status':<13} {'symbol':<10} {'side':<4} {'qty/notional':>14} "
        self.stdout.write(header + f"{'type':<10} {'client_order_id':<30} updated_at")
        for s in result.signals:
            amount = str(s.qty) if s.qty is not None else f"${s.notional}"
            updated = s.updated_at.isoformat() if s.updated_at else "-"
            self.stdout.write(
                f"{s.id:<24} {s.status:<13} {s.symbol:<10} {s.side:<4} {amount:>14} "
                f"{s.order_type:<10} {s.client_order_id or '-':<30} {updated}"
            )
        self.stdout.write(f"{len(result.signals)} signal(s), {len(result.invalid)} invalid.")
        for item in result.invalid:
            self.stdout.write(self.style.WARNING(f"  invalid {item.id}: {'; '.join(item.reasons)}"))

    def _print_json(self, result):
        payload = {
            "signals": [s.as_json_dict() for s in result.signals],
            "invalid": [i.as_json_dict() for i in result.invalid],
        }
        self.stdout.write(json.dumps(payload, indent=2))
