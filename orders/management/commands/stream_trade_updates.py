"""`python manage.py stream_trade_updates`: consume Alpaca's trade_updates stream, long-running.

Serves every configured account from one process (docs/design.md section 16): one connection
per account, at its ``stream_url`` (``ALPACA_STREAM_URL``, or the stream of its trading
endpoint). Each catches up with one bulk order sync of its account on every (re)connect, applies
every event as it arrives to its account's attempts, reconnects with backoff and jitter; it
stops cleanly on SIGTERM or Ctrl-C (exit status 0, with a summary). With one account, refused
keys stop it with one line and exit status 1; with several, an account whose keys are refused
or whose broker is down keeps reconnecting and the others go on. Its log (``LOG_LEVEL``) says
when each listens, catches up and reconnects.
"""

from django.core.management.base import BaseCommand, CommandParser

from brokerops.accounts import configured
from brokerops.alpaca import BrokerRejected
from brokerops.alpaca.stream import trade_updates_connection_from_settings
from brokerops.commands import (
    add_seconds_argument,
    long_running,
    stopped_summary,
)
from brokerops.intent.factory import get_signal_store
from orders.services.stream import StreamStats, trade_updates_serve


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
            accounts = list(configured())
            several = len(accounts) > 1
            for account in accounts:  # checks the settings now
                url = trade_updates_connection_from_settings(account).url
                whose = f" for account {account.name}" if several else ""
                self.stdout.write(f"trade_updates: consuming {url}{whose} (SIGTERM stops)")
            self.stdout.flush()
            stats = trade_updates_serve(store=get_signal_store(), stop=stop)
        total = StreamStats()
        for name, one in stats.items():
            total.connects += one.connects
            total.catch_ups += one.catch_ups
            total.malformed += one.malformed
            total.events += one.events
            total.outcomes.update(one.outcomes)
            if several:
                error = f", last error: {one.last_error}" if one.last_error else ""
                self.stdout.write(
                    f"trade_updates: account {name}: {one.events} events, {one.connects} "
                    f"connects, {one.disconnects} disconnects{error}"
                )
        self.stdout.write(
            stopped_summary(
                "trade_updates",
                handled=total.events,
                noun="events",
                outcomes=total.outcomes,
                counts={
                    "connects": total.connects,
                    "catch-ups": total.catch_ups,
                    "malformed": total.malformed,
                },
            )
        )
