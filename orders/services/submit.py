"""Order submission: PENDING signals become orders at Alpaca, exactly once (the cycle driver).

The rules (docs/design.md section 5):
- the attempt row is written before any HTTP call; every step appends an OrderEvent;
- the client_order_id is derived from the signal, so a resend can never create a second order:
  Alpaca answers 422 "client_order_id must be unique" and the earlier order is adopted;
- an unknown outcome (timeout, reset, 5xx, unparseable response) is never resent blindly: the
  attempt becomes UNKNOWN and the next step for it is a look-up by client_order_id;
- the signal moves PENDING -> SUBMITTED only after the broker accepted the order.

The cycle, in the modules of `orders.services`: `context` (what a call is checked against, the
re-read), `claim` (the attempt row, one worker's), `send` (one signal to the broker and what
its answer means), `finish` (the post-send work of accepted orders, in batches), and this
module, which drives them over a batch of documents.

Everything a call does is one account's (docs/design.md section 16): it reads that account's
PENDING signals (`AccountScope`), claims them in its claim space (its client_order_id prefix)
and sends them through its gateway; an account's cycles never overlap (a single-flight lock of
its own), another account's never wait for them.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from django.conf import settings

from audit.services import chain_heads_record_moved
from brokerops import metrics
from brokerops.accounts import configured
from brokerops.alpaca import BrokerError, BrokerRejected, broker_gateway
from brokerops.intent.factory import get_signal_store
from brokerops.intent.schema import InvalidSignal, Signal, SignalStatus
from brokerops.intent.store import AccountScope, SignalStore, SignalStoreError
from brokerops.locks import single_flight
from brokerops.logs import log_context
from orders.client_order_id import client_order_id_for
from orders.models import OrderAttempt, OrderEvent

from .accounts import SUBMIT_LOCK, account_lock, account_scope
from .claim import attempt_release, attempts_claim_new
from .context import (
    AcceptedOrder,
    PendingView,
    SignalReread,
    SubmitContext,
    submit_context_open,
)
from .events import order_event_record
from .finish import orders_accepted_finish
from .invalid import reject_invalid_signal
from .outcomes import Outcome, SignalOutcome, SubmitResult
from .send import signal_submit_one

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway

logger = logging.getLogger(__name__)


#: Signals a call takes together: one re-read of their documents (docs/design.md section 3), sent
#: in order.
CHUNK = 20
#: Accepted orders whose post-send work (`orders_accepted_finish`) a cycle does together.
FINISH_BATCH = 50


@dataclass
class SubmitBatch:
    """What `order_signals_submit` did: one outcome per signal handled, in order."""

    outcomes: list[SignalOutcome] = field(default_factory=list)
    #: With ``finish=False``: the accepted orders whose post-send work the caller still owes.
    accepted: list[AcceptedOrder] = field(default_factory=list)
    #: Not attempted: the broker rate-limited an earlier one (the limiter pauses everyone).
    unsent: list[Signal] = field(default_factory=list)


def order_signals_submit(
    *,
    documents: Sequence[Signal | InvalidSignal],
    gateway: AlpacaGateway,
    store: SignalStore,
    actor: str,
    finish: bool = True,
    on_outcome: Callable[[SignalOutcome], None] | None = None,
    view: PendingView | None = None,
    account: str | AccountScope | None = None,
) -> SubmitBatch:
    """Send PENDING signals of ``account`` (the default account for None) through ``gateway``,
    that account's: the one entry point of the cycle, `order_submit` and the watcher. A
    signal of another account is not sent (`_not_this_accounts`).

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

    scope = account if isinstance(account, AccountScope) else account_scope(account)
    signals = _signals_to_send(documents, scope=scope, store=store, actor=actor, record=record)
    if not signals:
        return batch
    context = submit_context_open(signals, gateway=gateway, store=store, actor=actor, scope=scope)
    _signals_send(signals, context=context, batch=batch, view=view, record=record, finish=finish)
    return batch


def _signals_send(
    signals: list[Signal],
    *,
    context: SubmitContext,
    batch: SubmitBatch,
    view: PendingView | None,
    record: Callable[[SignalOutcome], SignalOutcome],
    finish: bool,
) -> None:
    """The signals in chunks of `CHUNK` (`_chunk_submit`) until a 429 stops the call (the rest
    in ``batch.unsent``); the accepted orders' post-send work every `FINISH_BATCH` orders and
    before returning (with ``finish``), before raising in any case; what it leaves to the
    caller in ``batch.accepted``."""
    try:
        for start in range(0, len(signals), CHUNK):
            chunk = signals[start : start + CHUNK]
            halted_at = _chunk_submit(chunk, context=context, view=view, record=record)
            if halted_at is not None:
                batch.unsent = [*chunk[halted_at + 1 :], *signals[start + len(chunk) :]]
                return
            if finish and len(context.accepted) >= FINISH_BATCH:
                _accepted_finish(context)
    except BaseException:
        if context.accepted:  # a 401 (or a bug) stops the call: what was sent is finished first
            _accepted_finish(context)
        raise
    finally:
        if finish and context.accepted:
            _accepted_finish(context)
        batch.accepted = context.accepted


def _signals_to_send(
    documents: Sequence[Signal | InvalidSignal],
    *,
    scope: AccountScope,
    store: SignalStore,
    actor: str,
    record: Callable[[SignalOutcome], SignalOutcome],
) -> list[Signal]:
    """The signals of ``documents`` to send; the others are decided now: a document that does
    not parse is rejected (its attempt the account's), a signal of another account is not
    sent (`_not_this_accounts`)."""
    account = scope.accounts.get(scope.name)
    prefix = account.client_order_id_prefix
    signals: list[Signal] = []
    for doc in documents:
        if isinstance(doc, InvalidSignal):
            reject = partial(reject_invalid_signal, doc, store=store, actor=actor, account=account)
            record(_guarded(doc.id, reject, prefix=prefix))
        elif scope.owner(doc) != scope.name:
            record(_not_this_accounts(doc, scope, prefix))
        else:
            signals.append(doc)
    return signals


def _chunk_submit(
    chunk: list[Signal],
    *,
    context: SubmitContext,
    view: PendingView | None,
    record: Callable[[SignalOutcome], SignalOutcome],
) -> int | None:
    """One chunk: its new attempts claimed together, its documents re-read together, each
    signal sent in order. Returns the index of the signal whose outcome stops the call (a 429),
    else None."""
    claimed = attempts_claim_new(signals=chunk, account=context.account)
    reread = SignalReread(context.store, [s.id for s in chunk], view)
    try:
        for i, signal in enumerate(chunk):
            coid = client_order_id_for(signal_id=signal.id, prefix=context.prefix)
            attempt = claimed.pop(signal.id, None)
            with log_context(client_order_id=coid):
                outcome = record(
                    _guarded(
                        signal.id,
                        lambda s=signal, a=attempt: signal_submit_one(
                            signal=s, cycle=context, reread=reread, claimed=a
                        ),
                        prefix=context.prefix,
                    )
                )
            if outcome.halts_cycle:
                return i
    finally:
        for attempt in claimed.values():  # not reached (429, 401): free at once
            attempt_release(attempt=attempt)
    return None


def _accepted_finish(context: SubmitContext) -> None:
    orders_accepted_finish(
        accepted=context.accepted, store=context.store, gateway=context.gateway, actor=context.actor
    )
    context.accepted = []


def orders_submit_pending(
    *,
    account: str | None = None,
    gateway: AlpacaGateway | None = None,
    store: SignalStore | None = None,
    limit: int | None = None,
    shard: tuple[int, int] | None = None,
    actor: str = "order-cycle",
    result: SubmitResult | None = None,
) -> SubmitResult:
    """One order cycle of ``account`` (the default account for None): every PENDING signal of
    that account (up to ``limit``, default ``ORDER_BATCH_SIZE``), sent through ``gateway``
    (default: the account's, `broker_gateway`).

    ``result``, when given, is filled as the cycle goes (and returned), so a caller still has
    the outcomes of the signals handled before an error that stopped the cycle (a 401, the
    broker down).

    Single-flight per account (the lock ``orders-submit:<account>``, one per shard): while
    another cycle of the account runs, this one does nothing and says so
    (``SubmitResult.skipped``). Reads the account's signals in bulk (`AccountScope`: a signal
    naming an unknown account is the default account's to reject), then hands them to
    `order_signals_submit` (assets, positions and latest prices in bulk, one order per
    signal). A 429 stops the cycle (the gateway's limiter pauses every worker of the account);
    what was not sent waits for the next cycle. A failure on one signal is recorded on it and
    the cycle goes on; only a 401 (bad keys) stops it (raised). A PENDING document whose status
    reads PENDING but that does not parse is REJECTED with the reasons (nothing is sent); one
    whose status cannot be read is never touched. ``shard=(index, count)`` takes only the
    signals whose id hashes to ``index`` (of ``count``), so parallel workers split the work
    instead of contending for the same signals.
    """
    scope = account_scope(account)
    result = result if result is not None else SubmitResult()
    result.account = scope.name
    lock = account_lock(SUBMIT_LOCK, scope.name)
    if shard is not None:
        lock += f":{shard[0]}/{shard[1]}"
    with single_flight(lock) as acquired:
        if not acquired:
            result.skipped = f"another order cycle of account {scope.name!r} holds the lock"
            logger.info("order cycle: %s", result.skipped)
            return result
        return _cycle(
            scope,
            gateway=gateway or broker_gateway(scope.name),
            store=store or get_signal_store(),
            limit=limit or settings.ORDER_BATCH_SIZE,
            shard=shard,
            actor=actor,
            result=result,
        )


def _cycle(
    scope: AccountScope,
    *,
    gateway: AlpacaGateway,
    store: SignalStore,
    limit: int,
    shard: tuple[int, int] | None,
    actor: str,
    result: SubmitResult,
) -> SubmitResult:
    read = store.read_for(scope, statuses=[SignalStatus.PENDING])
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
            account=scope,
        )
    result.api_calls = calls.total
    chain_heads_record_moved(recorded_by=actor)  # the cycle's rows are covered at its end
    return result


def _not_this_accounts(signal: Signal, scope: AccountScope, prefix: str) -> SignalOutcome:
    """A signal of another account handed to this one's call: never sent here (an order never
    goes to another account than its signal's, docs/design.md section 16); its own account's
    work takes it."""
    coid = client_order_id_for(signal_id=signal.id, prefix=prefix)
    why = f"names account {signal.account!r}: not sent by account {scope.name!r}"
    return SignalOutcome(signal.id, coid, Outcome.WITHDRAWN, why)


def _guarded(signal_id: str, submit: Callable[[], SignalOutcome], *, prefix: str) -> SignalOutcome:
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
    coid = client_order_id_for(signal_id=signal_id, prefix=prefix)
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
    """Submit one PENDING signal through its own account (see :func:`orders_submit_pending`
    for the rules): ``gateway`` must be that account's (default: `broker_gateway`). A signal
    naming an unknown account is rejected, as the default account's cycle does."""
    accounts = configured()
    scope = AccountScope(accounts.owner(signal.account) or accounts.rows_owner, accounts)
    # The signal itself, or an InvalidSignal naming its unknown account (the rows' owner's).
    document = scope.take(signal) or signal
    batch = order_signals_submit(
        documents=[document],
        gateway=gateway or broker_gateway(scope.name),
        store=store or get_signal_store(),
        actor=actor,
        account=scope,
    )
    return batch.outcomes[0]
