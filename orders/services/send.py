"""Send one claimed signal: re-read, plan, POST, and decide what the broker's answer means.

The rules (docs/design.md section 5): a signal is sent only while its document is PENDING
(re-read at most `REREAD_MAX_AGE_S` before the request); the request is recorded on the attempt
before it leaves; a 422 "client_order_id must be unique" means an earlier send landed and that
order is adopted; an unknown outcome (timeout, reset, 5xx, unparseable response) is never resent
blindly: the order is looked up by client_order_id, and the attempt becomes UNKNOWN when the
look-up cannot tell. An accepted order's post-send work is queued on the context
(`orders.services.finish`).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from decimal import Decimal

from django.db import transaction
from django.utils import timezone

from brokerops.alpaca import (
    BrokerError,
    BrokerNotFound,
    BrokerRateLimited,
    BrokerRejected,
    Order,
)
from brokerops.intent.schema import Signal, SignalStatus
from brokerops.intent.store import SignalStoreError, TransitionOutcome
from brokerops.text import db_text
from orders import lifecycle
from orders.client_order_id import client_order_id_for
from orders.matching import order_differences
from orders.models import OrderAttempt, OrderEvent
from orders.validation import OrderPlan, order_plan

from .claim import attempt_claim, attempt_order_fields, attempt_release
from .context import AcceptedOrder, SignalReread, SubmitContext
from .events import order_event_record
from .existing import attempt_existing_follow, signal_move_on_version
from .outcomes import Outcome, SignalOutcome

Status = OrderAttempt.Status


def signal_submit_one(
    *,
    signal: Signal,
    cycle: SubmitContext,
    reread: SignalReread,
    claimed: OrderAttempt | None = None,
) -> SignalOutcome:
    """One signal; ``claimed``: its attempt, just created for this call (`attempts_claim_new`)."""
    coid = client_order_id_for(signal_id=signal.id, prefix=cycle.prefix)
    attempt = claimed or attempt_claim(signal=signal, coid=coid, account=cycle.account)
    if attempt is None:
        return SignalOutcome(signal.id, coid, Outcome.BUSY, "another worker holds this signal")
    if attempt.account != cycle.scope.name:
        return _other_accounts(signal, attempt, cycle)
    if (
        attempt.status in lifecycle.NOT_SENT
        and attempt.events.filter(kind=OrderEvent.Kind.REQUEST_SENT).exists()
    ):
        # An earlier request may have landed: look before sending anything.
        look = _look_up(attempt, cycle)
        if look.order is not None:
            return _accepted(signal, attempt, look.order, cycle, Outcome.ADOPTED)
        if not look.answered:
            return _unknown(signal, attempt, cycle, "look-up by client_order_id failed")
        # Alpaca answered 404: the earlier request never landed, so sending is not blind.
    elif attempt.status not in lifecycle.NOT_SENT:
        # At the broker already (or rejected): make sure the signal reflects it.
        return attempt_existing_follow(signal=signal, attempt=attempt, cycle=cycle)

    current = _pending_now(signal, attempt, cycle, reread)
    if isinstance(current, SignalOutcome):
        return current  # deleted or moved out of PENDING since it was read: nothing is sent
    signal = current
    _attempt_describe(attempt, signal)
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


def _other_accounts(signal: Signal, attempt: OrderAttempt, cycle: SubmitContext) -> SignalOutcome:
    """The signal names this account, but its one attempt is another account's: it named that
    account when the attempt was made (docs/design.md section 16). Nothing is sent: whatever
    that attempt reached stays with the account that made it. The signal is REJECTED (a signal
    id yields one order, in one account), the finding recorded on the attempt."""
    reason = (
        f"signal {signal.id!r} names account {cycle.scope.name!r}, but its one order "
        f"{attempt.client_order_id} ({attempt.status}) belongs to account {attempt.account!r}: "
        "not sent again; a signal id yields one order, in the account that made it: write the "
        "new intent under a new id"
    )
    moved = signal_move_on_version(
        signal, attempt, SignalStatus.PENDING, SignalStatus.REJECTED, reason, cycle
    )
    if moved.outcome is TransitionOutcome.CHANGED:
        why = "the document changed since it was read: decided again on the new one next cycle"
        return SignalOutcome(signal.id, attempt.client_order_id, Outcome.DEFERRED, why)
    return SignalOutcome(
        signal.id, attempt.client_order_id, Outcome.CONFLICT, reason, attempt.alpaca_order_id
    )


def _attempt_describe(attempt: OrderAttempt, signal: Signal) -> None:
    """The attempt records the order of the document as it is decided on now: its writer may
    have changed it since the claim (nothing was sent for the attempt yet, or Alpaca said 404),
    and later decisions compare the document with what the attempt says was sent."""
    if not order_differences(attempt, signal):
        return
    fields = attempt_order_fields(signal)
    for name, value in fields.items():
        setattr(attempt, name, value)
    attempt.save(update_fields=list(fields))


def _pending_now(
    signal: Signal, attempt: OrderAttempt, cycle: SubmitContext, reread: SignalReread
) -> Signal | SignalOutcome:
    """The signal as stored now (`SignalReread`: at most `REREAD_MAX_AGE_S` old), before
    anything is sent (docs/design.md section 3: only a PENDING document wants an order).

    A cycle or a watcher decides on a read that can be seconds old (a cycle paced by the rate
    limiter, a watcher's queue in a burst): a signal deleted, or moved out of PENDING by its
    writer, since then gets no order: a WITHDRAWN event on the attempt says so, the attempt
    stays CREATED and is released for whoever sees the signal PENDING again (the outcome is
    WITHDRAWN: final, nothing was sent and nothing retries it). A document changed
    but still PENDING is planned as it is now; one that no longer parses is DEFERRED (the next
    cycle rejects it). What remains is the window between this read and the request (at most
    `REREAD_MAX_AGE_S` and the request itself): no store lock covers a writer that ignores
    brokerops.
    """
    try:
        current = reread.current(signal.id)
    except SignalStoreError as exc:  # nothing sent: the claim is released for the next try
        return _deferred(signal, attempt, f"signal store unavailable: {exc}")
    if isinstance(current, Signal) and current.status is SignalStatus.PENDING:
        if cycle.scope.owner(current) == cycle.scope.name:
            return current
        # Moved to another account (or one not configured) by its writer since it was read:
        # an order never goes to another account than its signal's (docs/design.md section 16).
        named = current.account or "none"
        why = (
            f"signal now names account {named!r}, not {cycle.scope.name!r}: "
            f"not sent by account {cycle.scope.name!r}"
        )
        order_event_record(
            attempt=attempt, kind=OrderEvent.Kind.WITHDRAWN, message=why, actor=cycle.actor
        )
        attempt_release(attempt=attempt)
        return SignalOutcome(signal.id, attempt.client_order_id, Outcome.WITHDRAWN, why)
    if current is None or isinstance(current, Signal):
        why = (
            "signal deleted by its writer before sending: not sent"
            if current is None
            else f"signal moved to {current.status} by its writer, no longer PENDING: not sent"
        )
        order_event_record(
            attempt=attempt, kind=OrderEvent.Kind.WITHDRAWN, message=why, actor=cycle.actor
        )
        attempt_release(attempt=attempt)
        return SignalOutcome(signal.id, attempt.client_order_id, Outcome.WITHDRAWN, why)
    why = "signal no longer parses: nothing sent (the next cycle rejects it)"
    order_event_record(
        attempt=attempt, kind=OrderEvent.Kind.DEFERRED, message=why, actor=cycle.actor
    )
    return _deferred(signal, attempt, why)


@dataclass(frozen=True)
class _LookUp:
    order: Order | None
    answered: bool  # Alpaca answered (found, or 404); False when the look-up itself failed


def _look_up(attempt: OrderAttempt, cycle: SubmitContext) -> _LookUp:
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


def _plan(signal: Signal, coid: str, cycle: SubmitContext) -> OrderPlan:
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


def _send(
    signal: Signal, attempt: OrderAttempt, plan: OrderPlan, cycle: SubmitContext
) -> SignalOutcome:
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
        return _send_refused(signal, attempt, cycle, exc)
    except BrokerRateLimited as exc:
        return _send_rate_limited(signal, attempt, cycle, exc)
    except BrokerError as exc:
        return _send_failed(signal, attempt, cycle, exc)
    # Its RESPONSE event is written with the post-send work (`orders_accepted_finish`).
    return _accepted(signal, attempt, order, cycle, Outcome.SUBMITTED, response=True)


def _send_refused(
    signal: Signal, attempt: OrderAttempt, cycle: SubmitContext, exc: BrokerRejected
) -> SignalOutcome:
    """Alpaca refused the request (not for the credentials): the order is rejected, unless the
    refusal says an earlier send of this client_order_id landed."""
    if exc.is_duplicate_client_order_id:
        # An earlier send landed: that order is this signal's order.
        look = _look_up(attempt, cycle)
        if look.order is not None:
            return _accepted(signal, attempt, look.order, cycle, Outcome.ADOPTED)
        return _unknown(signal, attempt, cycle, "duplicate client_order_id but look-up failed")
    return _reject(signal, attempt, cycle, f"Alpaca rejected the order: {exc.message}")


def _send_rate_limited(
    signal: Signal, attempt: OrderAttempt, cycle: SubmitContext, exc: BrokerRateLimited
) -> SignalOutcome:
    """A 429: not applied; the outcome stops the call (the limiter pauses every worker)."""
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


def _send_failed(
    signal: Signal, attempt: OrderAttempt, cycle: SubmitContext, exc: BrokerError
) -> SignalOutcome:
    """No answer, or one that cannot be read: unless the request surely never left, the order
    is looked up by client_order_id, never resent blindly."""
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


def _accepted(
    signal: Signal,
    attempt: OrderAttempt,
    order: Order,
    cycle: SubmitContext,
    outcome: str,
    *,
    response: bool = False,
) -> SignalOutcome:
    """The broker has the order: its post-send work (the attempt takes its state, the signal
    moves PENDING -> SUBMITTED and on when the order is final) is queued on the context and
    done in a batch (`orders_accepted_finish`)."""
    result = SignalOutcome(signal.id, attempt.client_order_id, outcome, order.status, order.id)
    cycle.accepted.append(AcceptedOrder(signal, attempt, order, result, response=response))
    return result


def _reject(
    signal: Signal,
    attempt: OrderAttempt,
    cycle: SubmitContext,
    reason: str,
    *,
    by_validation: bool = False,
) -> SignalOutcome:
    status_from = attempt.status
    attempt.status = Status.REJECTED
    attempt.reason = db_text(reason)  # may quote the broker or the document
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
    signal_move_on_version(
        signal, attempt, SignalStatus.PENDING, SignalStatus.REJECTED, reason, cycle
    )
    return SignalOutcome(signal.id, attempt.client_order_id, Outcome.REJECTED, reason)


def _unknown(
    signal: Signal, attempt: OrderAttempt, cycle: SubmitContext, reason: str
) -> SignalOutcome:
    status_from = attempt.status
    attempt.status = Status.UNKNOWN
    attempt.reason = db_text(reason)  # may quote the broker
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
    attempt_release(attempt=attempt)
    return SignalOutcome(signal.id, attempt.client_order_id, Outcome.DEFERRED, reason)
