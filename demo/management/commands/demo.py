"""`python manage.py demo`: brokerops end to end on the embedded defaults.

Starts the paper broker on loopback serving two accounts (docs/design.md section 16): the desk
(the default), seeded with a scenario that shows every mismatch kind, and a client with a book of
its own (:mod:`demo.accounts` configures both, as an ``ACCOUNTS_FILE`` would). Loads the matching
signals into the local store, runs one reconciliation of each account at once (the desk's finds
every kind, before the order sync repairs the seeded order drifts) and a second one (breaks seen
again, one cleared; then one break proposed by ``operator`` and approved by ``compliance``,
docs/design.md section 17), runs a Celery worker and beat
in this process (the in-memory transport: nothing to install; the beat's fan-out serves each
account), consumes each account's trade_updates stream in a thread (fills show up at once),
watches every account's PENDING signals, and serves the admin. Ctrl-C stops everything.
"""

import tempfile
import threading
from collections.abc import Callable
from contextlib import ExitStack
from pathlib import Path

from django.apps import apps
from django.conf import settings
from django.contrib.auth.models import Group, User
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser

from audit.services import audit_verify
from audit.triggers import audit_maintenance
from brokerops.access import assign_group_permissions
from brokerops.accounts import configured
from brokerops.intent.factory import get_signal_store
from brokerops.sim import PaperBroker
from demo.accounts import DEMO_DESK_ACCOUNT, configure_demo_accounts
from demo.world import (
    DEMO_CLIENT_ACCOUNT,
    DEMO_SPLIT_SIGNAL,
    DEMO_SPLIT_SYMBOL,
    demo_four_eyes,
    demo_split,
    seed_client_account,
    seed_demo,
    tick_prices,
)
from reconciliation.explain import POSITION_KINDS
from reconciliation.models import Break, ReconciliationRun
from reconciliation.services import reconciliation_run

DEMO_USERS = (
    # username, group, password, the one account granted (None: every account): demo-only
    # credentials, printed on start.
    ("operator", "operations", "demo-operator", None),
    ("compliance", "compliance", "demo-compliance", None),
    ("client-desk", "operations", "demo-client", DEMO_CLIENT_ACCOUNT),
)


class Command(BaseCommand):
    help = "Run the brokerops demo on the embedded defaults and serve the admin."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--addr", default="127.0.0.1:8000", help="admin address (host:port)")
        parser.add_argument(
            "--broker-port", type=int, default=8765, help="port of the paper broker on 127.0.0.1"
        )
        parser.add_argument(
            "--interval", type=int, default=20, help="seconds between scheduled reconciliation runs"
        )
        parser.add_argument(
            "--force",
            action="store_true",
            help="allow a non-SQLite database (the demo resets its data)",
        )

    def handle(
        self, *args, addr: str, broker_port: int, interval: int, force: bool, **options
    ) -> None:
        self._refuse_real_setups(force)
        call_command("migrate", interactive=False, verbosity=0)
        with audit_maintenance("demo reset"):  # the demo starts from scratch
            call_command("flush", interactive=False, verbosity=0)
        assign_group_permissions()
        self._seed_users()

        broker = PaperBroker(port=broker_port)
        try:
            broker.start()
        except OSError as exc:
            raise CommandError(
                f"cannot start the paper broker on 127.0.0.1:{broker_port}: {exc}"
                " (use --broker-port)"
            ) from exc
        with ExitStack() as stack:
            stack.callback(broker.stop)
            workdir = stack.enter_context(tempfile.TemporaryDirectory(prefix="brokerops-demo-"))
            # Before anything reads the accounts: the desk and the client at this broker.
            configure_demo_accounts(broker, Path(workdir))
            store = get_signal_store()
            seed_demo(broker=broker, store=store, account=DEMO_DESK_ACCOUNT)
            seed_client_account(broker, store=store)
            firsts = self._first_runs()
            # A second run at once: breaks seen again, and one whose order the first run
            # repaired (marked missing) cleared; then four eyes on one of the desk's.
            seconds = self._first_runs()
            signed = demo_four_eyes(
                account=DEMO_DESK_ACCOUNT,
                proposer=User.objects.get(username="operator"),
                approver=User.objects.get(username="compliance"),
            )
            breaks_line = self._breaks_line(seconds[DEMO_DESK_ACCOUNT], signed)
            # A 4:1 split the desk's signal follows (docs/design.md section 18.4).
            split = demo_split(broker=broker, account=DEMO_DESK_ACCOUNT)
            # The admin opens on a verified trail (docs/design.md section 19), not "never".
            audit_verify(trigger="command", processes=1)
            stack.enter_context(_celery_in_process(interval))
            stack.enter_context(_ticker(broker))
            stack.enter_context(_stream_consumer())
            stack.enter_context(_signal_watcher())
            self._banner(addr, broker.base_url, interval, firsts)
            self.stdout.write(breaks_line)
            self._split_banner(split, store)
            call_command("runserver", addr, use_reloader=False, use_threading=True)

    def _refuse_real_setups(self, force: bool) -> None:
        engine = settings.DATABASES["default"]["ENGINE"]
        if "sqlite" not in engine and not force:
            raise CommandError(
                "the demo resets its database; it runs on SQLite only "
                "(unset DATABASE_URL, or pass --force)"
            )
        if settings.ALPACA_API_KEY:
            raise CommandError(
                "the demo runs against the built-in paper broker: unset "
                "ALPACA_API_KEY / ALPACA_SECRET_KEY"
            )
        if settings.SIGNAL_STORE != "local" and not force:
            raise CommandError("the demo uses the embedded signal store: unset SIGNAL_STORE")

    def _seed_users(self) -> None:
        # The workspace's model, by its label: the demo and the workspace import nothing of
        # each other (pyproject's floors).
        grant = apps.get_model("workspace", "AccountGrant")
        for username, group, password, account in DEMO_USERS:
            user, _ = User.objects.get_or_create(username=username, defaults={"is_staff": True})
            user.is_staff = True
            user.set_password(password)
            user.save()
            user.groups.add(Group.objects.get(name=group))
            if account is not None:
                grant.objects.get_or_create(
                    user=user, account=account, defaults={"created_by": "demo"}
                )

    def _first_runs(self) -> dict[str, ReconciliationRun]:
        """One reconciliation of each account before the order sync and the stream start: they
        would repair the seeded order drifts (the gone order marked missing, the canceled one
        updated) before a scheduled run could show them as ORDER_NOT_FOUND and
        ORDER_STATUS_DRIFT."""
        runs = {}
        for account in configured():
            run = reconciliation_run(
                trigger=ReconciliationRun.Trigger.COMMAND, account=account.name
            )
            if run.status != ReconciliationRun.Status.SUCCEEDED:
                raise CommandError(
                    f"the demo's first reconciliation run of account {account.name}"
                    f" {run.status}: {run.error}"
                )
            runs[account.name] = run
        return runs

    def _banner(
        self, addr: str, broker_url: str, interval: int, firsts: dict[str, ReconciliationRun]
    ) -> None:
        w = self.stdout.write
        w(self.style.SUCCESS("\nbrokerops demo is running."))
        w(f"  Admin:         http://{addr}/admin/   log in as (demo-only credentials):")
        for username, group, password, account in DEMO_USERS:
            sees = f", sees the {account} account only" if account else ""
            w(f"                   {username} / {password}   ({group}{sees})")
        w(f"  Paper broker:  {broker_url}  (Alpaca Trading API v2 on loopback)")
        w(
            f"  Accounts:      {DEMO_DESK_ACCOUNT} (the default) and {DEMO_CLIENT_ACCOUNT}, each"
            " with its own keys and book at this broker (see the lists' account column and"
            " filter)."
        )
        w(
            f"  Reconciliation of each account every {interval} s, order cycle and sync every"
            " 10 s (Celery worker and beat in this process)."
        )
        w(
            "  trade_updates streams consumed and PENDING signals watched in this process, for"
            " both accounts: orders go out and fills reach the admin at once."
        )
        desk, client = firsts[DEMO_DESK_ACCOUNT], firsts[DEMO_CLIENT_ACCOUNT]
        w(
            f"  Look at: Reconciliation runs -> run #{desk.pk}, the {DEMO_DESK_ACCOUNT}'s first,"
            f" found every mismatch kind: {', '.join(_kinds(desk))}; run #{client.pk}, the"
            f" {DEMO_CLIENT_ACCOUNT}'s, found {', '.join(_kinds(client))}; Order attempts ->"
            " one client_order_id's history; Periodic tasks -> the schedule."
        )
        w("  Stop with Ctrl-C.")

    def _split_banner(self, run: ReconciliationRun, store) -> None:
        followed = run.summary.get("explained", {}).get("followed", [])
        signal = store.get(DEMO_SPLIT_SIGNAL)
        expects = getattr(signal, "signed_qty", None)
        on_it = run.mismatches.filter(symbol=DEMO_SPLIT_SYMBOL, kind__in=POSITION_KINDS)
        found = ", ".join(sorted(set(on_it.values_list("kind", flat=True)))) or "no break"
        self.stdout.write(
            f"  Explained:     {DEMO_SPLIT_SYMBOL} split 4:1 at the paper broker; run #{run.pk}"
            f" read the activities and {DEMO_SPLIT_SIGNAL} followed the split"
            f" ({len(followed)} signal(s) moved): it now expects {expects}, and the run found"
            f" {found} on the holding. Account activities, and the signal's status reason.\n"
        )

    def _breaks_line(self, second: ReconciliationRun, signed: Break | None) -> str:
        breaks = Break.objects.filter(account=DEMO_DESK_ACCOUNT)
        again = breaks.filter(last_run=second, occurrences__gt=1).count()
        cleared = breaks.filter(cleared_by_run=second).count()
        story = (
            f" {signed} was proposed by operator and approved by compliance;"
            if signed is not None
            else ""
        )
        return (
            f"  Breaks:        run #{second.pk} saw {again} of the {DEMO_DESK_ACCOUNT}'s breaks"
            f" again and cleared {cleared};{story} Reconciliation -> Breaks, and the"
            " End-of-day report linked from the admin's home page."
        )


def _kinds(run: ReconciliationRun) -> list[str]:
    return sorted(set(run.mismatches.values_list("kind", flat=True)))


class _celery_in_process:
    """A Celery worker and beat in threads of this process, over the in-memory transport."""

    def __init__(self, interval: int) -> None:
        self.interval = interval

    def __enter__(self):
        from celery.beat import EmbeddedService
        from celery.contrib.testing.worker import start_worker

        from brokerops.celery import WORKER_QUEUES, app, beat_schedule

        settings.RECONCILE_INTERVAL_S = self.interval
        settings.ORDER_SUBMIT_INTERVAL_S = settings.ORDER_SYNC_INTERVAL_S = 10
        app.conf.task_always_eager = False
        app.conf.beat_schedule = beat_schedule()
        self._worker = start_worker(
            app,
            pool="threads",
            concurrency=2,
            perform_ping_check=False,
            loglevel="WARNING",
            queues=WORKER_QUEUES,
        )
        self._worker.__enter__()
        # EmbeddedService ignores beat_scheduler: name the database scheduler (the admin shows
        # its schedule) explicitly.
        self._beat = EmbeddedService(app, thread=True, scheduler_cls=app.conf.beat_scheduler)
        self._beat.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._beat.stop()
        self._worker.__exit__(None, None, None)


class _in_thread:
    """A long-running service loop in a thread of this process, stopped with the demo; the
    thread closes its own database connections when the loop ends."""

    def __init__(self, name: str, loop: Callable[[threading.Event], object], join_s: float):
        self._name, self._loop, self._join_s = name, loop, join_s

    def __enter__(self):
        from django.db import connections

        self._stop = threading.Event()

        def run() -> None:
            try:
                self._loop(self._stop)
            finally:
                connections.close_all()  # this thread's own

        self._thread = threading.Thread(target=run, name=self._name, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=self._join_s)


def _signal_watcher() -> _in_thread:
    """``watch_signals`` in a thread of this process, stopped with the demo: every account's
    PENDING signals, each sent through its own account's gateway."""
    from brokerops.intent.watch import pending_source
    from orders.services.watch import signals_watch

    return _in_thread(
        "demo-signal-watcher",
        lambda stop: signals_watch(
            source=lambda: pending_source(get_signal_store(), poll_s=settings.WATCH_POLL_S),
            store=get_signal_store(),
            stop=stop,
            workers=2,
        ),
        join_s=35,
    )


def _stream_consumer() -> _in_thread:
    """``stream_trade_updates`` in a thread of this process, stopped with the demo: a
    connection per account, each consumed on a thread of its own."""
    from orders.services.stream import trade_updates_serve

    store = get_signal_store()
    # Each account's first act is a catch-up sync: the seeded order drifts are repaired then,
    # after the demo's first reconciliation runs recorded them.
    return _in_thread(
        "demo-trade-updates",
        lambda stop: trade_updates_serve(store=store, stop=stop),
        join_s=5,
    )


class _ticker:
    """Moves the demo's prices every few seconds so a resting limit order fills."""

    def __init__(self, broker: PaperBroker, every_s: float = 5.0) -> None:
        self.broker, self.every_s = broker, every_s
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="demo-ticker", daemon=True)

    def _run(self) -> None:
        step = 0
        while not self._stop.wait(self.every_s):
            step += 1
            tick_prices(self.broker, step)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
