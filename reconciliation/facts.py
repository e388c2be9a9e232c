"""Selectors: what one reconciliation run reads, turned into the diff engine's plain facts.

One bulk read of positions, one paginated bulk read of orders (open, and closed within the
look-back, reaching back to the oldest open attempt), one read of the relevant signals, our open
attempts, and which of the listed orders we recorded. The broker reads run beside the signal read
(the broker's wait overlaps ours). Any failure propagates: a failed or malformed read is never
taken for "no positions" or "no orders", and the run fails before anything is repaired.
"""

from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal

from django.conf import settings

from brokerops.alpaca import AlpacaGateway, CallCount, Order, symbol_key
from brokerops.intent.schema import Signal, SignalStatus
from brokerops.intent.store import SignalStore
from orders.models import OrderAttempt
from orders.pairing import orders_read_after

from .diff import (
    AttemptFact,
    DiffInput,
    InvalidSignalFact,
    OrderFact,
    PositionFact,
    SignalFact,
)

RELEVANT_SIGNAL_STATUSES = (SignalStatus.ACTIVE, SignalStatus.SUBMITTED)
# Attempts whose order the broker decides. CREATED and UNKNOWN ones belong to the order cycle,
# which resolves them by client_order_id before anything is (re)sent.
CHECKED_ATTEMPT_STATUSES = (OrderAttempt.Status.OPEN, OrderAttempt.Status.PARTIALLY_FILLED)
_ID_BATCH = 2000


@dataclass
class RunFacts:
    """Everything a run read: the diff's input, and what repairs need beside it."""

    diff_input: DiffInput
    orders_by_client_id: dict[str, Order]
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
        orders_read = pool.submit(gateway.list_orders, status="all", after=after)
        read = store.read(statuses=RELEVANT_SIGNAL_STATUSES, include_unknown_status=True)
        positions, orders = positions_read.result(), orders_read.result()

    prefix = f"{settings.CLIENT_ORDER_ID_PREFIX}-"
    recorded = _recorded_client_order_ids(
        o.client_order_id for o in orders if o.client_order_id.startswith(prefix)
    )
    # Closed attempts matter only to tell "ours" from "unknown": give the diff their ids.
    open_ids = {a.client_order_id for a in attempts}
    attempts += [
        AttemptFact(
            client_order_id=coid, symbol_key="", status="closed", broker_status="", created_at=now
        )
        for coid in recorded - open_ids
    ]
    diff_input = DiffInput(
        positions=[
            PositionFact(p.symbol_key, p.qty, crypto=p.asset_class == "crypto") for p in positions
        ],
        orders=[
            OrderFact(
                id=o.id,
                client_order_id=o.client_order_id,
                symbol_key=o.symbol_key,
                status=o.status,
                side=o.side,
                qty=o.qty,
                filled_qty=o.filled_qty,
            )
            for o in orders
        ],
        signals=[
            SignalFact(
                id=s.id,
                symbol_key=s.symbol_key,
                status=str(s.status),
                signed_qty=s.signed_qty,
                side=str(s.side),
                client_order_id=s.client_order_id,
            )
            for s in read.signals
        ],
        invalid_signals=[InvalidSignalFact(i.id, tuple(i.reasons)) for i in read.invalid],
        attempts=attempts,
        client_order_id_prefix=settings.CLIENT_ORDER_ID_PREFIX,
        now=now,
        grace=timedelta(seconds=settings.ORDER_GRACE_S),
        crypto_fee_tolerance_bps=Decimal(settings.CRYPTO_FEE_TOLERANCE_BPS),
    )
    return RunFacts(
        diff_input=diff_input,
        orders_by_client_id={o.client_order_id: o for o in orders},
        signals_by_id={s.id: s for s in read.signals},
        positions_seen=len(positions),
        orders_seen=len(orders),
        signals_seen=len(read),
    )


def _open_attempts() -> list[AttemptFact]:
    rows = OrderAttempt.objects.filter(status__in=CHECKED_ATTEMPT_STATUSES).values_list(
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
    """Which of these client_order_ids we have attempts for (in batches of ids)."""
    candidates = list(candidates)
    found: set[str] = set()
    for start in range(0, len(candidates), _ID_BATCH):
        found.update(
            OrderAttempt.objects.filter(
                client_order_id__in=candidates[start : start + _ID_BATCH]
            ).values_list("client_order_id", flat=True)
        )
    return found
