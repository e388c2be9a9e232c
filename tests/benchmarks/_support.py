"""Shared plumbing for the benchmark scripts: Django on a scratch database, a paper broker in a
child process (so the benchmark's own memory is measured alone), query counting."""

from __future__ import annotations

import atexit
import multiprocessing as mp
import os
import resource
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def setup_django(label: str) -> None:
    """Django on ``DATABASE_URL`` if set (e.g. PostgreSQL), else a fresh SQLite file."""
    sys.path.insert(0, str(ROOT))
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "brokerops.settings")
    if "DATABASE_URL" not in os.environ:
        # One file per process: two benchmarks at once must not share (and delete) a database.
        path = Path(tempfile.gettempdir()) / f"brokerops-bench-{label}-{os.getpid()}.sqlite3"
        path.unlink(missing_ok=True)
        atexit.register(path.unlink, missing_ok=True)
        os.environ["DATABASE_URL"] = f"sqlite:///{path}"
    _create_postgres_database(os.environ["DATABASE_URL"])
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    call_command("flush", interactive=False, verbosity=0)


def _create_postgres_database(url: str) -> None:
    """Create the benchmark's PostgreSQL database when it does not exist yet."""
    if not url.startswith(("postgres://", "postgresql://")):
        return
    import psycopg

    base, _, name = url.rpartition("/")
    dsn = base.replace("postgres://", "postgresql://", 1) + "/postgres"
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{name}"')


# 1,000,000 order attempts in one statement, server side (PostgreSQL; %(n)s rows), all of the
# account 'default': the single account of a deployment without ACCOUNTS_FILE
# (brokerops.accounts.DEFAULT_ACCOUNT). The raw fills name it: the column has no database default.
FILL_ATTEMPTS_SQL = """
INSERT INTO orders_orderattempt (account, client_order_id, signal_id, signal_ref, leg,
    alpaca_order_id, symbol, side, order_type, time_in_force, qty, status, broker_status,
    filled_qty, reason, adopted, request_payload, extended_hours, created_at, updated_at)
SELECT 'default', 'bo-sig' || i || '-entry', 'sig' || i, '', 'entry', md5(i::text)::uuid::text,
    (ARRAY['AAPL','MSFT','SPY','TSLA','BTC/USD'])[1 + i %% 5], 'buy', 'market', 'day', 1,
    'filled', 'filled', 1, '', false, '{}'::jsonb, false,
    now() - (i || ' seconds')::interval, now() - (i || ' seconds')::interval
FROM generate_series(1, %(n)s) AS i
"""


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@contextmanager
def count_queries() -> Iterator[list[int]]:
    from django.db import connection

    counter = [0]

    def wrapper(execute, sql, params, many, context):
        counter[0] += 1
        return execute(sql, params, many, context)

    with connection.execute_wrapper(wrapper):
        yield counter


@contextmanager
def timed() -> Iterator[list[float]]:
    box = [0.0]
    started = time.perf_counter()
    yield box
    box[0] = time.perf_counter() - started


def _broker_process(seeder: str, options: dict, conn) -> None:
    import importlib

    from brokerops.sim import PaperBroker

    module, _, name = seeder.partition(":")
    broker = PaperBroker(**options.get("broker", {}))
    getattr(importlib.import_module(module), name)(broker, **options.get("seed", {}))
    broker.start()
    conn.send(broker.base_url)
    while True:
        command, args = conn.recv()
        if command == "stop":
            broker.stop()
            conn.send(None)
            return
        if command == "account":  # ("account", (api_key, method, *args)): one account's handle
            api_key, command, *args = args
            conn.send(getattr(broker.account_for(api_key), command)(*args))
            continue
        conn.send(getattr(broker, command)(*args))


class RemoteBroker:
    """A paper broker in a child process; call its handle's methods by name."""

    def __init__(self, seeder: str, **options) -> None:
        """``seeder`` is ``"package.module:function"``, called with the broker before start."""
        ctx = mp.get_context("spawn")
        self._conn, child = ctx.Pipe()
        self._proc = ctx.Process(target=_broker_process, args=(seeder, options, child), daemon=True)
        self._proc.start()
        self.base_url = self._conn.recv()

    def call(self, command: str, *args):
        self._conn.send((command, args))
        return self._conn.recv()

    def call_account(self, api_key: str, command: str, *args):
        """Call a method of the handle of the account ``api_key`` opens (``set_faults``...)."""
        return self.call("account", api_key, command, *args)

    def stop(self) -> None:
        self.call("stop")
        self._proc.join(timeout=10)
