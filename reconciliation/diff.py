"""The diff engine: broker facts and intent in, typed mismatches out.

Pure functions over plain data (no I/O, no Django), so every rule is unit-tested on its own. The
service (:mod:`reconciliation.services`) gathers the facts, confirms the findings that need a
targeted look-up, and applies the repairs.

Rules (DESIGN.md section 4): Alpaca is the truth for holdings, the signal store for intent.
Quantities of several ACTIVE signals on one symbol add up (sells negative). A symbol with an order
in flight may show a position that lags the fill, so a disagreement there is reported as such,
never as an orphan.
"""

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum

from orders.broker_status import attempt_status_for
from orders.pairing import pair_attempts_with_orders


class ReconciliationErrors(StrEnum):
    """Mismatch kinds; the value is what logs, the database and the JSON output say."""

    ORPHAN_POSITION = "ORPHAN_POSITION"
    UNTRACKED_POSITION = "UNTRACKED_POSITION"
    QTY_MISMATCH = "QTY_MISMATCH"
    SIDE_MISMATCH = "SIDE_MISMATCH"
    ORDER_NOT_FOUND = "ORDER_NOT_FOUND"
    ORDER_STATUS_DRIFT = "ORDER_STATUS_DRIFT"
    UNKNOWN_ORDER = "UNKNOWN_ORDER"
    INVALID_SIGNAL = "INVALID_SIGNAL"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class PositionFact:
    symbol_key: str
    qty: Decimal  # signed: negative for a short
    crypto: bool = False  # Alpaca takes a crypto buy's fee in the coin received


@dataclass(frozen=True)
class OrderFact:
    id: str
    client_order_id: str
    symbol_key: str
    status: str  # Alpaca's status, verbatim
    side: str = ""
    qty: Decimal | None = None
    filled_qty: Decimal | None = None


@dataclass(frozen=True)
class SignalFact:
    id: str
    symbol_key: str
    status: str
    signed_qty: Decimal | None  # None for a notional signal: only presence and side can be checked
    side: str = "buy"
    client_order_id: str | None = None


@dataclass(frozen=True)
class InvalidSignalFact:
    id: str
    reasons: tuple[str, ...]


@dataclass(frozen=True)
class AttemptFact:
    client_order_id: str
    symbol_key: str
    status: str  # OrderAttempt.Status value
    broker_status: str
    created_at: datetime
    alpaca_order_id: str = ""
    signal_id: str = ""


@dataclass(frozen=True)
class Finding:
    """One mismatch. ``needs_confirmation`` asks the service for a targeted look-up first."""

    kind: ReconciliationErrors
    severity: Severity
    symbol: str = ""
    signal_id: str = ""
    client_order_id: str = ""
    alpaca_order_id: str = ""
    expected_qty: Decimal | None = None
    actual_qty: Decimal | None = None
    detail: str = ""
    broker_status: str = ""
    needs_confirmation: bool = False


@dataclass(frozen=True)
class DiffInput:
    positions: Sequence[PositionFact]
    orders: Sequence[OrderFact]
    signals: Sequence[SignalFact]
    invalid_signals: Sequence[InvalidSignalFact] = ()
    attempts: Sequence[AttemptFact] = ()
    client_order_id_prefix: str = "bo"
    now: datetime | None = None
    grace: timedelta = timedelta(seconds=30)
    open_attempt_statuses: frozenset[str] = field(
        default_factory=lambda: frozenset({"open", "partially_filled"})
    )
    # A crypto holding short of the expected quantity by at most this many basis points of it
    # is the buy's fee, not a mismatch (DESIGN 4, CRYPTO_FEE_TOLERANCE_BPS).
    crypto_fee_tolerance_bps: Decimal = Decimal(0)


ACTIVE = "ACTIVE"
# A SUBMITTED signal has an order at the broker whose fill may not show in positions yet.
IN_FLIGHT_SIGNAL_STATUSES = frozenset({"SUBMITTED"})
OPEN_BROKER_STATUSES_TERMINAL = frozenset({"filled", "canceled", "expired", "rejected", "replaced"})


def diff(data: DiffInput) -> list[Finding]:
    """Every mismatch between the broker's facts and the intent, in a stable order."""
    in_flight = _symbols_with_orders_in_flight(data)
    findings: list[Finding] = []
    findings += position_findings(
        data.positions, data.signals, in_flight, fee_tolerance_bps=data.crypto_fee_tolerance_bps
    )
    findings += order_findings(data)
    findings += [
        Finding(
            kind=ReconciliationErrors.INVALID_SIGNAL,
            severity=Severity.WARNING,
            signal_id=invalid.id,
            detail="; ".join(invalid.reasons),
        )
        for invalid in data.invalid_signals
    ]
    return findings


def position_findings(
    positions: Iterable[PositionFact],
    signals: Iterable[SignalFact],
    in_flight: frozenset[str] = frozenset(),
    *,
    fee_tolerance_bps: Decimal = Decimal(0),
) -> list[Finding]:
    """Holdings against ACTIVE intent, per symbol."""
    held: dict[str, Decimal] = defaultdict(Decimal)
    crypto: set[str] = set()
    for position in positions:
        held[position.symbol_key] += position.qty
        if position.crypto:
            crypto.add(position.symbol_key)
    active: dict[str, list[SignalFact]] = defaultdict(list)
    for signal in signals:
        if signal.status == ACTIVE:
            active[signal.symbol_key].append(signal)

    findings: list[Finding] = []
    for symbol in sorted(active.keys() | {s for s, q in held.items() if q != 0}):
        expecting = active.get(symbol, [])
        actual = held.get(symbol, Decimal(0))
        tolerance = fee_tolerance_bps if symbol in crypto else Decimal(0)
        findings += _symbol_findings(symbol, expecting, actual, symbol in in_flight, tolerance)
    return findings


def _within_fee(expected: Decimal, actual: Decimal, tolerance_bps: Decimal) -> bool:
    """A long crypto holding short of a buy's quantity by at most the fee tolerance."""
    if not tolerance_bps or expected <= 0 or not 0 < actual <= expected:
        return False
    return expected - actual <= expected * tolerance_bps / 10_000


def _symbol_findings(
    symbol: str,
    expecting: list[SignalFact],
    actual: Decimal,
    order_in_flight: bool,
    fee_tolerance_bps: Decimal = Decimal(0),
) -> list[Finding]:
    lag_note = "an order is in flight on this symbol: the position may lag the fill"
    if not expecting:
        return [
            Finding(
                kind=ReconciliationErrors.UNTRACKED_POSITION,
                severity=Severity.INFO if order_in_flight else Severity.WARNING,
                symbol=symbol,
                expected_qty=Decimal(0),
                actual_qty=actual,
                detail=lag_note if order_in_flight else "no ACTIVE signal explains this position",
            )
        ]
    known = [s.signed_qty for s in expecting if s.signed_qty is not None]
    expected = sum(known, Decimal(0)) if len(known) == len(expecting) else None
    expected_sign = _expected_sign(expecting, expected)

    if actual == 0:
        if order_in_flight:
            return [
                Finding(
                    kind=ReconciliationErrors.QTY_MISMATCH,
                    severity=Severity.INFO,
                    symbol=symbol,
                    signal_id=",".join(s.id for s in expecting),
                    expected_qty=expected,
                    actual_qty=actual,
                    detail=lag_note,
                )
            ]
        if expected == 0:
            return []  # the ACTIVE signals net out to nothing, and nothing is held
        return [
            Finding(
                kind=ReconciliationErrors.ORPHAN_POSITION,
                severity=Severity.CRITICAL,
                symbol=symbol,
                signal_id=signal.id,
                client_order_id=signal.client_order_id or "",
                expected_qty=signal.signed_qty,
                actual_qty=Decimal(0),
                detail="ACTIVE signal expects a holding; Alpaca holds none",
                needs_confirmation=True,
            )
            for signal in expecting
        ]

    actual_sign = 1 if actual > 0 else -1
    if expected_sign != 0 and expected_sign != actual_sign:
        return [
            Finding(
                kind=ReconciliationErrors.SIDE_MISMATCH,
                severity=Severity.INFO if order_in_flight else Severity.CRITICAL,
                symbol=symbol,
                signal_id=",".join(s.id for s in expecting),
                expected_qty=expected,
                actual_qty=actual,
                detail=(
                    "expected long, holding short"
                    if expected_sign > 0
                    else "expected short, holding long"
                )
                + (f"; {lag_note}" if order_in_flight else ""),
            )
        ]
    if expected is not None and expected != actual:
        if _within_fee(expected, actual, fee_tolerance_bps):
            return []  # the coin Alpaca kept as the buy's fee
        return [
            Finding(
                kind=ReconciliationErrors.QTY_MISMATCH,
                severity=Severity.INFO if order_in_flight else Severity.WARNING,
                symbol=symbol,
                signal_id=",".join(s.id for s in expecting),
                expected_qty=expected,
                actual_qty=actual,
                detail=lag_note if order_in_flight else "Alpaca's quantity differs from intent",
            )
        ]
    return []


def _expected_sign(expecting: list[SignalFact], expected: Decimal | None) -> int:
    if expected is not None:
        return (expected > 0) - (expected < 0)
    # Notional signals: the side gives the sign when all agree.
    signs = {1 if s.side == "buy" else -1 for s in expecting}
    return signs.pop() if len(signs) == 1 else 0


def order_findings(data: DiffInput) -> list[Finding]:
    """Our order attempts against the broker's order list; orders of ours we never recorded."""
    recorded = {attempt.client_order_id for attempt in data.attempts}
    open_attempts = [a for a in data.attempts if a.status in data.open_attempt_statuses]
    # Without a clock every absent attempt is old enough to report.
    pairing = pair_attempts_with_orders(
        open_attempts,
        data.orders,
        now=data.now or datetime.max.replace(tzinfo=UTC),
        grace=data.grace if data.now is not None else timedelta(0),
    )
    findings: list[Finding] = [
        Finding(
            kind=ReconciliationErrors.ORDER_NOT_FOUND,
            severity=Severity.WARNING,
            symbol=attempt.symbol_key,
            signal_id=attempt.signal_id,
            client_order_id=attempt.client_order_id,
            alpaca_order_id=attempt.alpaca_order_id,
            detail="open attempt absent from Alpaca's order list",
            needs_confirmation=True,
        )
        for attempt in pairing.absent
    ]
    for attempt, order in pairing.paired:
        if (
            order.status != attempt.broker_status
            or attempt_status_for(order.status) != attempt.status
        ):
            findings.append(
                Finding(
                    kind=ReconciliationErrors.ORDER_STATUS_DRIFT,
                    severity=Severity.INFO,
                    symbol=attempt.symbol_key,
                    signal_id=attempt.signal_id,
                    client_order_id=attempt.client_order_id,
                    alpaca_order_id=order.id,
                    broker_status=order.status,
                    detail=f"ours {attempt.status}/{attempt.broker_status or '-'}, "
                    f"Alpaca {order.status}",
                )
            )
    position = {a.client_order_id: i for i, a in enumerate(open_attempts)}
    findings.sort(key=lambda f: position[f.client_order_id])  # the attempts' order, as given
    prefix = f"{data.client_order_id_prefix}-"
    for order in data.orders:
        if order.client_order_id.startswith(prefix) and order.client_order_id not in recorded:
            findings.append(
                Finding(
                    kind=ReconciliationErrors.UNKNOWN_ORDER,
                    severity=Severity.WARNING,
                    symbol=order.symbol_key,
                    client_order_id=order.client_order_id,
                    alpaca_order_id=order.id,
                    broker_status=order.status,
                    actual_qty=order.filled_qty,
                    detail="order with our prefix that we never recorded",
                )
            )
    return findings


def _symbols_with_orders_in_flight(data: DiffInput) -> frozenset[str]:
    symbols = {
        order.symbol_key
        for order in data.orders
        if order.status.lower() not in OPEN_BROKER_STATUSES_TERMINAL
    }
    symbols |= {a.symbol_key for a in data.attempts if a.status in data.open_attempt_statuses}
    symbols |= {s.symbol_key for s in data.signals if s.status in IN_FLIGHT_SIGNAL_STATUSES}
    return frozenset(symbols)
