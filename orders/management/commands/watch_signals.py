"""`python manage.py watch_signals`: send each new PENDING signal at once, long-running.

Watches the signal store (Firestore's real-time listener; a poll every ``WATCH_POLL_S`` of the
local store), sends every new PENDING signal through the order cycle's service, catches up with
every PENDING signal on each (re)connect, reconnects with backoff and jitter, and stops cleanly
on SIGTERM or Ctrl-C (exit status 0, with a summary). Refused keys stop it with one line and
exit status 1. The beat's order cycle stays the safety net (DESIGN.md section 15).
"""

import signal
import threading

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from brokerops.alpaca import BrokerRejected
from brokerops.boundaries import broker_gateway, signal_store
from brokerops.intent.watch import pending_source
from orders.management.commands._operator import fail, operator_error
from orders.services.watch import signals_watch


class Command(BaseCommand):
    help = "Watch PENDING signals until SIGTERM and send each at once (intent to order in < 1 s)."

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
            store = signal_store()  # checks the settings now
            self.stdout.write(
                f"watch_signals: watching PENDING signals in {store!r} (SIGTERM stops)"
            )
            self.stdout.flush()
            stats = signals_watch(
                source=lambda: pending_source(signal_store(), poll_s=settings.WATCH_POLL_S),
                gateway=broker_gateway(),
                store=store,
                stop=stop,
            )
        except BrokerRejected as exc:
            raise fail(f"watch_signals stopped: {exc}", stderr=self.stderr, exc=exc) from exc
        except Exception as exc:
            line = operator_error(exc)
            if line is None:
                raise
            raise fail(f"watch_signals stopped: {line}", stderr=self.stderr, exc=exc) from exc
        outcomes = ", ".join(f"{n} {k}" for k, n in sorted(stats.outcomes.items())) or "none"
        self.stdout.write(
            f"watch_signals: stopped after {stats.documents} documents ({outcomes}), "
            f"{stats.connects} connects, {stats.retries} retries"
        )
