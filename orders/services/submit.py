"""Order submission: PENDING signals become orders at Alpaca, exactly once.

The rules (docs/design.md section 5):
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
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from audit.services import chain_heads_record_moved
from brokerops import metrics
from brokerops.alpaca import (
    BrokerError,
    BrokerNotFound,
    BrokerRateLimited,
    BrokerRejected,
    Order,
    Position,
    broker_gateway,
)
from brokerops.intent.factory import get_signal_store
from brokerops.intent.schema import (
    InvalidSignal,
    Signal,
    SignalStatus,
    audit_signal_id,
)
from brokerops.intent.store import (
    SignalStore,
    SignalStoreError,
)
from brokerops.logs import log_context
from brokerops.text import db_text
from orders import lifecycle
from orders.client_order_id import client_order_id_for
from orders.matching import order_differences
from orders.models import OrderAttempt, OrderEvent
from orders.validation import OrderPlan, RiskLimits, order_plan

from .broker_state import (
    attempts_read_current,
    order_attempts_apply_broker_orders,
    signals_follow_attempts,
)
from .conflicts import signals_submitted_after_send
from .events import order_event_build, order_event_record, order_events_append
from .existing import attempt_existing_follow, signal_move_on_version
from .invalid import reject_invalid_signal
from .outcomes import Outcome, SignalOutcome, SubmitResult

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway

logger = logging.getLogger(__name__)
Status = OrderAttempt.Status


#: Signals a call takes together: one re-read of their documents (docs/design.md section 3), sent
#: in order.
CHUNK = 20
#: A re-read older than this is done again before the next request of its chunk: the signal
#: sent is one its writer had PENDING at most this long before the request (plus the request).
REREAD_MAX_AGE_S = 0.25
#: Accepted orders whose post-send work (`orders_accepted_finish`) a cycle does together.
FINISH_BATCH = 50


@dataclass
class SubmitContext:
    """What every order of one call is checked against (read once, `submit_context_open`), and
    the accepted orders whose post-send work is still to do."""

    gateway: AlpacaGateway
    store: SignalStore
    actor: str
    positions: dict[str, Position]
    limits: RiskLimits
    prices: dict[str, Decimal]  # symbol_key -> latest trade price (Alpaca's market data)
    prices_error: str = ""  # why prices could not be read (orders needing one are deferred)
    accepted: list[AcceptedOrder] = field(default_factory=list)


@dataclass
class AcceptedOrder:
    """An order the broker has for a signal, whose post-send work is not done yet: the attempt
    takes the order's state, the signal moves PENDING -> SUBMITTED (and on when the order is
    final), with their audit rows (`orders_accepted_finish`)."""

    signal: Signal
    attempt: OrderAttempt
    order: Order
    outcome: SignalOutcome
    response: bool  # the broker's answer to our request (its RESPONSE event is still due)


@dataclass
class SubmitBatch:
    """What `order_signals_submit` did: one outcome per signal handled, in order."""

    outcomes: list[SignalOutcome] = field(default_factory=list)
    #: With ``finish=False``: the accepted orders whose post-send work the caller still owes.
    accepted: list[AcceptedOrder] = field(default_factory=list)
    #: Not attempted: the broker rate-limited an earlier one (the limiter pauses everyone).
    unsent: list[Signal] = field(default_factory=list)


def submit_context_open(
    signals: Sequence[Signal], *, gateway: AlpacaGateway, store: SignalStore, actor: str
) -> SubmitContext:
    """What every order of a call is checked against, read in bulk: positions (a 401 or an
    unavailable broker raises: nothing can be sent) and the latest trade of every symbol."""
    positions = {p.symbol_key: p for p in gateway.list_positions()}
    prices: dict[str, Decimal] = {}
    prices_error = ""
    # With a max notional, every order by quantity is valued at the market's price too, its own
    # price or not (`orders.validation.risk_value`): a stop or limit names no bound on what it
    # fills at. Without one, only an order naming no price of its own needs the market's (the
    # crypto minimum cost), so a cycle of limit orders makes no market-data call.
    max_notional = bool(settings.ORDER_MAX_NOTIONAL)
    symbols = sorted(
        {
            s.symbol
            for s in signals
            if s.qty is not None
            and (max_notional or (s.limit_price is None and s.stop_price is None))
        }
    )
    if symbols:
        try:
            prices = gateway.latest_trade_prices(symbols)
        except BrokerRejected as exc:
            if exc.is_auth_error:
                raise
            prices_error = f"market data refused: {exc}"
        except BrokerError as exc:  # orders that need a price are deferred with this reason
            prices_error = f"market data unavailable: {exc}"
    return SubmitContext(
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


def order_signals_submit(
    *,
    documents: Sequence[Signal | InvalidSignal],
    gateway: AlpacaGateway,
    store: SignalStore,
    actor: str,
    finish: bool = True,
    on_outcome: Callable[[SignalOutcome], None] | None = None,
    view: PendingView | None = None,
) -> SubmitBatch:
    """Send PENDING signals: the one entry point of the cycle, `order_submit` and the watcher.

    A document that does not parse is REJECTED with its reasons (nothing sent). For the
    signals: positions and prices are read once (`submit_context_open`; a 401 or the broker
    unavailable raises), then, in chunks of `CHUNK`, each signal's attempt is claimed, the
    signal re-read (one read per chunk, done again when older than `REREAD_MAX_AGE_S`: a
    signal withdrawn by its writer is not sent), validated, risk-checked and sent. A 429 stops
    the call (`SubmitBatch.unsent`); a failure on one signal is recorded on it (FAILED) and the
    others go on; a 401 raises.

    The post-send work of accepted orders (their state, PENDING -> SUBMITTED, the audit rows)
    is done in batches (`orders_accepted_finish`): every `FINISH_BATCH` orders and before
    returning (or raising). With ``finish=False`` it is left to the caller
    (`SubmitBatch.accepted`), who must run `orders_accepted_finish` on it: the watcher does it
    on its own thread while its workers send. A process that dies in between leaves attempts
    CREATED with their request recorded, which the next claim resolves by client_order_id.
    ``on_outcome`` sees each outcome as it is decided. ``view`` (the watcher's listener) spares
    the re-read of a signal it saw PENDING in a snapshot at most `REREAD_MAX_AGE_S` old: the
    same guarantee as a read that old.
    """
    batch = SubmitBatch()

    def record(outcome: SignalOutcome) -> SignalOutcome:
        batch.outcomes.append(outcome)
        if on_outcome is not None:
            on_outcome(outcome)
        return outcome

    signals: list[Signal] = []
    for doc in documents:
        if isinstance(doc, InvalidSignal):
            record(
                _guarded(
                    doc.id, lambda doc=doc: reject_invalid_signal(doc, store=store, actor=actor)
                )
            )
        else:
            signals.append(doc)
    if not signals:
        return batch
    context = submit_context_open(signals, gateway=gateway, store=store, actor=actor)
    try:
        for start in range(0, len(signals), CHUNK):
            chunk = signals[start : start + CHUNK]
            claimed = _claim_new_attempts(chunk)
            reread = _Reread(store, [s.id for s in chunk], view)
            try:
                for i, signal in enumerate(chunk):
                    coid = client_order_id_for(
                        signal_id=signal.id, prefix=settings.CLIENT_ORDER_ID_PREFIX
                    )
                    attempt = claimed.pop(signal.id, None)
                    with log_context(client_order_id=coid):
                        outcome = record(
                            _guarded(
                                signal.id,
                                lambda s=signal, r=reread, a=attempt: _submit_one(
                                    s, context, r, claimed=a
                                ),
                            )
                        )
                    if outcome.halts_cycle:
                        batch.unsent = [*chunk[i + 1 :], *signals[start + len(chunk) :]]
                        return batch
            finally:
                for attempt in claimed.values():  # not reached (429, 401): free at once
                    _release(attempt)
            if finish and len(context.accepted) >= FINISH_BATCH:
                orders_accepted_finish(
                    accepted=context.accepted, store=store, gateway=gateway, actor=actor
                )
                context.accepted = []
    except BaseException:
        if context.accepted:  # a 401 (or a bug) stops the call: what was sent is finished first
            orders_accepted_finish(
                accepted=context.accepted, store=store, gateway=gateway, actor=actor
            )
            context.accepted = []
        raise
    finally:
        if finish and context.accepted:
            orders_accepted_finish(
                accepted=context.accepted, store=store, gateway=gateway, actor=actor
            )
            context.accepted = []
        batch.accepted = context.accepted
    return batch


def orders_accepted_finish(
    *,
    accepted: Sequence[AcceptedOrder],
    store: SignalStore,
    gateway: AlpacaGateway,
    actor: str,
) -> int:
    """The post-send work of accepted orders, together: each attempt takes its order's state
    (one bulk update; the RESPONSE and STATUS_CHANGED events in one append), the signals move
    PENDING -> SUBMITTED on the version their order was sent for (one `transition_many`: on
    Firestore one read and one batched commit), with their SIGNAL_TRANSITION events in one
    append, then those whose order is final already move on (a market order that filled).
    A signal rewritten meanwhile to ask for another order is a conflict, one withdrawn
    meanwhile gets its order canceled (`conflicts.signals_submitted_after_send`). Returns how
    many signals stand by their order (SUBMITTED).

    A signal store that fails here leaves the signals PENDING with their attempts at the
    broker (an ERROR event on each says so): the next cycle (or watcher) finds the attempt and
    moves the signal; nothing is sent again.
    """
    if not accepted:
        return 0
    by_signal: dict[str, AcceptedOrder] = {}
    for item in accepted:  # one attempt per signal: a repeat would be the same order
        by_signal.setdefault(item.signal.id, item)
    items = list(by_signal.values())
    # The stream consumer or a sync may have applied a fill since the send: the apply below
    # compares with the attempts as stored under their row locks, so the order state the send
    # saw never takes a fill back.
    responses = [
        order_event_build(
            attempt=item.attempt,
            kind=OrderEvent.Kind.RESPONSE,
            http_status=200,
            message=f"accepted: order {item.order.id} ({item.order.status})",
            payload=item.order.raw,
            actor=actor,
        )
        for item in items
        if item.response
    ]
    order_attempts_apply_broker_orders(
        pairs=[(item.attempt, item.order) for item in items],
        store=store,
        actor=actor,
        move_signals=False,
        leading_events=responses,
    )
    now = timezone.now()
    unstamped = [item.attempt for item in items if item.attempt.submitted_at is None]
    for attempt in unstamped:
        attempt.submitted_at = now
    if unstamped:
        OrderAttempt.objects.bulk_update(unstamped, ["submitted_at"])
    try:
        standing, moved = signals_submitted_after_send(
            items=items, store=store, gateway=gateway, actor=actor
        )
    except Exception as exc:
        why = f"signal not moved to SUBMITTED: {type(exc).__name__}: {exc}"
        logger.warning("%d order(s) accepted, %s; the next cycle moves them", len(items), why)
        expected = isinstance(exc, SignalStoreError)
        logger.log(logging.DEBUG if expected else logging.ERROR, "traceback", exc_info=exc)
        order_events_append(
            [
                order_event_build(
                    attempt=item.attempt,
                    kind=OrderEvent.Kind.ERROR,
                    message=why[:2000],
                    actor=actor,
                )
                for item in items
            ]
        )
        return 0
    # A fill the stream or a sync applied meanwhile found the signal PENDING and could not move
    # it: read the attempts as stored now, after the move to SUBMITTED (a later fill moves the
    # signal itself), so the order's end moves the signal in this batch, not at a later sync.
    attempts_read_current([i.attempt for i in standing])
    final = [i.attempt for i in standing if i.attempt.status not in lifecycle.OPEN]
    if final:  # final already: apply the signal move the order implies
        signals_follow_attempts(final, store=store, actor=actor)
    return moved


#: What a caller knows of the store without reading it (the watcher's listener): the documents
#: among the ids that were PENDING in a consistent read at most ``max_age_s`` old.
PendingView = Callable[[Sequence[str], float], Mapping[str, Signal | InvalidSignal]]


class _Reread:
    """The signals of a chunk as stored now: what ``view`` vouches for (PENDING in a consistent
    read at most `REREAD_MAX_AGE_S` old: the watcher's listener had it in its last snapshot),
    else read in one call when the first is needed and read again (what is left of the chunk)
    once older than `REREAD_MAX_AGE_S`."""

    def __init__(
        self, store: SignalStore, signal_ids: list[str], view: PendingView | None = None
    ) -> None:
        self._store, self._ids, self._view = store, signal_ids, view
        self._docs: dict[str, Signal | InvalidSignal | None] = {}
        self._read_at = float("-inf")

    def current(self, signal_id: str) -> Signal | InvalidSignal | None:
        """Raises `SignalStoreError` when the store cannot be read."""
        if self._view is not None:
            vouched = self._view([signal_id], REREAD_MAX_AGE_S).get(signal_id)
            if vouched is not None:
                return vouched
        if signal_id not in self._docs or time.monotonic() - self._read_at > REREAD_MAX_AGE_S:
            rest = self._ids[self._ids.index(signal_id) :]
            self._docs = self._store.get_many(rest)
            self._read_at = time.monotonic()
        return self._docs[signal_id]


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

    Reads signals in bulk, then hands them to `order_signals_submit` (assets, positions and
    latest prices in bulk, one order per signal). A 429 stops the cycle (the gateway's limiter
    pauses every worker); what was not sent waits for the next cycle. A failure on one signal is
    recorded on it and the cycle goes on; only a 401 (bad keys) stops it (raised). A PENDING
    document whose status reads PENDING but that does not parse is REJECTED with the reasons
    (nothing is sent); one whose status cannot be read is never touched. ``shard=(index,
    count)`` takes only the signals whose id hashes to ``index`` (of ``count``), so parallel
    workers split the work instead of contending for the same signals.
    """
    gateway = gateway or broker_gateway()
    store = store or get_signal_store()
    limit = limit or settings.ORDER_BATCH_SIZE
    read = store.read(statuses=[SignalStatus.PENDING])
    result = result if result is not None else SubmitResult()
    result.invalid_signals = len(read.invalid)
    signals, invalid = read.signals, read.invalid
    if shard is not None:
        index, count = shard
        signals = [s for s in signals if _shard_of(s.id, count) == index]
        invalid = [s for s in invalid if _shard_of(s.id, count) == index]
    documents: list[Signal | InvalidSignal] = [*invalid[:limit], *signals[:limit]]
    if not documents:
        return result
    with gateway.count_calls(current_thread_only=True) as calls:
        order_signals_submit(
            documents=documents,
            gateway=gateway,
            store=store,
            actor=actor,
            on_outcome=result.outcomes.append,
        )
    result.api_calls = calls.total
    chain_heads_record_moved(recorded_by=actor)  # the cycle's rows are covered at its end
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
    store = store or get_signal_store()
    batch = order_signals_submit(documents=[signal], gateway=gateway, store=store, actor=actor)
    return batch.outcomes[0]


def _submit_one(
    signal: Signal, cycle: SubmitContext, reread: _Reread, *, claimed: OrderAttempt | None = None
) -> SignalOutcome:
    """One signal; ``claimed``: its attempt, just created for this call (`_claim_new_attempts`)."""
    coid = client_order_id_for(signal_id=signal.id, prefix=settings.CLIENT_ORDER_ID_PREFIX)
    attempt = claimed or _claim_attempt(signal, coid)
    if attempt is None:
        return SignalOutcome(signal.id, coid, Outcome.BUSY, "another worker holds this signal")
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


def _attempt_describe(attempt: OrderAttempt, signal: Signal) -> None:
    """The attempt records the order of the document as it is decided on now: its writer may
    have changed it since the claim (nothing was sent for the attempt yet, or Alpaca said 404),
    and later decisions compare the document with what the attempt says was sent."""
    if not order_differences(attempt, signal):
        return
    fields = dict(
        symbol=signal.symbol,
        side=str(signal.side),
        order_type=str(signal.order_type),
        qty=signal.qty,
        notional=signal.notional,
        limit_price=signal.limit_price,
        stop_price=signal.stop_price,
        extended_hours=signal.extended_hours,
    )
    for name, value in fields.items():
        setattr(attempt, name, value)
    attempt.save(update_fields=list(fields))


def _attempt_for(signal: Signal, coid: str, now: datetime) -> OrderAttempt:
    audit_id = audit_signal_id(signal.id)
    return OrderAttempt(
        client_order_id=coid,
        signal_id=audit_id,
        signal_ref=OrderAttempt.signal_ref_for(signal.id, audit_id),
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


def _claim_new_attempts(signals: Sequence[Signal]) -> dict[str, OrderAttempt]:
    """The attempts of the signals that have none yet, created (and so claimed) together: one
    transaction, one append of their CREATED events, before any HTTP call. Signals with an
    attempt already, or all of them when another worker created one meanwhile (the insert
    fails as a whole), go through `_claim_attempt` one by one."""
    coids = {
        s.id: client_order_id_for(signal_id=s.id, prefix=settings.CLIENT_ORDER_ID_PREFIX)
        for s in signals
    }
    existing = set(
        OrderAttempt.objects.filter(client_order_id__in=coids.values()).values_list(
            "client_order_id", flat=True
        )
    )
    new = [s for s in signals if coids[s.id] not in existing]
    if len(new) < 2:  # one alone: the one-by-one claim costs the same
        return {}
    now = timezone.now()
    try:
        with transaction.atomic():
            attempts = OrderAttempt.objects.bulk_create(
                [_attempt_for(s, coids[s.id], now) for s in new]
            )
            order_events_append(
                [
                    order_event_build(
                        attempt=attempt,
                        kind=OrderEvent.Kind.CREATED,
                        message=f"attempt for signal {s.id!r}",
                        status_to=Status.CREATED,
                    )
                    for s, attempt in zip(new, attempts, strict=True)
                ]
            )
    except IntegrityError:
        return {}  # another worker was quicker for one of them: claim them one by one
    return {s.id: attempt for s, attempt in zip(new, attempts, strict=True)}


def _claim_attempt(signal: Signal, coid: str) -> OrderAttempt | None:
    """The attempt row for this signal, created before any HTTP call, claimed for this worker.

    Returns None when another worker created or touched it moments ago.
    """
    now = timezone.now()
    try:
        with transaction.atomic():
            attempt = _attempt_for(signal, coid, now)
            attempt.save(force_insert=True)
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
    if attempt.status in lifecycle.NOT_SENT:
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


def _pending_now(
    signal: Signal, attempt: OrderAttempt, cycle: SubmitContext, reread: _Reread
) -> Signal | SignalOutcome:
    """The signal as stored now (`_Reread`: at most `REREAD_MAX_AGE_S` old), before anything is
    sent (docs/design.md section 3: only a PENDING document wants an order).

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
        return current
    if current is None or isinstance(current, Signal):
        why = (
            "signal deleted by its writer before sending: not sent"
            if current is None
            else f"signal moved to {current.status} by its writer, no longer PENDING: not sent"
        )
        order_event_record(
            attempt=attempt, kind=OrderEvent.Kind.WITHDRAWN, message=why, actor=cycle.actor
        )
        _release(attempt)
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
    # Its RESPONSE event is written with the post-send work (`orders_accepted_finish`).
    return _accepted(signal, attempt, order, cycle, Outcome.SUBMITTED, response=True)


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
    _release(attempt)
    return SignalOutcome(signal.id, attempt.client_order_id, Outcome.DEFERRED, reason)


def _release(attempt: OrderAttempt) -> None:
    """Free the claim of an attempt nothing was sent for (the next claim takes it at once)."""
    OrderAttempt.objects.filter(pk=attempt.pk).update(
        updated_at=timezone.now() - timedelta(seconds=settings.ORDER_CLAIM_TIMEOUT_S)
    )
