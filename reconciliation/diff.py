"""The diff engine: broker facts and intent in, typed mismatches out.

Pure functions over plain data (no I/O, no Django), so every rule is unit-tested on its own. The
service (:mod:`reconciliation.services`) gathers the facts, confirms the findings that need a
targeted look-up, and applies the repairs.

Rules (docs/design.md section 4): Alpaca is the truth for holdings, the signal store for intent.
Quantities of several ACTIVE signals on one symbol add up (sells negative). A symbol with an order
in flight may show a position that lags the fill, so a disagreement there is reported as such,
never as an orphan.
"""

from collections.abc import Iterable, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from enum import StrEnum
from typing import NamedTuple, Protocol

from orders import lifecycle
from orders.lifecycle import attempt_status_for
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
    # The signal names another account than the one that sent its order (docs/design.md
    # section 16): the order stays with the account that sent it; reported, never repaired.
    SIGNAL_ACCOUNT_MOVED = "SIGNAL_ACCOUNT_MOVED"


class Severity(StrEnum):
    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


@dataclass(frozen=True)
class PositionFact:
    symbol_key: str
    qty: Decimal  # signed: negative for a short
    crypto: bool = False  # Alpaca takes a crypto buy's fee in the coin received


class PositionLike(Protocol):
    """What the diff reads of a position: a :class:`PositionFact`, or anything with these fields
    (the gateway's ``Position``)."""

    @property
    def symbol_key(self) -> str: ...
    @property
    def qty(self) -> Decimal: ...
    @property
    def crypto(self) -> bool: ...


@dataclass(frozen=True)
class OrderFact:
    id: str
    client_order_id: str
    symbol_key: str
    status: str  # Alpaca's status, verbatim
    side: str = ""
    qty: Decimal | None = None
    filled_qty: Decimal | None = None


class OrderLike(Protocol):
    """What the diff reads of an order: an :class:`OrderFact`, or anything with these fields
    (the gateway's ``OrderSummary``: a bulk read is compared as it was read, not copied)."""

    @property
    def id(self) -> str: ...
    @property
    def client_order_id(self) -> str: ...
    @property
    def symbol_key(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def filled_qty(self) -> Decimal | None: ...


@dataclass(frozen=True)
class SignalFact:
    id: str
    symbol_key: str
    status: str
    signed_qty: Decimal | None  # None for a notional signal: only presence and side can be checked
    side: str = "buy"
    client_order_id: str | None = None


class SignalLike(Protocol):
    """What the diff reads of a signal: a :class:`SignalFact`, or anything with these fields
    (a parsed ``Signal``, whose status and side are ``str`` enums)."""

    @property
    def id(self) -> str: ...
    @property
    def symbol_key(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def signed_qty(self) -> Decimal | None: ...
    @property
    def side(self) -> str: ...
    @property
    def client_order_id(self) -> str | None: ...


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
class MovedSignalFact:
    """A signal whose order account ``sent_by`` sent, that now names account ``named``."""

    signal_id: str
    symbol_key: str
    client_order_id: str
    sent_by: str
    named: str


@dataclass(frozen=True)
class Finding:
    """One mismatch. ``needs_confirmation`` asks the service for a targeted look-up first."""

    kind: ReconciliationErrors
    severity: Severity
    symbol: str = ""
    signal_id: str = ""  # the signal; several (``signal_ids``) shown joined with commas
    client_order_id: str = ""
    alpaca_order_id: str = ""
    expected_qty: Decimal | None = None
    actual_qty: Decimal | None = None
    detail: str = ""
    broker_status: str = ""
    needs_confirmation: bool = False
    #: Every signal a finding about several names (a symbol's net quantity or side), whole:
    #: an id may itself hold a comma.
    signal_ids: tuple[str, ...] = ()
    #: What the account's activities explain of it, when they explain only part (docs/design.md
    #: section 18.4): the finding stays, and no signal is closed on it.
    explained: str = ""


@dataclass(frozen=True)
class DiffInput:
    positions: Sequence[PositionLike]
    orders: Sequence[OrderLike]
    signals: Sequence[SignalLike]
    invalid_signals: Sequence[InvalidSignalFact] = ()
    attempts: Sequence[AttemptFact] = ()
    # client_order_ids of attempts we recorded besides ``attempts`` (closed ones: they only
    # tell "ours" from "unknown", so they need no fact of their own)
    recorded_client_order_ids: AbstractSet[str] = frozenset()
    client_order_id_prefix: str = "bo"
    now: datetime | None = None
    grace: timedelta = timedelta(seconds=30)
    open_attempt_statuses: frozenset[str] = lifecycle.AT_BROKER
    # A crypto holding short of the expected quantity by at most this many basis points of it
    # is the buy's fee, not a mismatch (docs/design.md section 4, CRYPTO_FEE_TOLERANCE_BPS).
    crypto_fee_tolerance_bps: Decimal = Decimal(0)
    # Signals moved between accounts after their order was sent (not among ``signals``).
    moved_signals: Sequence[MovedSignalFact] = ()
    # Coins whose fee Alpaca has posted (CFEE) and the signals followed: the tolerance is
    # replaced there by the fee itself (docs/design.md section 18.4).
    fee_posted: AbstractSet[str] = frozenset()


ACTIVE = "ACTIVE"
_ZERO = Decimal(0)  # immutable: one shared zero
# A SUBMITTED signal has an order at the broker whose fill may not show in positions yet.
IN_FLIGHT_SIGNAL_STATUSES = frozenset({"SUBMITTED"})


def diff(data: DiffInput) -> list[Finding]:
    """Every mismatch between the broker's facts and the intent, in a stable order."""
    in_flight = _symbols_with_orders_in_flight(data)
    findings: list[Finding] = []
    findings += position_findings(
        data.positions,
        data.signals,
        in_flight,
        fee_tolerance_bps=data.crypto_fee_tolerance_bps,
        fee_posted=data.fee_posted,
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
    findings += [
        Finding(
            kind=ReconciliationErrors.SIGNAL_ACCOUNT_MOVED,
            severity=Severity.WARNING,
            symbol=moved.symbol_key,
            signal_id=moved.signal_id,
            client_order_id=moved.client_order_id,
            detail=f"the signal names account {moved.named!r}, its order was sent by account "
            f"{moved.sent_by!r}: the order stays there, and the signal is not compared with "
            f"{moved.named!r}'s holdings",
        )
        for moved in data.moved_signals
    ]
    return findings


def position_findings(
    positions: Iterable[PositionLike],
    signals: Iterable[SignalLike],
    in_flight: frozenset[str] = frozenset(),
    *,
    fee_tolerance_bps: Decimal = Decimal(0),
    fee_posted: AbstractSet[str] = frozenset(),
) -> list[Finding]:
    """Holdings against ACTIVE intent, per symbol (a coin in ``fee_posted`` without the fee
    tolerance)."""
    held: dict[str, Decimal] = {}
    crypto: set[str] = set()
    for position in positions:
        key = position.symbol_key
        held[key] = held.get(key, _ZERO) + position.qty
        if position.crypto:
            crypto.add(key)
    # One signal per symbol is the rule: kept as it is, a group only for a symbol with several
    # (100,000 lists or tuples held at once would each be tracked by the garbage collector, and
    # every collection meanwhile would walk them).
    active: dict[str, SignalLike] = {}
    several: dict[str, list[SignalLike]] = {}
    for signal in signals:
        if signal.status == ACTIVE:
            key = signal.symbol_key
            first = active.setdefault(key, signal)
            if first is not signal:
                several.setdefault(key, [first]).append(signal)

    findings: list[Finding] = []
    for symbol in sorted(active.keys() | {s for s, q in held.items() if q != 0}):
        actual = held.get(symbol, _ZERO)
        group = several.get(symbol)
        if group is None:
            single = active.get(symbol)
            if single is not None and actual and single.signed_qty == actual:
                continue  # one signal, held exactly: _symbol_findings would find nothing
            expecting: Sequence[SignalLike] = () if single is None else (single,)
        else:
            expecting = group
        tolerance = fee_tolerance_bps if symbol in crypto and symbol not in fee_posted else _ZERO
        findings += _symbol_findings(symbol, expecting, actual, symbol in in_flight, tolerance)
    return findings


def _within_fee(expected: Decimal, actual: Decimal, tolerance_bps: Decimal) -> bool:
    """A long crypto holding short of a buy's quantity by at most the fee tolerance."""
    if not tolerance_bps or expected <= 0 or not 0 < actual <= expected:
        return False
    return expected - actual <= expected * tolerance_bps / 10_000


_LAG_NOTE = "an order is in flight on this symbol: the position may lag the fill"


def _symbol_findings(
    symbol: str,
    expecting: Sequence[SignalLike],
    actual: Decimal,
    order_in_flight: bool,
    fee_tolerance_bps: Decimal = Decimal(0),
) -> list[Finding]:
    """What one symbol's holding says against its ACTIVE signals (the rules of the module
    docstring): nothing expected, nothing held, or a holding of the wrong side or size."""
    if not expecting:
        return [
            Finding(
                kind=ReconciliationErrors.UNTRACKED_POSITION,
                severity=Severity.INFO if order_in_flight else Severity.WARNING,
                symbol=symbol,
                expected_qty=Decimal(0),
                actual_qty=actual,
                detail=_LAG_NOTE if order_in_flight else "no ACTIVE signal explains this position",
            )
        ]
    known = [s.signed_qty for s in expecting if s.signed_qty is not None]
    expected = sum(known, _ZERO) if len(known) == len(expecting) else None
    holding = _Holding(symbol, expecting, expected, actual, order_in_flight)
    if actual == 0:
        return _nothing_held_findings(holding)
    return _held_findings(holding, fee_tolerance_bps)


_LAG_NOTE = "an order is in flight on this symbol: the position may lag the fill"


class _Holding(NamedTuple):
    """One symbol with ACTIVE signals, as a finding about its net holding names it (a tuple:
    one is built per symbol checked, and a frozen dataclass costs several times more)."""

    symbol: str
    expecting: Sequence[SignalLike]
    expected: Decimal | None  # the signals' net quantity; None when a notional one leaves it open
    actual: Decimal
    order_in_flight: bool

    def finding(self, kind: ReconciliationErrors, severity: Severity, detail: str) -> Finding:
        """A finding about the net holding: every ACTIVE signal that adds to it is named."""
        return Finding(
            kind=kind,
            severity=severity,
            symbol=self.symbol,
            signal_id=",".join(s.id for s in self.expecting),
            signal_ids=tuple(s.id for s in self.expecting),
            expected_qty=self.expected,
            actual_qty=self.actual,
            detail=detail,
        )


def _nothing_held_findings(holding: _Holding) -> list[Finding]:
    """ACTIVE signals on a symbol Alpaca holds none of: the fill may be on its way (an order in
    flight), the signals may net out to nothing, or each signal's holding is an orphan (to be
    confirmed by a targeted look-up before anything is repaired)."""
    if holding.order_in_flight:
        return [holding.finding(ReconciliationErrors.QTY_MISMATCH, Severity.INFO, _LAG_NOTE)]
    if holding.expected == 0:
        return []  # the ACTIVE signals net out to nothing, and nothing is held
    return [
        Finding(
            kind=ReconciliationErrors.ORPHAN_POSITION,
            severity=Severity.CRITICAL,
            symbol=holding.symbol,
            signal_id=signal.id,
            client_order_id=signal.client_order_id or "",
            expected_qty=signal.signed_qty,
            actual_qty=Decimal(0),
            detail="ACTIVE signal expects a holding; Alpaca holds none",
            needs_confirmation=True,
        )
        for signal in holding.expecting
    ]


def _held_findings(holding: _Holding, fee_tolerance_bps: Decimal) -> list[Finding]:
    """A non-zero holding against ACTIVE signals: its side first (all a notional signal lets
    us check), then the net quantity, a crypto buy's fee allowed for."""
    in_flight = holding.order_in_flight
    expected, actual = holding.expected, holding.actual
    expected_sign = _expected_sign(holding.expecting, expected)
    actual_sign = 1 if actual > 0 else -1
    if expected_sign != 0 and expected_sign != actual_sign:
        sides = (
            "expected long, holding short" if expected_sign > 0 else "expected short, holding long"
        )
        return [
            holding.finding(
                ReconciliationErrors.SIDE_MISMATCH,
                Severity.INFO if in_flight else Severity.CRITICAL,
                sides + (f"; {_LAG_NOTE}" if in_flight else ""),
            )
        ]
    if expected is not None and expected != actual:
        if _within_fee(expected, actual, fee_tolerance_bps):
            return []  # the coin Alpaca kept as the buy's fee
        return [
            holding.finding(
                ReconciliationErrors.QTY_MISMATCH,
                Severity.INFO if in_flight else Severity.WARNING,
                _LAG_NOTE if in_flight else "Alpaca's quantity differs from intent",
            )
        ]
    return []


def _expected_sign(expecting: Sequence[SignalLike], expected: Decimal | None) -> int:
    if expected is not None:
        return (expected > 0) - (expected < 0)
    # Notional signals: the side gives the sign when all agree.
    signs = {1 if s.side == "buy" else -1 for s in expecting}
    return signs.pop() if len(signs) == 1 else 0


def order_findings(data: DiffInput) -> list[Finding]:
    """Our order attempts against the broker's order list; orders of ours we never recorded."""
    open_attempts = [a for a in data.attempts if a.status in data.open_attempt_statuses]
    findings = _open_attempt_findings(data, open_attempts)
    position = {a.client_order_id: i for i, a in enumerate(open_attempts)}
    findings.sort(key=lambda f: position[f.client_order_id])  # the attempts' order, as given
    return findings + _unknown_order_findings(data)


def _open_attempt_findings(data: DiffInput, open_attempts: list[AttemptFact]) -> list[Finding]:
    """Each open attempt against its order in the broker's list: absent (past the grace, to be
    confirmed by a look-up), or present with a status other than the one we recorded."""
    # Only the open attempts' orders can pair (the later one wins, as in a map of the list).
    wanted = {a.client_order_id for a in open_attempts}
    candidates = {o.client_order_id: o for o in data.orders if o.client_order_id in wanted}
    # Without a clock every absent attempt is old enough to report.
    pairing = pair_attempts_with_orders(
        open_attempts,
        candidates,
        now=data.now or datetime.max.replace(tzinfo=UTC),
        grace=data.grace if data.now is not None else timedelta(0),
    )
    findings: list[Finding] = [
        _attempt_finding(
            attempt,
            ReconciliationErrors.ORDER_NOT_FOUND,
            Severity.WARNING,
            "open attempt absent from Alpaca's order list",
            alpaca_order_id=attempt.alpaca_order_id,
            needs_confirmation=True,
        )
        for attempt in pairing.absent
    ]
    findings += [
        _attempt_finding(
            attempt,
            ReconciliationErrors.ORDER_STATUS_DRIFT,
            Severity.INFO,
            f"ours {attempt.status}/{attempt.broker_status or '-'}, Alpaca {order.status}",
            alpaca_order_id=order.id,
            broker_status=order.status,
        )
        for attempt, order in pairing.paired
        if order.status != attempt.broker_status
        or attempt_status_for(order.status) != attempt.status
    ]
    return findings


def _attempt_finding(
    attempt: AttemptFact,
    kind: ReconciliationErrors,
    severity: Severity,
    detail: str,
    *,
    alpaca_order_id: str,
    broker_status: str = "",
    needs_confirmation: bool = False,
) -> Finding:
    """A finding about one of our open attempts, named by its symbol, signal and
    client_order_id (the order id: the attempt's, or the one Alpaca's list gives)."""
    return Finding(
        kind=kind,
        severity=severity,
        symbol=attempt.symbol_key,
        signal_id=attempt.signal_id,
        client_order_id=attempt.client_order_id,
        alpaca_order_id=alpaca_order_id,
        broker_status=broker_status,
        detail=detail,
        needs_confirmation=needs_confirmation,
    )


def _unknown_order_findings(data: DiffInput) -> list[Finding]:
    """Orders with our client_order_id prefix that match no attempt we ever recorded, open or
    closed, in the broker's order."""
    recorded = {attempt.client_order_id for attempt in data.attempts}
    recorded |= data.recorded_client_order_ids
    prefix = f"{data.client_order_id_prefix}-"
    return [
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
        for order in data.orders
        if order.client_order_id.startswith(prefix) and order.client_order_id not in recorded
    ]


def _symbols_with_orders_in_flight(data: DiffInput) -> frozenset[str]:
    symbols = {order.symbol_key for order in data.orders if not lifecycle.is_terminal(order.status)}
    symbols |= {a.symbol_key for a in data.attempts if a.status in data.open_attempt_statuses}
    symbols |= {s.symbol_key for s in data.signals if s.status in IN_FLIGHT_SIGNAL_STATUSES}
    return frozenset(symbols)
