"""The trade_updates consumer: order state as Alpaca pushes it (docs/design.md section 14).

Each event goes through the one service that applies broker order state
(:func:`~orders.services.broker_state.order_attempts_apply_broker_orders`, the one order sync
and reconciliation use), so the stream changes nothing the poll would not, only sooner. An
``execution_id`` is recorded once (:class:`~orders.models.OrderExecution`): a redelivered fill
changes nothing. On every (re)connect, once the stream listens, one bulk order sync catches up
with whatever happened while nobody listened; events arriving meanwhile wait in the socket.
Polling sync and reconciliation stay the safety net.

One process serves every account (docs/design.md section 16, `trade_updates_serve`): one
connection per account, on a thread of its own, its events applied to that account's attempts
only (matched by client_order_id within the account, adopted only under the account's prefix).
An account whose stream fails (its broker down, its keys refused) keeps reconnecting on its own
thread; the others never wait for it.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, connections, transaction

from audit.services import chain_heads_record_moved
from brokerops.accounts import AccountConfig
from brokerops.alpaca import BrokerError, BrokerRejected, broker_gateway
from brokerops.alpaca.errors import BrokerMalformedResponse
from brokerops.alpaca.stream import (
    TradeUpdate,
    TradeUpdatesConnection,
    trade_updates_connection_from_settings,
)
from brokerops.intent.store import SignalStore, SignalStoreError
from orders.client_order_id import parse_client_order_id
from orders.models import OrderAttempt, OrderExecution

from .accounts import account_config, account_names
from .broker_state import (
    order_attempt_adopt,
    order_attempts_apply_broker_orders,
    signals_follow_attempts,
)
from .events import order_executions_append
from .sync import order_attempts_sync

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway

logger = logging.getLogger(__name__)
ACTOR = "trade_updates stream"
# Events already waiting when one arrives are applied with it, up to this many: at 200 fills/s
# one transaction per event would fall behind.
BATCH_MAX = 200


class Applied:
    """What became of one event (``StreamStats.outcomes`` counts them)."""

    CHANGED = "changed"  # the attempt took the order's new state
    UNCHANGED = "unchanged"  # it had it already (the poll was first, or a repeat)
    DUPLICATE = "duplicate"  # an execution_id seen before
    ADOPTED = "adopted"  # our prefix, never recorded: adopted into the trail
    NOT_OURS = "not_ours"  # another system's order on the account


def trade_update_apply(
    *, update: TradeUpdate, store: SignalStore, actor: str = ACTOR, account: str | None = None
) -> str:
    """Apply one event of ``account``'s stream; returns an :class:`Applied` value. Idempotent."""
    return trade_updates_apply(updates=[update], store=store, actor=actor, account=account)[0]


def trade_updates_apply(
    *,
    updates: Sequence[TradeUpdate],
    store: SignalStore,
    actor: str = ACTOR,
    account: str | None = None,
) -> list[str]:
    """Apply events received together on the stream of ``account`` (the default account for
    None), in order; returns an :class:`Applied` value for each. An event names an order of
    that account: it is matched with that account's attempts only, and adopted only under that
    account's prefix (another prefix is not ours there).

    One query finds their attempts, one their executions seen before; the executions and the
    attempts' changes commit in one transaction (a crash never leaves a fill recorded as seen
    but not applied), then the signals move in one batch (conditional on the status read, so a
    repeat is harmless). An attempt named by several events takes the last one's state: the
    events of one order arrive in order, and each carries the whole order.
    """
    # Over ~60 lines by its docstring and the per-event decisions, kept together.
    config = account_config(account)
    prefix = config.client_order_id_prefix
    outcomes: list[str] = [Applied.UNCHANGED] * len(updates)
    coids = {u.order.client_order_id for u in updates}
    mine = OrderAttempt.objects.filter(account=config.name, client_order_id__in=coids)
    attempts = {a.client_order_id: a for a in mine}
    ids = [u.execution_id for u in updates if u.execution_id]
    seen = set(
        OrderExecution.objects.filter(execution_id__in=ids).values_list("execution_id", flat=True)
    )
    latest: dict[str, int] = {}
    executions: list[OrderExecution] = []
    for index, update in enumerate(updates):
        coid = update.order.client_order_id
        attempt = attempts.get(coid)
        if attempt is None:
            if parse_client_order_id(coid, prefix=prefix) is None:
                outcomes[index] = Applied.NOT_OURS
                continue
            attempts[coid] = order_attempt_adopt(
                order=update.order, actor=actor, prefix=prefix, account=config.name
            )
            outcomes[index] = Applied.ADOPTED
            continue
        if update.execution_id:
            if update.execution_id in seen:
                outcomes[index] = Applied.DUPLICATE
                continue
            seen.add(update.execution_id)
            executions.append(_execution(update, attempt))
        latest[coid] = index
    pairs = [(attempts[coid], updates[index].order) for coid, index in latest.items()]
    with transaction.atomic():
        changes = order_attempts_apply_broker_orders(
            pairs=pairs, store=store, actor=actor, move_signals=False
        )
        # Last, after the events' chain: every writer takes the two chains' locks in this order.
        order_executions_append(executions)
    changed = {change.client_order_id for change in changes}
    for coid, index in latest.items():
        if coid in changed:
            outcomes[index] = Applied.CHANGED
    if changed:
        signals_follow_attempts(
            [attempts[coid] for coid in latest if coid in changed], store=store, actor=actor
        )
    chain_heads_record_moved(recorded_by=actor)
    return outcomes


def _execution(update: TradeUpdate, attempt: OrderAttempt) -> OrderExecution:
    return OrderExecution(
        execution_id=update.execution_id,
        attempt=attempt,
        event=update.event,
        qty=update.qty,
        price=update.price,
        position_qty=update.position_qty,
        executed_at=update.timestamp,
    )


@dataclass
class StreamStats:
    connects: int = 0
    disconnects: int = 0
    catch_ups: int = 0
    events: int = 0
    malformed: int = 0
    failed: int = 0
    outcomes: Counter = field(default_factory=Counter)
    last_error: str = ""


@dataclass
class Backoff:
    """Waits before reconnecting: doubling from ``first_s`` up to ``max_s``, each jittered to
    between half and all of it, so a fleet of consumers does not reconnect in step."""

    first_s: float
    max_s: float
    failures: int = 0
    rng: random.Random = field(default_factory=random.Random)

    def next_s(self) -> float:
        ceiling = min(self.max_s, self.first_s * 2**self.failures)
        self.failures += 1
        return ceiling * self.rng.uniform(0.5, 1.0)

    def reset(self) -> None:
        self.failures = 0


def trade_updates_consume(
    *,
    connect: Callable[[], TradeUpdatesConnection],
    gateway: AlpacaGateway,
    store: SignalStore,
    stop: threading.Event,
    backoff: Backoff | None = None,
    on_event: Callable[[TradeUpdate, str], None] | None = None,
    stats: StreamStats | None = None,
    account: str | None = None,
    refused_keys_fatal: bool = True,
) -> StreamStats:
    """Consume the stream of ``account`` (the default account for None; ``connect`` and
    ``gateway`` are that account's) until ``stop`` is set (SIGTERM); reconnect after any
    failure.

    Returns its counters. Refused keys (401) end it with :class:`BrokerRejected`: nothing works
    until they are fixed; with ``refused_keys_fatal`` False (one account among several) they
    are a failure like another, retried after the backoff. ``on_event`` (tests, benchmarks)
    sees each event and its outcome.
    """
    backoff = backoff or Backoff(settings.STREAM_RECONNECT_MIN_S, settings.STREAM_RECONNECT_MAX_S)
    stats = stats or StreamStats()
    feed = _Feed(account=account, gateway=gateway, store=store, stats=stats, on_event=on_event)
    while not stop.is_set():
        connection = connect()
        try:
            connection.open()
            stats.connects += 1
            logger.info("trade_updates: %slistening at %s", feed.whose, connection.url)
            _catch_up(feed)
            backoff.reset()
            _consume(connection, feed, stop=stop)
        except BrokerRejected as exc:
            if exc.is_auth_error and refused_keys_fatal:
                raise
            _lost(feed, exc)
        except (BrokerError, SignalStoreError, DatabaseError) as exc:
            _lost(feed, exc)
        finally:
            connection.close()
        if not stop.is_set():
            stop.wait(backoff.next_s())
    return stats


@dataclass
class _Feed:
    """One account's stream: what its events are applied with, and its counters."""

    account: str | None
    gateway: AlpacaGateway
    store: SignalStore
    stats: StreamStats
    on_event: Callable[[TradeUpdate, str], None] | None

    @property
    def whose(self) -> str:
        """The log's ``account NAME: `` (nothing for the default account's only stream)."""
        return f"account {self.account}: " if self.account else ""


def _lost(feed: _Feed, exc: Exception) -> None:
    feed.stats.disconnects += 1
    feed.stats.last_error = f"{type(exc).__name__}: {exc}"
    logger.warning("trade_updates: %s%s; reconnecting", feed.whose, feed.stats.last_error)


def _catch_up(feed: _Feed) -> None:
    """One bulk order sync of the account: whatever happened while nobody listened."""
    started = time.perf_counter()
    result = order_attempts_sync(
        account=feed.account,
        gateway=feed.gateway,
        store=feed.store,
        actor=f"{ACTOR} (catch-up)",
    )
    feed.stats.catch_ups += 1
    logger.info(
        "trade_updates: %scaught up in %.2fs: %s",
        feed.whose,
        time.perf_counter() - started,
        result.counts(),
    )


def _consume(connection: TradeUpdatesConnection, feed: _Feed, *, stop: threading.Event) -> None:
    for batch in connection.batches(idle_s=0.5, max_size=BATCH_MAX):
        if stop.is_set():
            return
        updates = []
        for item in batch:
            if isinstance(item, BrokerMalformedResponse):
                # Skipped, never guessed at; what it said arrives with the catch-up.
                feed.stats.malformed += 1
                logger.error("trade_updates: %s%s (catching up with a sync)", feed.whose, item)
            else:
                updates.append(item)
        failed = 0
        if updates:
            failed = _apply(
                updates,
                store=feed.store,
                stats=feed.stats,
                on_event=feed.on_event,
                account=feed.account,
            )
        if failed or len(updates) < len(batch):  # what those events said: from the broker
            _catch_up(feed)


def _apply(
    updates: list[TradeUpdate],
    *,
    store: SignalStore,
    stats: StreamStats,
    on_event: Callable[[TradeUpdate, str], None] | None,
    account: str | None = None,
) -> int:
    """Apply a batch; when it fails, each of its events alone, so one bad event (a value the
    database refuses, a bug) never loses the others beside it. Returns how many failed alone:
    each is logged and counted, and the caller catches up with a sync (the broker's state of
    their orders). When every event fails on the database (it is down), the failure drops the
    connection: the catch-up on reconnect redoes them."""
    apply = partial(trade_updates_apply, store=store, account=account)
    whose = f"account {account}: " if account else ""
    stats.events += len(updates)
    outcomes: list[str | None]
    errors: dict[int, Exception] = {}
    try:
        outcomes = list(apply(updates=updates))
    except SignalStoreError:
        raise  # the store is down: the connection drops and the catch-up redoes it
    except Exception as exc:
        outcomes = [None] * len(updates)
        if len(updates) == 1:
            errors[0] = exc
        else:
            for index, update in enumerate(updates):
                try:
                    outcomes[index] = apply(updates=[update])[0]
                except SignalStoreError:
                    raise
                except Exception as one:  # noqa: BLE001 - this event only: recorded below
                    errors[index] = one
        if len(errors) == len(updates) and all(
            isinstance(error, DatabaseError) for error in errors.values()
        ):
            raise exc from None
    for index, error in errors.items():
        stats.failed += 1
        logger.error(
            "trade_updates: %s%s of order %s not applied (the poll covers it): %s: %s",
            whose,
            updates[index].event,
            updates[index].order.client_order_id,
            type(error).__name__,
            error,
            exc_info=not isinstance(error, DatabaseError),
        )
    for update, outcome in zip(updates, outcomes, strict=True):
        if outcome is None:
            continue
        stats.outcomes[outcome] += 1
        if on_event is not None:
            on_event(update, outcome)
    return len(errors)


def trade_updates_serve(
    *,
    store: SignalStore,
    stop: threading.Event,
    accounts: Sequence[str] | None = None,
    connect_for: Callable[[AccountConfig], TradeUpdatesConnection] | None = None,
    gateway_for: Callable[[str], AlpacaGateway] | None = None,
    backoff_for: Callable[[], Backoff] | None = None,
    on_event: Callable[[str, TradeUpdate, str], None] | None = None,
    stats: dict[str, StreamStats] | None = None,
) -> dict[str, StreamStats]:
    """Consume the stream of every account (``accounts``: their names, default every configured
    one) until ``stop`` is set: one connection per account (``connect_for``, default
    `trade_updates_connection_from_settings`), its events applied to that account's attempts,
    its catch-ups through its gateway (``gateway_for``, default `broker_gateway`). Returns each
    account's counters (``stats``, when given, is filled as the consumers go); ``on_event``
    sees the account, each event and its outcome.

    One account alone is consumed on the caller's thread, as ever: its refused keys (401) end
    it with :class:`BrokerRejected`. Several are consumed on a thread each (docs/design.md
    section 16): an account whose broker is down or whose keys are refused keeps reconnecting
    with its own backoff (keys may be restored), and a bug in one account's consumer is logged
    and that consumer started again after its backoff: the others never wait for it.
    """
    configured = [account_config(name) for name in (accounts or account_names())]
    connect_for = connect_for or trade_updates_connection_from_settings
    gateway_for = gateway_for or broker_gateway
    stats = stats if stats is not None else {}
    stats.update({config.name: StreamStats() for config in configured})

    def consume(config: AccountConfig, *, alone: bool) -> None:
        backoff = backoff_for() if backoff_for is not None else None
        trade_updates_consume(
            connect=partial(connect_for, config),
            gateway=gateway_for(config.name),
            store=store,
            stop=stop,
            backoff=backoff,
            on_event=partial(on_event, config.name) if on_event is not None else None,
            stats=stats[config.name],
            account=config.name,
            refused_keys_fatal=alone,
        )

    if len(configured) == 1:
        consume(configured[0], alone=True)
        return stats
    threads = [
        threading.Thread(
            target=_serve_one,
            args=(config.name, partial(consume, config, alone=False), stop, stats[config.name]),
            name=f"trade-updates-{config.name}",
            daemon=True,
        )
        for config in configured
    ]
    _run_all(threads)
    return stats


def _run_all(threads: list[threading.Thread]) -> None:
    for thread in threads:
        thread.start()
    for thread in threads:
        while thread.is_alive():  # in steps: the main thread stays free for SIGTERM's handler
            thread.join(0.5)


def _serve_one(
    account: str, consume: Callable[[], None], stop: threading.Event, stats: StreamStats
) -> None:
    """One account's consumer thread among several: consumes until ``stop``; a bug is logged
    and the consumer starts again (after the longest backoff: it may fail again at once)."""
    try:
        while not stop.is_set():
            try:
                consume()
            except Exception as exc:  # a bug in this account's consumer: logged, started again
                stats.last_error = f"{type(exc).__name__}: {exc}"
                logger.exception("trade_updates: account %s: consumer failed", account)
                stop.wait(settings.STREAM_RECONNECT_MAX_S)
    finally:
        connections.close_all()  # this thread's own database connections
