"""Order sync: refresh open attempts from the broker in bulk, and move the signals a process
left behind final attempts.

A sync is one account's (docs/design.md section 16): the attempts of that account, asked of its
broker through its gateway. An attempt is never looked up at another account's broker (which
would answer 404 and mark it missing)."""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from django.conf import settings
from django.db.models import Q
from django.utils import timezone

from audit.services import chain_heads_record_moved
from brokerops.alpaca import broker_gateway
from brokerops.intent.factory import get_signal_store
from brokerops.intent.schema import SignalStatus, audit_signal_id
from brokerops.intent.store import AccountScope, SignalStore, TransitionOutcome
from brokerops.locks import single_flight
from orders import lifecycle
from orders.models import OrderAttempt
from orders.pairing import MISSING_REASON, orders_read_after, pair_attempts_with_orders

from .accounts import SYNC_LOCK, account_lock, account_scope
from .broker_state import (
    order_attempts_apply_broker_orders,
    order_attempts_mark_missing,
    signals_follow_attempts,
)
from .lookups import orders_confirm_absent

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway

logger = logging.getLogger(__name__)

# A CREATED attempt may be sent with its post-send work still to do (the stream's catch-up runs
# meanwhile: docs/design.md section 14): an order the list shows for it is applied like any
# other (the apply decides under the row lock; the POST answer applied later is older and
# ignored). One the list does not show is left alone: it may not be sent yet. Only recent ones:
# an older CREATED attempt belongs to a process that died, which the next claim resolves.
SENDING_STATUS = lifecycle.AttemptStatus.CREATED
SENDING_WINDOW = timedelta(minutes=15)
#: Final attempts whose SUBMITTED signal one sync moves at most (the rest: the next sync).
FOLLOW_MAX = 500


@dataclass(frozen=True)
class BrokerAnswer:
    """What the broker answered about one attempt in this sync: its order (``status``,
    ``filled_qty``, listed or looked up), a 404 (``found`` False), or nothing because it was not
    asked (``found`` None: listed too recently to be absent, or over the look-up budget)."""

    found: bool | None
    status: str = ""
    filled_qty: Decimal | None = None


@dataclass
class SyncResult:
    account: str = ""  # the account synced (docs/design.md section 16)
    skipped: str = ""  # why the sync did nothing (another sync of the account held its lock)
    attempts_seen: int = 0
    orders_listed: int = 0
    api_calls: int = 0
    changes: Counter = field(default_factory=Counter)  # status_to -> count
    missing: int = 0
    unconfirmed: int = 0
    signals_followed: int = 0  # SUBMITTED signals moved after their final attempt
    answers: dict[int, BrokerAnswer] = field(default_factory=dict)  # attempt pk -> this read

    def counts(self) -> dict[str, int]:
        return {
            "attempts_seen": self.attempts_seen,
            "orders_listed": self.orders_listed,
            "api_calls": self.api_calls,
            "updated": sum(self.changes.values()),
            "missing": self.missing,
            "unconfirmed": self.unconfirmed,
            "signals_followed": self.signals_followed,
            **{f"now_{status}": n for status, n in sorted(self.changes.items())},
        }

    def report(self) -> dict[str, object]:
        """The account and the counts (and why it was skipped, when it was): what the task
        returns and the commands print."""
        skipped = {"skipped": self.skipped} if self.skipped else {}
        return {"account": self.account, **self.counts(), **skipped}


def orders_sync_open(
    *, account: str | None = None, actor: str = "order-sync", store: SignalStore | None = None
) -> SyncResult:
    """The scheduled sync of ``account`` (the default account for None), single-flight per
    account (the lock ``orders-sync:<account>``): while another sync of the account runs, this
    one does nothing and says so (``SyncResult.skipped``). The stream's catch-up and a re-sync
    call `order_attempts_sync` itself: they never skip."""
    name = account_scope(account).name
    with single_flight(account_lock(SYNC_LOCK, name)) as acquired:
        if not acquired:
            why = f"another order sync of account {name!r} holds the lock"
            logger.info("order sync: %s", why)
            return SyncResult(account=name, skipped=why)
        return order_attempts_sync(account=name, store=store, actor=actor)


def order_attempts_sync(
    *,
    account: str | None = None,
    attempt_ids: Sequence[int] | None = None,
    gateway: AlpacaGateway | None = None,
    store: SignalStore | None = None,
    actor: str = "order-sync",
) -> SyncResult:
    """Refresh the open attempts of ``account`` (the default account for None), or the given
    ones of that account (the others are not its to ask about), from one paginated bulk read of
    orders through ``gateway``, the account's (default: `broker_gateway`).

    CREATED attempts of the last `SENDING_WINDOW` take the order the list shows for them (an
    order sent whose post-send work is not done yet); absent from the list, they are left to
    the submit cycle. Any other attempt absent from the list (and older than ``ORDER_GRACE_S``)
    is looked up by
    client_order_id, at most ``RECONCILE_MAX_CONFIRMATIONS`` per call; a 404 marks it MISSING
    (canceled by hand, most likely) and its signal CANCELED. Safe to run concurrently and to
    repeat: applying the same broker state twice changes nothing.

    A full sync (no ``attempt_ids``) then moves the signals left SUBMITTED behind a final
    attempt (`signals_follow_final_attempts`): a process that died between the two commits.
    """
    # Over ~60 lines by its docstring only.
    scope = account_scope(account)
    gateway = gateway or broker_gateway(scope.name)
    store = store or get_signal_store()
    attempts_qs = OrderAttempt.objects.filter(account=scope.name)
    if attempt_ids is None:
        attempts_qs = attempts_qs.filter(
            Q(status__in=lifecycle.AT_BROKER)
            | Q(status=SENDING_STATUS, created_at__gte=timezone.now() - SENDING_WINDOW)
        )
    else:
        attempts_qs = attempts_qs.filter(pk__in=list(attempt_ids))
    attempts = list(attempts_qs.order_by("created_at"))
    result = SyncResult(account=scope.name, attempts_seen=len(attempts))
    if attempts:
        _sync_attempts(attempts, gateway=gateway, store=store, actor=actor, result=result)
    if attempt_ids is None:
        result.signals_followed = signals_follow_final_attempts(
            store=store, actor=actor, scope=scope
        )
    chain_heads_record_moved(recorded_by=actor)  # the sync's rows are covered at its end
    return result


def _sync_attempts(
    attempts: list[OrderAttempt],
    *,
    gateway: AlpacaGateway,
    store: SignalStore,
    actor: str,
    result: SyncResult,
) -> None:
    now = timezone.now()
    with gateway.count_calls(current_thread_only=True) as calls:
        after = orders_read_after(oldest_attempt_at=attempts[0].created_at, now=now)
        orders = gateway.list_orders(status="all", after=after)
        result.orders_listed = len(orders)
        pairing = pair_attempts_with_orders(
            attempts, orders, now=now, grace=timedelta(seconds=settings.ORDER_GRACE_S)
        )
        check = orders_confirm_absent(
            [a for a in pairing.absent if a.status != SENDING_STATUS],  # maybe not sent yet
            gateway=gateway,
            calls=calls,
            budget=settings.RECONCILE_MAX_CONFIRMATIONS,
        )
        result.unconfirmed = len(check.unconfirmed)
    result.api_calls = calls.total
    pairs = pairing.paired + check.found
    for attempt, order in pairs:
        result.answers[attempt.pk] = BrokerAnswer(True, order.status, order.filled_qty)
    for attempt in check.missing:
        result.answers[attempt.pk] = BrokerAnswer(False)
    for change in order_attempts_apply_broker_orders(pairs=pairs, store=store, actor=actor):
        result.changes[change.status_to] += 1
    if check.missing:
        order_attempts_mark_missing(
            attempts=check.missing, store=store, actor=actor, why=MISSING_REASON
        )
        result.missing = len(check.missing)


def signals_follow_final_attempts(
    *, store: SignalStore, actor: str, scope: AccountScope, limit: int = FOLLOW_MAX
) -> int:
    """Move each SUBMITTED signal whose attempt is final to where its order ended, as the apply
    service does (`signals_follow_attempts`: conditional on SUBMITTED, with its event).

    The gap it closes: the apply service commits an attempt's final state, then moves the
    signal; a process that dies in between (stream consumer, sync, watcher) leaves the signal
    SUBMITTED, and neither the sync (open attempts) nor the cycle (PENDING signals) would take
    it again. Reads by index on both sides: the SUBMITTED signals (the store's status index:
    normally just the open orders), then their final entry attempts by ``signal_id``, oldest
    first, at most ``limit``. Returns how many signals moved.

    The signals are ``scope``'s; their attempts are followed whatever account made them (a
    signal moved to another account after its order was sent follows that order, which stays
    with the account that sent it).
    """
    submitted = store.read_for(scope, statuses=[SignalStatus.SUBMITTED]).signals
    if not submitted:
        return 0
    ids = [audit_signal_id(s.id) for s in submitted]
    attempts: list[OrderAttempt] = []
    for start in range(0, len(ids), 1000):
        attempts.extend(
            OrderAttempt.objects.filter(
                signal_id__in=ids[start : start + 1000], leg="entry", status__in=lifecycle.FINAL
            )
        )
        if len(attempts) >= limit:
            break
    attempts = sorted(attempts, key=lambda a: (a.created_at, a.pk))[:limit]
    if not attempts:
        return 0
    outcomes = signals_follow_attempts(attempts, store=store, actor=actor)
    moved = sum(1 for outcome in outcomes.values() if outcome == TransitionOutcome.APPLIED)
    logger.info("order sync: %d SUBMITTED signal(s) moved after their final attempt", moved)
    return moved
