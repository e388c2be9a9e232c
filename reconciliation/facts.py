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
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import connections, router

from brokerops.alpaca import Order, symbol_key
from brokerops.intent.schema import Signal, SignalStatus
from brokerops.intent.store import SignalStore
from orders import lifecycle
from orders.models import OrderAttempt
from orders.pairing import orders_read_after

from .diff import AttemptFact, DiffInput, InvalidSignalFact

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway, CallCount

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


def reconciliation_facts_read(
    *, gateway: AlpacaGateway, store: SignalStore, calls: CallCount, now: datetime
) -> RunFacts:
    """Read both sides in bulk (see the module docstring); raises on any failed read."""
    attempts = _open_attempts()
    after = orders_read_after(
        oldest_attempt_at=min((a.created_at for a in attempts), default=None),
        now=now,
        lookback=timedelta(hours=settings.RECONCILE_ORDER_LOOKBACK_HOURS),
    )
    with ThreadPoolExecutor(2, initializer=calls.include_current_thread) as pool:
        positions_read = pool.submit(gateway.list_positions)
        orders_read = pool.submit(gateway.list_order_summaries, status="all", after=after)
        read = store.read(statuses=RELEVANT_SIGNAL_STATUSES, include_unknown_status=True)
        positions, orders = positions_read.result(), orders_read.result()

    prefix = f"{settings.CLIENT_ORDER_ID_PREFIX}-"
    recorded = _recorded_client_order_ids(
        o.client_order_id for o in orders if o.client_order_id.startswith(prefix)
    )
    diff_input = DiffInput(
        # Compared as read: positions, order summaries and parsed signals have the fields the
        # diff reads (300,000 copies fewer, for the allocator and the garbage collector).
        positions=positions,
        orders=orders,
        signals=read.signals,
        invalid_signals=[InvalidSignalFact(i.id, tuple(i.reasons)) for i in read.invalid],
        attempts=attempts,
        # Closed attempts matter only to tell "ours" from "unknown": the diff gets their ids.
        recorded_client_order_ids=recorded,
        client_order_id_prefix=settings.CLIENT_ORDER_ID_PREFIX,
        now=now,
        grace=timedelta(seconds=settings.ORDER_GRACE_S),
        crypto_fee_tolerance_bps=Decimal(settings.CRYPTO_FEE_TOLERANCE_BPS),
    )
    return RunFacts(
        diff_input=diff_input,
        orders_by_client_id=orders.by_client_order_id(),
        signals_by_id={s.id: s for s in read.signals},
        positions_seen=len(positions),
        orders_seen=len(orders),
        signals_seen=len(read),
    )


def _open_attempts() -> list[AttemptFact]:
    rows = OrderAttempt.objects.filter(status__in=lifecycle.AT_BROKER).values_list(
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
    """Which of these client_order_ids we have attempts for (in batches of ids).

    Plain SQL on the indexed column: the ORM's ``__in`` look-up prepares each of 100,000 ids
    one by one and costs more than the queries themselves."""
    candidates = list(candidates)
    found: set[str] = set()
    table = OrderAttempt._meta.db_table
    column = OrderAttempt._meta.get_field("client_order_id").column
    connection = connections[router.db_for_read(OrderAttempt)]
    name, column = connection.ops.quote_name(table), connection.ops.quote_name(column)
    select = f"SELECT {column} FROM {name} WHERE {column} IN "  # noqa: S608 - model's names
    with connection.cursor() as cursor:
        for start in range(0, len(candidates), _ID_BATCH):
            batch = candidates[start : start + _ID_BATCH]
            cursor.execute(select + "(" + ", ".join(["%s"] * len(batch)) + ")", batch)
            found.update(row[0] for row in cursor.fetchall())
    return found
