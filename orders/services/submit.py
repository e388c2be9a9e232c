"""Order submission: PENDING signals become orders at Alpaca, exactly once.

The rules (DESIGN.md section 5):
- the attempt row is written before any HTTP call; every step appends an OrderEvent;
- the client_order_id is derived from the signal, so a resend can never create a second order:
  Alpaca answers 422 "client_order_id must be unique" and the earlier order is adopted;
- an unknown outcome (timeout, reset, 5xx, unparseable response) is never resent blindly: the
  attempt becomes UNKNOWN and the next step for it is a look-up by client_order_id;
- the signal moves PENDING -> SUBMITTED only after the broker accepted the order.
"""

import hashlib
import logging
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import timedelta
from decimal import Decimal

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from brokerops.alpaca import (
    AlpacaGateway,
    BrokerError,
    BrokerNotFound,
    BrokerRateLimited,
    BrokerRejected,
    Order,
    Position,
)
from brokerops.boundaries import broker_gateway, signal_store
from brokerops.intent.schema import Signal, SignalStatus
from brokerops.intent.store import SignalStore
from orders.client_order_id import client_order_id_for
from orders.models import OrderAttempt, OrderEvent
from orders.validation import OrderPlan, RiskLimits, order_plan

from .broker_state import order_attempts_apply_broker_orders, signals_follow_attempts
from .events import order_event_record

logger = logging.getLogger(__name__)
Status = OrderAttempt.Status


class Outcome:
    SUBMITTED = "submitted"  # accepted by Alpaca now
    ADOPTED = "adopted"  # an earlier send had landed: that order is ours
    REJECTED = "rejected"  # by validation or by Alpaca; the signal is REJECTED
    UNKNOWN = "unknown"  # outcome unknown: resolved by client_order_id next cycle
    DEFERRED = "deferred"  # not sent now (rate limited, broker unavailable before sending)
    BUSY = "busy"  # another worker holds this signal's attempt
    ALREADY = "already"  # the attempt had reached the broker before this cycle


@dataclass
class SignalOutcome:
    signal_id: str
    client_order_id: str
    outcome: str
    reason: str = ""
    alpaca_order_id: str = ""

    def as_dict(self) -> dict[str, str]:
        return {
            "signal_id": self.signal_id,
            "client_order_id": self.client_order_id,
            "outcome": self.outcome,
            "reason": self.reason,
            "alpaca_order_id": self.alpaca_order_id,
        }


@dataclass
class SubmitResult:
    outcomes: list[SignalOutcome] = field(default_factory=list)
    invalid_signals: int = 0
    api_calls: int = 0

    def counts(self) -> dict[str, int]:
        counts = Counter(o.outcome for o in self.outcomes)
        return {
            "signals": len(self.outcomes),
            "invalid_signals": self.invalid_signals,
            "api_calls": self.api_calls,
            **dict(sorted(counts.items())),
        }


@dataclass
class _Cycle:
    gateway: AlpacaGateway
    store: SignalStore
    actor: str
    positions: dict[str, Position]
    limits: RiskLimits


def orders_submit_pending(
    *,
    gateway: AlpacaGateway | None = None,
    store: SignalStore | None = None,
    limit: int | None = None,
    shard: tuple[int, int] | None = None,
    actor: str = "order-cycle",
) -> SubmitResult:
    """One order cycle: every PENDING signal (up to ``limit``, default ``ORDER_BATCH_SIZE``).

    Reads signals, assets and positions in bulk, then sends one order per signal. A 429 stops
    the cycle (the gateway's limiter pauses every worker); what was not sent waits for the next
    cycle. Invalid signal documents are counted and left alone. ``shard=(index, count)`` takes
    only the signals whose id hashes to ``index`` (of ``count``), so parallel workers split the
    work instead of contending for the same signals.
    """
    gateway = gateway or broker_gateway()
    store = store or signal_store()
    limit = limit or settings.ORDER_BATCH_SIZE
    read = store.read(statuses=[SignalStatus.PENDING])
    result = SubmitResult(invalid_signals=len(read.invalid))
    signals = read.signals
    if shard is not None:
        index, count = shard
        signals = [s for s in signals if _shard_of(s.id, count) == index]
    signals = signals[:limit]
    if not signals:
        return result
    with gateway.count_calls(current_thread_only=True) as calls:
        cycle = _Cycle(
            gateway=gateway,
            store=store,
            actor=actor,
            positions={p.symbol_key: p for p in gateway.list_positions()},
            limits=RiskLimits(max_notional=settings.ORDER_MAX_NOTIONAL or None),
        )
        for signal in signals:
            outcome = _submit_one(signal, cycle)
            result.outcomes.append(outcome)
            if outcome.outcome == Outcome.DEFERRED and "rate limited" in outcome.reason:
                break
    result.api_calls = calls.total
    return result


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
    positions = {p.symbol_key: p for p in gateway.list_positions()}
    cycle = _Cycle(
        gateway,
        store,
        actor,
        positions,
        RiskLimits(max_notional=settings.ORDER_MAX_NOTIONAL or None),
    )
    return _submit_one(signal, cycle)


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

    try:
        plan = _plan(signal, coid, cycle)
    except BrokerError as exc:  # the asset list could not be read: not the signal's fault
        return _deferred(signal, attempt, f"assets unavailable: {exc}")
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
                signal_id=signal.id,
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
                message=f"attempt for signal {signal.id}",
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
    reference = None
    if position is not None and position.market_value is not None and position.qty:
        reference = abs(position.market_value / position.qty)
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
            actor=cycle.actor,
        )
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
        return _deferred(signal, attempt, "rate limited: not applied, next cycle")
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
    attempt.save(update_fields=["status", "reason", "updated_at"])
    order_event_record(
        attempt=attempt,
        kind=OrderEvent.Kind.VALIDATION_FAILED if by_validation else OrderEvent.Kind.STATUS_CHANGED,
        status_from=status_from,
        status_to=Status.REJECTED,
        message=reason,
        actor=cycle.actor,
    )
    _move_signal(signal, attempt, SignalStatus.PENDING, SignalStatus.REJECTED, reason, cycle)
    return SignalOutcome(signal.id, attempt.client_order_id, Outcome.REJECTED, reason)


def _unknown(signal: Signal, attempt: OrderAttempt, cycle: _Cycle, reason: str) -> SignalOutcome:
    if attempt.status != Status.UNKNOWN:
        order_event_record(
            attempt=attempt,
            kind=OrderEvent.Kind.STATUS_CHANGED,
            status_from=attempt.status,
            status_to=Status.UNKNOWN,
            message=reason,
            actor=cycle.actor,
        )
    attempt.status = Status.UNKNOWN
    attempt.reason = reason
    attempt.updated_at = timezone.now()
    attempt.save(update_fields=["status", "reason", "updated_at"])
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
        message=f"signal {signal.id}: {result.outcome}"
        + (f" ({result.detail})" if result.detail else ""),
        actor=cycle.actor,
    )
