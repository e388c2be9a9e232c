"""`python manage.py sync_orders [--json]`: refresh open order attempts from the broker."""

import json as jsonlib

from django.core.management.base import BaseCommand, CommandParser

from orders.services import order_attempts_sync


class Command(BaseCommand):
    help = "Refresh open order attempts from the broker in bulk, now."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--json", action="store_true", help="print one JSON object")

    def handle(self, *args, json: bool, **options) -> None:
        counts = order_attempts_sync(actor="sync_orders command").counts()
        self.stdout.write(
            jsonlib.dumps(counts) if json else " ".join(f"{k}={v}" for k, v in counts.items())
        )
