"""`python manage.py watch_signals`: send each new PENDING signal at once, long-running.

Watches the signal store (Firestore's real-time listener; a poll every ``WATCH_POLL_S`` of the
local store), sends every new PENDING signal through the order cycle's service, catches up with
every PENDING signal on each (re)connect, reconnects with backoff and jitter, and stops cleanly
on SIGTERM or Ctrl-C (exit status 0, with a summary). Refused keys stop it with one line and
exit status 1. The beat's order cycle stays the safety net (docs/design.md section 15).

One process serves every configured account (docs/design.md section 16): each signal is sent
through its own account's gateway, a signal naming an unknown account is rejected once. With
several accounts, one whose keys are refused stops sending alone; the watch stops (exit status
1) when every account's keys were refused.
"""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandParser

from brokerops.accounts import configured
from brokerops.alpaca import BrokerRejected
from brokerops.commands import (
    add_seconds_argument,
    long_running,
    stopped_summary,
)
from brokerops.intent.factory import get_signal_store
from brokerops.intent.watch import pending_source
from orders.services.watch import signals_watch


class Command(BaseCommand):
    help = "Watch PENDING signals until SIGTERM and send each at once (intent to order in < 1 s)."

    def add_arguments(self, parser: CommandParser) -> None:
        add_seconds_argument(parser)

    def handle(self, *args, seconds: float | None, **options) -> None:
        with long_running(
            "watch_signals", seconds=seconds, stderr=self.stderr, said_as_is=(BrokerRejected,)
        ) as stop:
            store = get_signal_store()  # checks the settings now
            names = ", ".join(configured().names)
            self.stdout.write(
                f"watch_signals: watching PENDING signals in {store!r} for account(s) {names} "
                "(SIGTERM stops)"
            )
            self.stdout.flush()
            stats = signals_watch(
                source=lambda: pending_source(
                    get_signal_store(),
                    poll_s=settings.WATCH_POLL_S,
                    listener_process=settings.WATCH_LISTENER_PROCESS,
                ),
                store=store,
                stop=stop,
            )
        self.stdout.write(
            stopped_summary(
                "watch_signals",
                handled=stats.documents,
                noun="documents",
                outcomes=stats.outcomes,
                counts={"connects": stats.connects, "retries": stats.retries},
            )
        )
