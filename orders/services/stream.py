"""The trade_updates consumer: order state as Alpaca pushes it (docs/design.md section 14).

Each event goes through the one service that applies broker order state
(:func:`~orders.services.broker_state.order_attempts_apply_broker_orders`, the one order sync
and reconciliation use), so the stream changes nothing the poll would not, only sooner. An
``execution_id`` is recorded once (:class:`~orders.models.OrderExecution`): a redelivered fill
changes nothing. On every (re)connect, once the stream listens, one bulk order sync catches up
with whatever happened while nobody listened; events arriving meanwhile wait in the socket.
Polling sync and reconciliation stay the safety net.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import DatabaseError, transaction

from audit.services import chain_heads_record_moved
from brokerops.alpaca import BrokerError, BrokerRejected
from brokerops.alpaca.errors import BrokerMalformedResponse
from brokerops.alpaca.stream import TradeUpdate, TradeUpdatesConnection
from brokerops.intent.store import SignalStore, SignalStoreError
from orders.client_order_id import parse_client_order_id
from orders.models import OrderAttempt, OrderExecution

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


def trade_update_apply(*, update: TradeUpdate, store: SignalStore, actor: str = ACTOR) -> str:
    """Apply one event; returns an :class:`Applied` value. Idempotent."""
    return trade_updates_apply(updates=[update], store=store, actor=actor)[0]


def trade_updates_apply(
    *, updates: Sequence[TradeUpdate], store: SignalStore, actor: str = ACTOR
) -> list[str]:
    """Apply events received together, in order; returns an :class:`Applied` value for each.

    One query finds their attempts, one their executions seen before; the executions and the
    attempts' changes commit in one transaction (a crash never leaves a fill recorded as seen
    but not applied), then the signals move in one batch (conditional on the status read, so a
    repeat is harmless). An attempt named by several events takes the last one's state: the
    events of one order arrive in order, and each carries the whole order.
    """
    prefix = settings.CLIENT_ORDER_ID_PREFIX
    outcomes: list[str] = [Applied.UNCHANGED] * len(updates)
    coids = {u.order.client_order_id for u in updates}
    attempts = {
        a.client_order_id: a for a in OrderAttempt.objects.filter(client_order_id__in=coids)
    }
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
            attempts[coid] = order_attempt_adopt(order=update.order, actor=actor, prefix=prefix)
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
) -> StreamStats:
    """Consume the stream until ``stop`` is set (SIGTERM); reconnect after any failure.

    Returns its counters. Refused keys (401) end it with :class:`BrokerRejected`: nothing works
    until they are fixed. ``on_event`` (tests, benchmarks) sees each event and its outcome.
    """
    backoff = backoff or Backoff(settings.STREAM_RECONNECT_MIN_S, settings.STREAM_RECONNECT_MAX_S)
    stats = stats or StreamStats()
    while not stop.is_set():
        connection = connect()
        try:
            connection.open()
            stats.connects += 1
            logger.info("trade_updates: listening at %s", connection.url)
            _catch_up(gateway=gateway, store=store, stats=stats)
            backoff.reset()
            _consume(
                connection, store=store, stop=stop, stats=stats, on_event=on_event, gateway=gateway
            )
        except BrokerRejected as exc:
            if exc.is_auth_error:
                raise
            _lost(stats, exc)
        except (BrokerError, SignalStoreError, DatabaseError) as exc:
            _lost(stats, exc)
        finally:
            connection.close()
        if not stop.is_set():
            stop.wait(backoff.next_s())
    return stats


def _lost(stats: StreamStats, exc: Exception) -> None:
    stats.disconnects += 1
    stats.last_error = f"{type(exc).__name__}: {exc}"
    logger.warning("trade_updates: %s; reconnecting", stats.last_error)


def _catch_up(*, gateway: AlpacaGateway, store: SignalStore, stats: StreamStats) -> None:
    """One bulk order sync: whatever happened while nobody listened."""
    started = time.perf_counter()
    result = order_attempts_sync(gateway=gateway, store=store, actor=f"{ACTOR} (catch-up)")
    stats.catch_ups += 1
    logger.info(
        "trade_updates: caught up in %.2fs: %s", time.perf_counter() - started, result.counts()
    )


def _consume(
    connection: TradeUpdatesConnection,
    *,
    store: SignalStore,
    stop: threading.Event,
    stats: StreamStats,
    on_event: Callable[[TradeUpdate, str], None] | None,
    gateway: AlpacaGateway,
) -> None:
    for batch in connection.batches(idle_s=0.5, max_size=BATCH_MAX):
        if stop.is_set():
            return
        updates = []
        for item in batch:
            if isinstance(item, BrokerMalformedResponse):
                # Skipped, never guessed at; what it said arrives with the catch-up.
                stats.malformed += 1
                logger.error("trade_updates: %s (catching up with a sync)", item)
            else:
                updates.append(item)
        failed = _apply(updates, store=store, stats=stats, on_event=on_event) if updates else 0
        if failed or len(updates) < len(batch):  # what those events said: from the broker
            _catch_up(gateway=gateway, store=store, stats=stats)


def _apply(
    updates: list[TradeUpdate],
    *,
    store: SignalStore,
    stats: StreamStats,
    on_event: Callable[[TradeUpdate, str], None] | None,
) -> int:
    """Apply a batch; when it fails, each of its events alone, so one bad event (a value the
    database refuses, a bug) never loses the others beside it. Returns how many failed alone:
    each is logged and counted, and the caller catches up with a sync (the broker's state of
    their orders). When every event fails on the database (it is down), the failure drops the
    connection: the catch-up on reconnect redoes them."""
    stats.events += len(updates)
    outcomes: list[str | None]
    errors: dict[int, Exception] = {}
    try:
        outcomes = list(trade_updates_apply(updates=updates, store=store))
    except SignalStoreError:
        raise  # the store is down: the connection drops and the catch-up redoes it
    except Exception as exc:
        outcomes = [None] * len(updates)
        if len(updates) == 1:
            errors[0] = exc
        else:
            for index, update in enumerate(updates):
                try:
                    outcomes[index] = trade_updates_apply(updates=[update], store=store)[0]
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
            "trade_updates: %s of order %s not applied (the poll covers it): %s: %s",
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
