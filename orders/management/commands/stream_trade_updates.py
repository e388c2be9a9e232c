"""`python manage.py stream_trade_updates`: consume Alpaca's trade_updates stream, long-running.

Connects to ``ALPACA_STREAM_URL`` (or the stream of the trading endpoint in use), catches up
with one bulk order sync on every (re)connect, applies every event as it arrives, reconnects
with backoff and jitter, and stops cleanly on SIGTERM or Ctrl-C (exit status 0, with a summary).
Refused keys stop it with one line and exit status 1. Its log (``LOG_LEVEL``) says when it
listens, catches up and reconnects.
"""

import signal
import threading

from django.core.management.base import BaseCommand, CommandParser

from brokerops.alpaca import BrokerRejected
from brokerops.alpaca.stream import trade_updates_connection_from_settings
from brokerops.boundaries import broker_gateway, signal_store
from orders.management.commands._operator import fail, operator_error
from orders.services.stream import trade_updates_consume


class Command(BaseCommand):
    help = "Consume Alpaca's trade_updates stream until SIGTERM (order state in real time)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--seconds",
            type=float,
            default=None,
            help="stop after this many seconds (default: run until SIGTERM)",
        )

    def handle(self, *args, seconds: float | None, **options) -> None:
        if seconds is not None and seconds <= 0:
            raise fail("--seconds must be positive", stderr=self.stderr)
        stop = threading.Event()
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, lambda *_: stop.set())
        if seconds is not None:
            timer = threading.Timer(seconds, stop.set)
            timer.daemon = True
            timer.start()
        try:
            connection = trade_updates_connection_from_settings()  # checks the settings now
            self.stdout.write(f"trade_updates: consuming {connection.url} (SIGTERM stops)")
            stats = trade_updates_consume(
                connect=trade_updates_connection_from_settings,
                gateway=broker_gateway(),
                store=signal_store(),
                stop=stop,
            )
        except BrokerRejected as exc:
            raise fail(f"stream_trade_updates stopped: {exc}", stderr=self.stderr, exc=exc) from exc
        except Exception as exc:
            line = operator_error(exc)
            if line is None:
                raise
            raise fail(
                f"stream_trade_updates stopped: {line}", stderr=self.stderr, exc=exc
            ) from exc
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(stats.outcomes.items())) or "none"
        self.stdout.write(
            f"trade_updates: stopped after {stats.events} events ({outcomes}), "
            f"{stats.connects} connects, {stats.catch_ups} catch-ups, {stats.malformed} malformed"
        )
