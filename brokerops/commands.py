"""What the operator commands (``reconcile``, ``submit_orders``, ``sync_orders``, ``verify_audit``,
and the long-running ``stream_trade_updates`` and ``watch_signals``) share: the ground floor's
command scaffolding, which knows no app and no door (a door's error explains itself).

docs/design.md section 10: an error an operator can act on (broker down, Redis down, bad keys, the
database or the signal store unreachable, a bad setting) is one clear line on stderr and a
non-zero exit status; tracebacks only at ``LOG_LEVEL=DEBUG``. Anything else (a bug) keeps its
traceback.

While a command runs, the ``console`` log handler (settings ``LOGGING``) shows CRITICAL records
only: the command's own output says what happened, and the run and attempt rows hold the detail
(retries, per-signal errors). ``-v 2`` shows the log at ``LOG_LEVEL``; ``LOG_LEVEL=DEBUG`` shows
everything, tracebacks included.
"""

from __future__ import annotations

import logging
import signal
import threading
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Generic, Protocol, TypeVar, runtime_checkable

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.core.management.base import CommandError, CommandParser

CONSOLE_HANDLER = "console"
#: Accounts a ``--all`` command serves at once (one thread each): one account's broker that
#: hangs never delays another's work (docs/design.md section 16).
ACCOUNT_THREADS = 8
T = TypeVar("T")


def debugging() -> bool:
    """``LOG_LEVEL=DEBUG``: show the log and the tracebacks."""
    return logging.getLogger().isEnabledFor(logging.DEBUG)


@contextmanager
def operator_console(verbosity: int = 1) -> Iterator[None]:
    """Keep the console log to CRITICAL records while the command runs (see the module doc)."""
    if verbosity >= 2 or debugging():
        yield
        return
    handlers = [h for h in logging.getLogger().handlers if h.get_name() == CONSOLE_HANDLER]
    levels = [h.level for h in handlers]
    for handler in handlers:
        handler.setLevel(max(handler.level, logging.CRITICAL))
    try:
        yield
    finally:
        for handler, level in zip(handlers, levels, strict=True):
            handler.setLevel(level)


@runtime_checkable
class ExplainsItself(Protocol):
    """A failure that says in one line what failed and what to do: the two doors' errors
    (``BrokerError``, ``SignalStoreError``) answer so, and this floor knows neither class."""

    def operator_line(self) -> str: ...


def operator_error(exc: BaseException) -> str | None:
    """One line saying what failed and what to do, for a failure an operator can act on;
    ``None`` for anything else (a bug keeps its traceback)."""
    import redis
    from django.db import InterfaceError, OperationalError

    from brokerops.locks import LockUnavailable, redis_unreachable

    if isinstance(exc, LockUnavailable):
        line = str(exc)
    elif isinstance(exc, redis.RedisError) and settings.REDIS_URL:
        line = str(redis_unreachable(settings.REDIS_URL, exc))
    elif isinstance(exc, ExplainsItself):
        line = exc.operator_line()
    elif isinstance(exc, OperationalError | InterfaceError):
        line = f"the database is unavailable: {exc}"
    elif isinstance(exc, ImproperlyConfigured):
        line = f"configuration: {exc}"
    else:
        return None
    return one_line(line)


@contextmanager
def operator_failures(
    *, stderr, prefix: str = "", on_failure: Callable[[str], None] | None = None
) -> Iterator[None]:
    """A failure inside that an operator can act on (`operator_error`) is raised again as
    ``prefix`` and its one line (`fail`: exit status 1), once ``on_failure`` had the line (a
    command printing JSON prints the failure there too); anything else (a bug) passes as it is,
    traceback and all."""
    try:
        yield
    except Exception as exc:
        line = operator_error(exc)
        if line is None:
            raise
        if on_failure is not None:
            on_failure(line)
        raise fail(f"{prefix}{line}", stderr=stderr, exc=exc) from exc


def fail(line: str, *, stderr, exc: BaseException | None = None) -> CommandError:
    """The ``CommandError`` to raise for ``line`` (Django prints it as one line on stderr, exit
    status 1); at ``LOG_LEVEL=DEBUG`` the traceback of ``exc`` is written first."""
    if exc is not None and debugging():
        stderr.write("".join(traceback.format_exception(exc)).rstrip("\n"))
    return CommandError(one_line(line), returncode=1)


def one_line(text: str) -> str:
    return " ".join(str(text).split())


# --- long-running commands (stream_trade_updates, watch_signals) -------------------------------


def add_seconds_argument(parser: CommandParser) -> None:
    """``--seconds``: stop after that long (default: run until SIGTERM)."""
    parser.add_argument(
        "--seconds",
        type=float,
        default=None,
        help="stop after this many seconds (default: run until SIGTERM)",
    )


@contextmanager
def long_running(
    name: str,
    *,
    seconds: float | None,
    stderr,
    said_as_is: tuple[type[BaseException], ...] = (),
) -> Iterator[threading.Event]:
    """The stop event of a long-running command: set by SIGTERM, Ctrl-C or after ``seconds``.

    A failure inside becomes one line, ``<name> stopped: <what to do>``, and exit status 1
    (refused keys included); a failure of a class in ``said_as_is`` (the broker's refusals: their
    message says it) is told in its own words; a bug keeps its traceback.
    """
    if seconds is not None and seconds <= 0:
        raise fail("--seconds must be positive", stderr=stderr)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    timer = threading.Timer(seconds, stop.set) if seconds is not None else None
    if timer is not None:
        timer.daemon = True
        timer.start()
    try:
        with operator_failures(stderr=stderr, prefix=f"{name} stopped: "):
            try:
                yield stop
            except said_as_is as exc:
                raise fail(f"{name} stopped: {exc}", stderr=stderr, exc=exc) from exc
    finally:
        if timer is not None:
            timer.cancel()


def stopped_summary(
    name: str, *, handled: int, noun: str, outcomes: Mapping[str, int], counts: Mapping[str, int]
) -> str:
    """The last line of a long-running command: ``<name>: stopped after N <noun> (outcomes),
    n label, ...``."""
    done = ", ".join(f"{n} {k}" for k, n in sorted(outcomes.items())) or "none"
    rest = "".join(f", {n} {label}" for label, n in counts.items())
    return f"{name}: stopped after {handled} {noun} ({done}){rest}"


# --- per-account commands (submit_orders, sync_orders, reconcile) ------------------------------


def add_account_arguments(parser: CommandParser) -> None:
    """``--account NAME`` or ``--all`` (mutually exclusive; neither: the default account),
    docs/design.md section 16."""
    group = parser.add_mutually_exclusive_group()
    group.add_argument(
        "--account", metavar="NAME", default=None, help="this account (default: the default one)"
    )
    group.add_argument(
        "--all", action="store_true", dest="all_accounts", help="every configured account"
    )


def chosen_accounts(*, account: str | None, all_accounts: bool) -> list[str]:
    """The accounts a command serves: every configured one (``--all``, in the file's order),
    the one named, or the default account. An unknown name, or none without a default
    account, exits 2 naming the known accounts."""
    from brokerops.accounts import configured

    try:
        accounts = configured()
    except ImproperlyConfigured as exc:  # keys half set, checked at start in a real process
        raise CommandError(one_line(f"configuration: {exc}"), returncode=1) from None
    known = ", ".join(accounts.names)
    if all_accounts:
        return accounts.names
    if account is None:
        if accounts.default is None:
            raise CommandError(
                f"no default account: name one with --account NAME, or --all (accounts: {known})",
                returncode=2,
            )
        return [accounts.default.name]
    if account not in accounts:
        raise CommandError(f"no account {account!r} (accounts: {known})", returncode=2)
    return [account]


@dataclass
class AccountRun(Generic[T]):
    """One account's part of a command: its value, or the failure that stopped it (``line``:
    what an operator reads; empty for a bug, which keeps its traceback)."""

    account: str
    value: T | None = None
    error: BaseException | None = None
    line: str = ""


def for_each_account(names: Sequence[str], work: Callable[[str], T]) -> list[AccountRun[T]]:
    """``work(name)`` for every account, several at once (`ACCOUNT_THREADS`), in ``names``'
    order: one account's failure or slow broker never stops or delays another's."""
    from django.db import connections

    def one(name: str) -> AccountRun[T]:
        try:
            return AccountRun(name, value=work(name))
        except Exception as exc:  # noqa: BLE001 - reported per account by the caller
            return AccountRun(name, error=exc, line=operator_error(exc) or "")
        finally:
            if threading.current_thread() is not threading.main_thread():
                connections.close_all()  # this thread's own database connections

    if len(names) == 1:
        return [one(names[0])]
    with ThreadPoolExecutor(min(len(names), ACCOUNT_THREADS)) as pool:
        return list(pool.map(one, names))


def accounts_failed(runs: Sequence[AccountRun], *, stderr, several: bool) -> CommandError | None:
    """The error to exit with when an account's part failed (one line, naming each failed
    account when the command served ``several``); a bug is raised as it is."""
    failed = [run for run in runs if run.error is not None]
    for run in failed:
        if not run.line:
            raise run.error  # type: ignore[misc]
    if not failed:
        return None
    line = "; ".join(
        f"account {run.account}: {run.line}" if several else run.line for run in failed
    )
    return fail(line, stderr=stderr, exc=failed[0].error)


def report_each_account(
    names: Sequence[str],
    work: Callable[[str], dict[str, object]],
    *,
    stdout,
    stderr,
    several: bool,
    json: bool,
    line: Callable[[dict[str, object]], str],
    verbosity: int = 1,
) -> None:
    """The body of a per-account command whose work returns a report (``sync_orders``,
    ``activities``): ``work`` for each account (`for_each_account`), then one JSON object per
    account (a list when ``several``) or one ``line`` each, a failed account's object carrying
    its ``error``; an operator's error is raised after the output, a bug before it."""
    import json as jsonlib

    with operator_console(verbosity):
        runs = for_each_account(names, work)
    error = accounts_failed(runs, stderr=stderr, several=several)
    objects = [
        run.value if run.value is not None else {"account": run.account, "error": run.line}
        for run in runs
    ]
    if json:
        stdout.write(jsonlib.dumps(objects if several else objects[0]))
    else:
        for report in objects:
            stdout.write(line(report))
    if error is not None:
        raise error
