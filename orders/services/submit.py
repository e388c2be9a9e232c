"""Order submission: PENDING signals become orders at Alpaca, exactly once.

The rules (DESIGN.md section 5):
- the attempt row is written before any HTTP call; every step appends an OrderEvent;
- the client_order_id is derived from the signal, so a resend can never create a second order:
  Alpaca answers 422 "client_order_id must be unique" and the earlier order is adopted;
- an unknown outcome (timeout, reset, 5xx, unparseable response) is never resent blindly: the
  attempt becomes UNKNOWN and the next step for it is a look-up by client_order_id;
- the signal moves PENDING -> SUBMITTED only after the broker accepted the order.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from brokerops import metrics
from brokerops.alpaca import (
    BrokerError,
    BrokerNotFound,
    BrokerRateLimited,
    BrokerRejected,
    Order,
    Position,
)
from brokerops.boundaries import broker_gateway, signal_store
from brokerops.intent.schema import OrderType, Signal, SignalStatus, audit_signal_id
from brokerops.intent.store import SignalStore, SignalStoreError
from brokerops.logs import log_context
from orders.client_order_id import client_order_id_for
from orders.models import OrderAttempt, OrderEvent
from orders.validation import OrderPlan, RiskLimits, order_plan

from .broker_state import order_attempts_apply_broker_orders, signals_follow_attempts
from .events import order_event_record
from .invalid import reject_invalid_signal
from .outcomes import Outcome, SignalOutcome, SubmitResult

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway

logger = logging.getLogger(__name__)
Status = OrderAttempt.Status
# Orders that carry no price of their own: the risk check prices them from market data.
_UNPRICED_TYPES = frozenset({OrderType.MARKET})


@dataclass
class _Cycle:
    gateway: AlpacaGateway
    store: SignalStore
    actor: str
    positions: dict[str, Position]
    limits: RiskLimits
    prices: dict[str, Decimal]  # symbol_key -> latest trade price (Alpaca's market data)
    prices_error: str = ""  # why prices could not be read (orders needing one are deferred)


def _open_cycle(
    signals: list[Signal], *, gateway: AlpacaGateway, store: SignalStore, actor: str
) -> _Cycle:
    """What every order of a cycle is checked against, read in bulk: positions (a 401 or an
    unavailable broker raises: nothing can be sent) and the latest trade of every symbol."""
    positions = {p.symbol_key: p for p in gateway.list_positions()}
    prices: dict[str, Decimal] = {}
    prices_error = ""
    symbols = sorted({s.symbol for s in signals if s.order_type in _UNPRICED_TYPES})
    if symbols:
        try:
            prices = gateway.latest_trade_prices(symbols)
        except BrokerRejected as exc:
            if exc.is_auth_error:
                raise
            prices_error = f"market data refused: {exc}"
        except BrokerError as exc:  # orders that need a price are deferred with this reason
            prices_error = f"market data unavailable: {exc}"
    return _Cycle(
        gateway=gateway,
        store=store,
        actor=actor,
        positions=positions,
        limits=RiskLimits(
            max_notional=settings.ORDER_MAX_NOTIONAL or None,
            crypto_fee_tolerance_bps=settings.CRYPTO_FEE_TOLERANCE_BPS,
        ),
        prices=prices,
        prices_error=prices_error,
    )


def orders_submit_pending(
    *,
    gateway: AlpacaGateway | None = None,
    store: SignalStore | None = None,
    limit: int | None = None,
    shard: tuple[int, int] | None = None,
    actor: str = "order-cycle",
    result: SubmitResult | None = None,
) -> SubmitResult:
    """One order cycle: every PENDING signal (up to ``limit``, default ``ORDER_BATCH_SIZE``).

    ``result``, when given, is filled as the cycle goes (and returned), so a caller still has
    the outcomes of the signals handled before an error that stopped the cycle (a 401, the
    broker down).

    Reads signals, assets, positions and latest prices in bulk, then sends one order per
    signal. A 429 stops the cycle (the gateway's limiter pauses every worker); what was not
    sent waits for the next cycle. A failure on one signal is recorded on it and the cycle goes
    on; only a 401 (bad keys) stops it (raised). A PENDING document whose status reads PENDING
    but that does not parse is REJECTED with the reasons (nothing is sent); one whose status
    cannot be read is never touched. ``shard=(index, count)`` takes only the signals whose id
    hashes to ``index`` (of ``count``), so parallel workers split the work instead of
    contending for the same signals.
    """
    gateway = gateway or broker_gateway()
    store = store or signal_store()
    limit = limit or settings.ORDER_BATCH_SIZE
    read = store.read(statuses=[SignalStatus.PENDING])
    result = result if result is not None else SubmitResult()
    result.invalid_signals = len(read.invalid)
    signals, invalid = read.signals, read.invalid
    if shard is not None:
        index, count = shard
        signals = [s for s in signals if _shard_of(s.id, count) == index]
        invalid = [s for s in invalid if _shard_of(s.id, count) == index]
    for doc in invalid[:limit]:
        result.outcomes.append(
            _guarded(doc.id, lambda doc=doc: reject_invalid_signal(doc, store=store, actor=actor))
        )
    signals = signals[:limit]
    if not signals:
        return result
    with gateway.count_calls(current_thread_only=True) as calls:
        cycle = _open_cycle(signals, gateway=gateway, store=store, actor=actor)
        for signal in signals:
            coid = client_order_id_for(signal_id=signal.id, prefix=settings.CLIENT_ORDER_ID_PREFIX)
            with log_context(client_order_id=coid):
                outcome = _guarded(signal.id, lambda signal=signal: _submit_one(signal, cycle))
            result.outcomes.append(outcome)
            if outcome.halts_cycle:
                break
    result.api_calls = calls.total
    return result


def _guarded(signal_id: str, submit: Callable[[], SignalOutcome]) -> SignalOutcome:
    """One signal never stops the cycle: an error is recorded on its attempt (when there is
    one) and returned as FAILED. Bad keys (401) are everybody's problem: they propagate."""
    try:
        return metrics.order_outcome_record(submit())
    except BrokerRejected as exc:
        if exc.is_auth_error:
            raise
        failure: Exception = exc
    except Exception as exc:  # noqa: BLE001 - recorded on the signal's attempt and logged
        failure = exc
    coid = client_order_id_for(signal_id=signal_id, prefix=settings.CLIENT_ORDER_ID_PREFIX)
    reason = f"{type(failure).__name__}: {failure}"
    logger.error("order cycle: signal %r failed: %s", signal_id, reason)
    # A broker or store failure is an operator's one line; anything else is a bug: traceback.
    expected = isinstance(failure, BrokerError | SignalStoreError)
    logger.log(logging.DEBUG if expected else logging.ERROR, "traceback", exc_info=failure)
    attempt = OrderAttempt.objects.filter(client_order_id=coid).first()
    if attempt is not None:
        order_event_record(attempt=attempt, kind=OrderEvent.Kind.ERROR, message=reason[:2000])
    return metrics.order_outcome_record(SignalOutcome(signal_id, coid, Outcome.FAILED, reason))


def _shard_of(signal_id: str, count: int) -> int:
    return int.from_bytes(hashlib.blake2b(signal_id.encode(), digest_size=4).digest()) % count


def order_submit(
    *,
    signal: Signal,
    gateway: AlpacaGateway | None = None,
    store: SignalStore | None = None,
    actor: str = "order-submit",
) -> SignalOutcome:
    """Submit one PENDING signal (see :func:`orders_submit_pending` for the rules)."""
    gateway = gateway or broker_gateway()
    store = store or signal_store()
    cycle = _open_cycle([signal], gateway=gateway, store=store, actor=actor)
    return _guarded(signal.id, lambda: _submit_one(signal, cycle))


def _submit_one(signal: Signal, cycle: _Cycle) -> SignalOutcome:
    coid = client_order_id_for(signal_id=signal.id, prefix=settings.CLIENT_ORDER_ID_PREFIX)
    attempt = _claim_attempt(signal, coid)
    if attempt is None:
        return SignalOutcome(signal.id, coid, Outcome.BUSY, "another worker holds this signal")
    if (
        attempt.status in (Status.CREATED, Status.UNKNOWN)
        and attempt.events.filter(kind=OrderEvent.Kind.REQUEST_SENT).exists()
    ):
        # An earlier request may have landed: look before sending anything.
        look = _look_up(attempt, cycle)
        if look.order is not None:
            return _accepted(signal, attempt, look.order, cycle, Outcome.ADOPTED)
        if not look.answered:
            return _unknown(signal, attempt, cycle, "look-up by client_order_id failed")
        # Alpaca answered 404: the earlier request never landed, so sending is not blind.
    elif attempt.status not in (Status.CREATED, Status.UNKNOWN):
        # At the broker already (or rejected): make sure the signal reflects it.
        return _reconcile_existing(signal, attempt, cycle)

    current = _pending_now(signal, attempt, cycle)
    if isinstance(current, SignalOutcome):
        return current  # deleted or moved out of PENDING since it was read: nothing is sent
    signal = current
    try:
        plan = _plan(signal, coid, cycle)
    except BrokerError as exc:  # the asset list could not be read: not the signal's fault
        return _deferred(signal, attempt, f"assets unavailable: {exc}")
    if plan.deferred:
        why = f"{plan.deferred} ({cycle.prices_error})" if cycle.prices_error else plan.deferred
        order_event_record(
            attempt=attempt, kind=OrderEvent.Kind.DEFERRED, message=why, actor=cycle.actor
        )
        return _deferred(signal, attempt, why)
    if not plan.ok:
        return _reject(signal, attempt, cycle, "; ".join(plan.reasons), by_validation=True)
    return _send(signal, attempt, plan, cycle)


def _claim_attempt(signal: Signal, coid: str) -> OrderAttempt | None:
    """The attempt row for this signal, created before any HTTP call, claimed for this worker.

    Returns None when another worker created or touched it moments ago.
    """
    now = timezone.now()
    try:
        with transaction.atomic():
            attempt = OrderAttempt.objects.create(
                client_order_id=coid,
                signal_id=audit_signal_id(signal.id),
                leg="entry",
                symbol=signal.symbol,
                side=str(signal.side),
                order_type=str(signal.order_type),
                qty=signal.qty,
                notional=signal.notional,
                limit_price=signal.limit_price,
                stop_price=signal.stop_price,
                extended_hours=signal.extended_hours,
                created_at=now,
                updated_at=now,
            )
            order_event_record(
                attempt=attempt,
                kind=OrderEvent.Kind.CREATED,
                message=f"attempt for signal {signal.id!r}",
                status_to=Status.CREATED,
            )
        return attempt
    except IntegrityError:
        pass  # the row exists: an earlier cycle or another worker made it; claim it below
    attempt = OrderAttempt.objects.get(client_order_id=coid)
    stale_before = now - timedelta(seconds=settings.ORDER_CLAIM_TIMEOUT_S)
    if attempt.status in (Status.CREATED, Status.UNKNOWN):
        if attempt.status == Status.CREATED and attempt.updated_at > stale_before:
            return None
        # Claim: only one worker's conditional update matches the timestamp it read.
        claimed = OrderAttempt.objects.filter(pk=attempt.pk, updated_at=attempt.updated_at).update(
            updated_at=now
        )
        if not claimed:
            return None
        attempt.updated_at = now
    return attempt


def _pending_now(signal: Signal, attempt: OrderAttempt, cycle: _Cycle) -> Signal | SignalOutcome:
    """The signal as stored now, read again once the attempt is claimed and before anything is
    sent (DESIGN 3: only a PENDING document wants an order).

    A cycle or a watcher decides on a read that can be seconds old (a cycle paced by the rate
    limiter, a watcher's queue in a burst): a signal deleted, or moved out of PENDING by its
    writer, since then gets no order; the attempt stays CREATED with a DEFERRED event saying
    why, released for whoever sees the signal PENDING again. A document changed but still
    PENDING is planned as it is now. What remains is the window between this read and the
    request (milliseconds): no store lock covers a writer that ignores brokerops.
    """
    try:
        current = cycle.store.get(signal.id)
    except SignalStoreError as exc:  # nothing sent: the claim is released for the next try
        return _deferred(signal, attempt, f"signal store unavailable: {exc}")
    if isinstance(current, Signal) and current.status is SignalStatus.PENDING:
        return current
    if current is None:
        why = "signal deleted before sending: nothing sent"
    elif isinstance(current, Signal):
        why = f"signal is {current.status}, no longer PENDING: nothing sent"
    else:
        why = "signal no longer parses: nothing sent (the next cycle rejects it)"
    order_event_record(
        attempt=attempt, kind=OrderEvent.Kind.DEFERRED, message=why, actor=cycle.actor
    )
    return _deferred(signal, attempt, why)


@dataclass(frozen=True)
class _LookUp:
    order: Order | None
    answered: bool  # Alpaca answered (found, or 404); False when the look-up itself failed


def _look_up(attempt: OrderAttempt, cycle: _Cycle) -> _LookUp:
    """The order at Alpaca with this attempt's client_order_id (one targeted read)."""
    try:
        order = cycle.gateway.get_order_by_client_id(attempt.client_order_id)
    except BrokerNotFound:
        order_event_record(
            attempt=attempt,
            kind=OrderEvent.Kind.LOOKUP,
            http_status=404,
            message="no order with this client_order_id at Alpaca",
            actor=cycle.actor,
        )
        return _LookUp(None, answered=True)
    except BrokerError as exc:
        order_event_record(
            attempt=attempt,
            kind=OrderEvent.Kind.ERROR,
            message=f"look-up failed: {exc}",
            actor=cycle.actor,
        )
        return _LookUp(None, answered=False)
    order_event_record(
        attempt=attempt,
        kind=OrderEvent.Kind.LOOKUP,
        http_status=200,
        message=f"found order {order.id} ({order.status})",
        payload=order.raw,
        actor=cycle.actor,
    )
    return _LookUp(order, answered=True)


def _plan(signal: Signal, coid: str, cycle: _Cycle) -> OrderPlan:
    position = cycle.positions.get(signal.symbol_key)
    reference = cycle.prices.get(signal.symbol_key)
    if reference is None and position is not None and position.market_value and position.qty:
        reference = abs(position.market_value / position.qty)  # Alpaca's own mark
    asset = cycle.gateway.find_asset(signal.symbol)  # BrokerError: the caller defers
    return order_plan(
        signal=signal,
        asset=asset,
        client_order_id=coid,
        held_qty=position.qty if position is not None else Decimal(0),
        reference_price=reference,
        limits=cycle.limits,
    )


def _send(signal: Signal, attempt: OrderAttempt, plan: OrderPlan, cycle: _Cycle) -> SignalOutcome:
    request = plan.request
    payload = {k: (str(v) if isinstance(v, Decimal) else v) for k, v in asdict(request).items()}
    attempt.time_in_force = request.time_in_force
    attempt.request_payload = payload
    with transaction.atomic():  # the attempt's change and its event, together
        attempt.save(update_fields=["time_in_force", "request_payload"])
        order_event_record(
            attempt=attempt,
            kind=OrderEvent.Kind.REQUEST_SENT,
            message="POST /v2/orders",
            payload={"request": payload, "notes": list(plan.notes)},
            actor=cycle.actor,
        )
    try:
        order = cycle.gateway.submit_order(request)
    except BrokerRejected as exc:
        order_event_record(
            attempt=attempt,
            kind=OrderEvent.Kind.ERROR,
            http_status=exc.status,
            message=str(exc),
            payload={"broker": exc.details} if getattr(exc, "details", None) else None,
            actor=cycle.actor,
        )
        if exc.is_auth_error:  # bad keys: nothing was applied; stop the whole cycle
            _deferred(signal, attempt, "broker refused the credentials (401)")
            raise
        if exc.is_duplicate_client_order_id:
            # An earlier send landed: that order is this signal's order.
            look = _look_up(attempt, cycle)
            if look.order is not None:
                return _accepted(signal, attempt, look.order, cycle, Outcome.ADOPTED)
            return _unknown(signal, attempt, cycle, "duplicate client_order_id but look-up failed")
        return _reject(signal, attempt, cycle, f"Alpaca rejected the order: {exc.message}")
    except BrokerRateLimited as exc:
        order_event_record(
            attempt=attempt,
            kind=OrderEvent.Kind.ERROR,
            http_status=429,
            message=f"rate limited; retry after {exc.retry_after_s}s",
            actor=cycle.actor,
        )
        deferred = _deferred(signal, attempt, "rate limited: not applied, next cycle")
        deferred.halts_cycle = True
        return deferred
    except BrokerError as exc:
        outcome_unknown = getattr(exc, "outcome_unknown", True)
        order_event_record(
            attempt=attempt,
            kind=OrderEvent.Kind.ERROR,
            message=f"{type(exc).__name__}: {exc}",
            actor=cycle.actor,
            http_status=getattr(exc, "status", None),
        )
        if not outcome_unknown:
            return _deferred(signal, attempt, f"broker unavailable before sending: {exc}")
        look = _look_up(attempt, cycle)
        if look.order is not None:
            return _accepted(signal, attempt, look.order, cycle, Outcome.ADOPTED)
        return _unknown(signal, attempt, cycle, f"outcome unknown after {type(exc).__name__}")
    order_event_record(
        attempt=attempt,
        kind=OrderEvent.Kind.RESPONSE,
        http_status=200,
        message=f"accepted: order {order.id} ({order.status})",
        payload=order.raw,
        actor=cycle.actor,
    )
    return _accepted(signal, attempt, order, cycle, Outcome.SUBMITTED)


def _accepted(
    signal: Signal, attempt: OrderAttempt, order: Order, cycle: _Cycle, outcome: str
) -> SignalOutcome:
    """The broker has the order: take its state, move the signal PENDING -> SUBMITTED, and on
    to its final state when the order is already final (a market order that filled)."""
    order_attempts_apply_broker_orders(
        pairs=[(attempt, order)], store=cycle.store, actor=cycle.actor, move_signals=False
    )
    attempt.submitted_at = attempt.submitted_at or timezone.now()
    attempt.save(update_fields=["submitted_at"])
    _move_signal(
        signal,
        attempt,
        SignalStatus.PENDING,
        SignalStatus.SUBMITTED,
        f"order {order.id} accepted by Alpaca",
        cycle,
        fields={"client_order_id": attempt.client_order_id, "alpaca_order_id": order.id},
    )
    if attempt.status not in OrderAttempt.OPEN_STATUSES:
        # Final already: apply the signal move the order implies.
        signals_follow_attempts([attempt], store=cycle.store, actor=cycle.actor)
    return SignalOutcome(signal.id, attempt.client_order_id, outcome, order.status, order.id)


def _reject(
    signal: Signal,
    attempt: OrderAttempt,
    cycle: _Cycle,
    reason: str,
    *,
    by_validation: bool = False,
) -> SignalOutcome:
    status_from = attempt.status
    attempt.status = Status.REJECTED
    attempt.reason = reason
    attempt.updated_at = timezone.now()
    with transaction.atomic():
        attempt.save(update_fields=["status", "reason", "updated_at"])
        order_event_record(
            attempt=attempt,
            kind=OrderEvent.Kind.VALIDATION_FAILED
            if by_validation
            else OrderEvent.Kind.STATUS_CHANGED,
            status_from=status_from,
            status_to=Status.REJECTED,
            message=reason,
            actor=cycle.actor,
        )
    _move_signal(signal, attempt, SignalStatus.PENDING, SignalStatus.REJECTED, reason, cycle)
    return SignalOutcome(signal.id, attempt.client_order_id, Outcome.REJECTED, reason)


def _unknown(signal: Signal, attempt: OrderAttempt, cycle: _Cycle, reason: str) -> SignalOutcome:
    status_from = attempt.status
    attempt.status = Status.UNKNOWN
    attempt.reason = reason
    attempt.updated_at = timezone.now()
    with transaction.atomic():
        attempt.save(update_fields=["status", "reason", "updated_at"])
        if status_from != Status.UNKNOWN:
            order_event_record(
                attempt=attempt,
                kind=OrderEvent.Kind.STATUS_CHANGED,
                status_from=status_from,
                status_to=Status.UNKNOWN,
                message=reason,
                actor=cycle.actor,
            )
    return SignalOutcome(signal.id, attempt.client_order_id, Outcome.UNKNOWN, reason)


def _deferred(signal: Signal, attempt: OrderAttempt, reason: str) -> SignalOutcome:
    # Not applied at the broker: the attempt stays CREATED and is free for the next cycle.
    OrderAttempt.objects.filter(pk=attempt.pk).update(
        updated_at=timezone.now() - timedelta(seconds=settings.ORDER_CLAIM_TIMEOUT_S)
    )
    return SignalOutcome(signal.id, attempt.client_order_id, Outcome.DEFERRED, reason)


def _reconcile_existing(signal: Signal, attempt: OrderAttempt, cycle: _Cycle) -> SignalOutcome:
    if attempt.status == Status.REJECTED:
        _move_signal(
            signal,
            attempt,
            SignalStatus.PENDING,
            SignalStatus.REJECTED,
            attempt.reason or "order rejected",
            cycle,
        )
        return SignalOutcome(signal.id, attempt.client_order_id, Outcome.ALREADY, attempt.reason)
    if attempt.status in (Status.MISSING, Status.CANCELED, Status.EXPIRED) and not (
        attempt.filled_qty or 0
    ):
        # Its order is gone or ended unfilled: this signal's one order will not come.
        _move_signal(
            signal,
            attempt,
            SignalStatus.PENDING,
            SignalStatus.CANCELED,
            f"order {attempt.client_order_id} is {attempt.status}",
            cycle,
        )
        return SignalOutcome(signal.id, attempt.client_order_id, Outcome.ALREADY, attempt.status)
    _move_signal(
        signal,
        attempt,
        SignalStatus.PENDING,
        SignalStatus.SUBMITTED,
        f"order {attempt.alpaca_order_id} at Alpaca",
        cycle,
        fields={
            "client_order_id": attempt.client_order_id,
            "alpaca_order_id": attempt.alpaca_order_id,
        },
    )
    if attempt.status not in OrderAttempt.OPEN_STATUSES:
        signals_follow_attempts([attempt], store=cycle.store, actor=cycle.actor)
    return SignalOutcome(
        signal.id,
        attempt.client_order_id,
        Outcome.ALREADY,
        attempt.broker_status,
        attempt.alpaca_order_id,
    )


def _move_signal(
    signal: Signal,
    attempt: OrderAttempt,
    expected: SignalStatus,
    new: SignalStatus,
    reason: str,
    cycle: _Cycle,
    fields: dict | None = None,
) -> None:
    result = cycle.store.transition(
        signal_id=signal.id,
        expected_status=expected,
        new_status=new,
        reason=reason[:500],
        fields=fields,
    )
    order_event_record(
        attempt=attempt,
        kind=OrderEvent.Kind.SIGNAL_TRANSITION,
        status_from=str(expected),
        status_to=str(new if result.applied else result.actual_status or ""),
        message=f"signal {signal.id!r}: {result.outcome}"
        + (f" ({result.detail})" if result.detail else ""),
        actor=cycle.actor,
    )
