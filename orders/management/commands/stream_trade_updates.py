"""`python manage.py stream_trade_updates`: consume Alpaca's trade_updates stream, long-running.

Connects to ``ALPACA_STREAM_URL`` (or the stream of the trading endpoint in use), catches up
with one bulk order sync on every (re)connect, applies every event as it arrives, reconnects
with backoff and jitter, and stops cleanly on SIGTERM or Ctrl-C (exit status 0, with a summary).
Refused keys stop it with one line and exit status 1. Its log (``LOG_LEVEL``) says when it
listens, catches up and reconnects.
"""

from django.core.management.base import BaseCommand, CommandParser

from brokerops.alpaca import BrokerRejected, broker_gateway
from brokerops.alpaca.stream import trade_updates_connection_from_settings
from brokerops.commands import (
    add_seconds_argument,
    long_running,
    stopped_summary,
)
from brokerops.intent.factory import get_signal_store
from orders.services.stream import trade_updates_consume


class Command(BaseCommand):
    help = "Consume Alpaca's trade_updates stream until SIGTERM (order state in real time)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_seconds_argument(parser)

    def handle(self, *args, seconds: float | None, **options) -> None:
        with long_running(
            "stream_trade_updates",
            seconds=seconds,
            stderr=self.stderr,
            said_as_is=(BrokerRejected,),
        ) as stop:
            connection = trade_updates_connection_from_settings()  # checks the settings now
            self.stdout.write(f"trade_updates: consuming {connection.url} (SIGTERM stops)")
            stats = trade_updates_consume(
                connect=trade_updates_connection_from_settings,
                gateway=broker_gateway(),
                store=get_signal_store(),
                stop=stop,
            )
        self.stdout.write(
            stopped_summary(
                "trade_updates",
                handled=stats.events,
                noun="events",
                outcomes=stats.outcomes,
                counts={
                    "connects": stats.connects,
                    "catch-ups": stats.catch_ups,
                    "malformed": stats.malformed,
                },
            )
        )
