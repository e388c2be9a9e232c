"""Selectors: what one reconciliation run reads, turned into the diff engine's plain facts.

One bulk read of positions, one paginated bulk read of orders (open, and closed within the
look-back, reaching back to the oldest open attempt), one read of the relevant signals, our open
attempts, and which of the listed orders we recorded. The broker reads run beside the signal read
(the broker's wait overlaps ours). Any failure propagates: a failed or malformed read is never
taken for "no positions" or "no orders", and the run fails before anything is repaired.

At 100,000 positions and 200,000 orders the reads are what a run costs, so what was read goes to
the diff as it is (positions, order summaries, parsed signals: no copy per item), orders are held
as summaries (each whole order, ``raw`` included, is parsed again only when a repair asks for
it), and closed attempts are passed as a set of ids.

A run is one account's (docs/design.md section 16): its broker (the gateway it is handed), its
attempts, its client_order_id prefix, and the signals of its :class:`AccountScope` (the store's
``read_for``). A signal whose order another account sent (its ``account`` changed afterwards) is
a move, not intent to compare (:class:`MovedSignalFact`, flagged, never repaired; the order stays
with the account that sent it): the run of the account the signal now names finds it among its
signals (one indexed query), and while the order is open the sender's run finds it too (the
signals of its open attempts that its read did not return are looked up, usually none).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Mapping
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connections, router

from brokerops.alpaca import Order, symbol_key
from brokerops.intent.schema import Signal, SignalStatus, audit_signal_id
from brokerops.intent.store import AccountScope, SignalRead, SignalStore
from orders import lifecycle
from orders.models import OrderAttempt
from orders.pairing import orders_read_after

from . import incremental
from .diff import AttemptFact, DiffInput, InvalidSignalFact, MovedSignalFact
from .models import OrdersReadBase

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway, CallCount
    from brokerops.alpaca.listing import OrderSummaries

logger = logging.getLogger(__name__)

RELEVANT_SIGNAL_STATUSES = (SignalStatus.ACTIVE, SignalStatus.SUBMITTED)
_ID_BATCH = 2000


@dataclass
class RunFacts:
    """Everything a run read: the diff's input, and what repairs need beside it."""

    diff_input: DiffInput
    orders_by_client_id: Mapping[str, Order]  # each whole order parsed when first looked up
    signals_by_id: dict[str, Signal]  # as read (with their versions): decisions hold for these
    positions_seen: int
    orders_seen: int
    signals_seen: int
    orders_read: incremental.OrdersRead  # which read (full or incremental), and why
    next_base: incremental.BaseUpdate  # what the next run reads from, when this one succeeds


def reconciliation_facts_read(
    *,
    gateway: AlpacaGateway,
    store: SignalStore,
    calls: CallCount,
    now: datetime,
    scope: AccountScope,
    full: bool = False,
) -> RunFacts:
    """Read both sides of ``scope``'s account in bulk (see the module docstring); raises on any
    failed read. The orders are read in full (``full``, or when the incremental read cannot be
    trusted) or incrementally (:mod:`reconciliation.incremental`)."""
    account = scope.name
    prefix = scope.accounts.get(account).client_order_id_prefix
    attempts = _open_attempts(account)
    after = orders_read_after(
        oldest_attempt_at=min((a.created_at for a in attempts), default=None),
        now=now,
        lookback=timedelta(hours=settings.RECONCILE_ORDER_LOOKBACK_HOURS),
    )
    base = incremental.read_base(account)
    reason = incremental.full_reason(base=base, requested=full, now=now, after=after)
    fills: list[str] = []
    unsynced = incremental.sync_activities(account=account, gateway=gateway)
    if not reason:
        assert base is not None
        try:
            if unsynced:
                raise incremental.Fallback(unsynced)
            fills = incremental.fills_since(account=account, base=base)
        except incremental.Fallback as exc:
            reason = str(exc)
    activity_pk = incremental.last_activity_pk(account)
    with ThreadPoolExecutor(3, initializer=calls.include_current_thread) as pool:
        positions_read = pool.submit(gateway.list_positions)
        changed = None
        if not reason:
            assert base is not None
            changed = incremental.read_changed(gateway=gateway, base=base, submit=pool.submit)
            full_read = None
        else:
            full_read = pool.submit(gateway.list_order_summaries, status="all", after=after)
        read = store.read_for(scope, statuses=RELEVANT_SIGNAL_STATUSES, include_unknown_status=True)
        positions = positions_read.result()
    if changed is not None:
        assert base is not None
        try:
            orders_read, open_orders = _read_incrementally(
                gateway, base, changed, after=after, attempts=attempts, fills=fills
            )
        except incremental.Fallback as exc:
            reason = str(exc)
    if reason:
        logger.info("account %r: orders read in full: %s", account, reason)
        orders = full_read.result() if full_read is not None else _full(gateway, after)
        orders_read = incremental.OrdersRead(orders, incremental.FULL, reason)
        open_orders = orders
    orders = orders_read.orders

    # The orders of our prefix (by index), found in one pass over the 200,000.
    mine = f"{prefix}-"
    ours = [
        (i, o.client_order_id) for i, o in enumerate(orders) if o.client_order_id.startswith(mine)
    ]
    recorded = _recorded_client_order_ids(client_order_id for _, client_order_id in ours)
    moved = _moved_here(read.signals, account, several_accounts=len(scope.accounts) > 1)
    moved += _moved_away(attempts, read, store, scope)
    arrived = {fact.signal_id for fact in moved if fact.named == account}
    signals = [s for s in read.signals if s.id not in arrived] if arrived else read.signals
    diff_input = DiffInput(
        # Compared as read: positions, order summaries and parsed signals have the fields the
        # diff reads (300,000 copies fewer, for the allocator and the garbage collector).
        positions=positions,
        orders=orders,
        signals=signals,
        invalid_signals=[InvalidSignalFact(i.id, tuple(i.reasons)) for i in read.invalid],
        attempts=attempts,
        # Closed attempts matter only to tell "ours" from "unknown": the diff gets their ids.
        recorded_client_order_ids=recorded,
        client_order_id_prefix=prefix,
        moved_signals=moved,
        now=now,
        grace=timedelta(seconds=settings.ORDER_GRACE_S),
        crypto_fee_tolerance_bps=Decimal(settings.CRYPTO_FEE_TOLERANCE_BPS),
    )
    unknown = [i for i, client_order_id in ours if client_order_id not in recorded]
    next_base = incremental.BaseUpdate(
        read_at=now,
        full_read_at=now if orders_read.mode == incremental.FULL else base.full_read_at,
        after=after,
        activity_pk=activity_pk,
        orders=incremental.base_orders(
            open_orders=open_orders,
            not_final_only=orders_read.mode == incremental.FULL,
            orders=orders,
            unknown=unknown,
        ),
    )
    return RunFacts(
        diff_input=diff_input,
        orders_by_client_id=orders.by_client_order_id(),
        signals_by_id={s.id: s for s in signals},
        positions_seen=len(positions),
        orders_seen=len(orders),
        signals_seen=len(read),
        orders_read=orders_read,
        next_base=next_base,
    )


def _full(gateway: AlpacaGateway, after: datetime) -> OrderSummaries:
    return gateway.list_order_summaries(status="all", after=after)


def _read_incrementally(
    gateway: AlpacaGateway,
    base: OrdersReadBase,
    changed: tuple[Future[OrderSummaries], Future[OrderSummaries]],
    *,
    after: datetime,
    attempts: list[AttemptFact],
    fills: list[str],
) -> tuple[incremental.OrdersRead, OrderSummaries]:
    """The incremental read, checked (raises :class:`incremental.Fallback`); and the open
    orders (the next run's base)."""
    open_orders, closed = changed[0].result(), changed[1].result()
    read_ids = {o.id for o in open_orders} | {o.id for o in closed}
    left, wanted, outside = incremental.read_left(
        gateway=gateway, base=base, read=read_ids, after=after
    )
    reads = [open_orders, closed]
    if left is not None:
        reads.append(left)
        read_ids |= {o.id for o in left}
    reads.append(incremental.carried(base))  # after the reads: an order read now is as read
    orders = incremental.merge(reads, after=after)
    incremental.check_covered(
        orders=orders,
        read_ids=read_ids | outside,
        attempt_client_ids=[a.client_order_id for a in attempts],
        fills=fills,
    )
    counts = {
        "open": len(open_orders),
        "closed_since": len(closed),
        "left_open_list": len(wanted),
        "fills_checked": len(set(fills)),
    }
    read = incremental.OrdersRead(orders, incremental.INCREMENTAL, "", counts)
    return read, open_orders


def _open_attempts(account: str) -> list[AttemptFact]:
    rows = OrderAttempt.objects.filter(account=account, status__in=lifecycle.AT_BROKER).values_list(
        "client_order_id",
        "symbol",
        "status",
        "broker_status",
        "created_at",
        "alpaca_order_id",
        "signal_id",
    )
    return [
        AttemptFact(
            client_order_id=coid,
            symbol_key=symbol_key(symbol),
            status=status,
            broker_status=broker_status,
            created_at=created_at,
            alpaca_order_id=alpaca_order_id,
            signal_id=signal_id,
        )
        for coid, symbol, status, broker_status, created_at, alpaca_order_id, signal_id in rows
    ]


def _recorded_client_order_ids(candidates: Iterable[str]) -> set[str]:
    """Which of these client_order_ids we have attempts for.

    Plain SQL on the indexed column: the ORM's ``__in`` look-up prepares each of 100,000 ids
    one by one and costs more than the queries themselves. On PostgreSQL the ids go as one
    array (``= ANY``): 100,000 of them in 0.25 s, where 50 statements of 2,000 parameters each
    took 1.2 s (each parameter parsed and planned); elsewhere in batches of parameters."""
    candidates = list(candidates)
    found: set[str] = set()
    if not candidates:
        return found
    table = OrderAttempt._meta.db_table
    column = OrderAttempt._meta.get_field("client_order_id").column
    connection = connections[router.db_for_read(OrderAttempt)]
    name, column = connection.ops.quote_name(table), connection.ops.quote_name(column)
    select = f"SELECT {column} FROM {name} WHERE {column} "  # noqa: S608 - model's names
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(select + "= ANY(%s)", [candidates])
            return {row[0] for row in cursor.fetchall()}
        for start in range(0, len(candidates), _ID_BATCH):
            batch = candidates[start : start + _ID_BATCH]
            cursor.execute(select + "IN (" + ", ".join(["%s"] * len(batch)) + ")", batch)
            found.update(row[0] for row in cursor.fetchall())
    return found


# --- Signals moved between accounts after their order was sent (docs/design.md section 16) ----


def _moved_away(
    attempts: list[AttemptFact], read: SignalRead, store: SignalStore, scope: AccountScope
) -> list[MovedSignalFact]:
    """This account's open attempts whose signal now belongs to another configured account: of
    the signals its read did not return (usually none: an open order's signal is SUBMITTED
    here), each is looked up once."""
    if len(scope.accounts) < 2:
        return []
    seen = {audit_signal_id(item.id) for item in (*read.signals, *read.invalid)}
    missing = {a.client_order_id: a for a in attempts if a.signal_id and a.signal_id not in seen}
    if not missing:
        return []
    rows = OrderAttempt.objects.filter(client_order_id__in=list(missing))
    ids = {
        a.client_order_id: a.store_signal_id
        for a in rows.only("client_order_id", "signal_id", "signal_ref")
    }
    documents = store.get_many(list(dict.fromkeys(ids.values())))
    moved = []
    for client_order_id, signal_id in ids.items():
        document = documents.get(signal_id)
        owner = scope.owner(document) if document is not None else None
        if owner is not None and owner != scope.name:
            moved.append(
                MovedSignalFact(
                    signal_id=signal_id,
                    symbol_key=missing[client_order_id].symbol_key,
                    client_order_id=client_order_id,
                    sent_by=scope.name,
                    named=owner,
                )
            )
    return moved


def _moved_here(
    signals: list[Signal], account: str, *, several_accounts: bool
) -> list[MovedSignalFact]:
    """This account's signals whose order another account sent (one query per batch of ids,
    on the indexed column; none in a deployment of one account)."""
    if not several_accounts or not signals:
        return []
    by_audit_id = {audit_signal_id(s.id): s for s in signals}
    ids = list(by_audit_id)
    moved = []
    for start in range(0, len(ids), _ID_BATCH):
        rows = (
            OrderAttempt.objects.filter(signal_id__in=ids[start : start + _ID_BATCH])
            .exclude(account=account)
            .order_by("signal_id", "leg")
            .values_list("signal_id", "account", "client_order_id")
        )
        for signal_id, sent_by, client_order_id in rows:
            signal = by_audit_id[signal_id]
            moved.append(
                MovedSignalFact(
                    signal_id=signal.id,
                    symbol_key=signal.symbol_key,
                    client_order_id=client_order_id,
                    sent_by=sent_by,
                    named=account,
                )
            )
    return moved
