"""The claim: a signal's attempt row, written before any HTTP call, held by one worker.

The attempt is the signal's one order (its client_order_id derives from the signal,
docs/design.md section 5): whoever creates the row, or takes a stale one with a conditional
update, holds it; the others see the signal BUSY. A claim nothing was sent for is released at
once, so the next cycle (or watcher) takes it without waiting out ``ORDER_CLAIM_TIMEOUT_S``.

A claim is an account's (docs/design.md section 16): the client_order_id carries the account's
prefix and the row its name. A signal has one attempt whatever account claims it (one per
signal id and leg): a signal moved to another account after an attempt was made for it finds
that attempt, the other account's, and is never sent again (`orders.services.send`).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from brokerops.accounts import AccountConfig
from brokerops.intent.schema import Signal, audit_signal_id
from orders import lifecycle
from orders.client_order_id import client_order_id_for
from orders.models import OrderAttempt, OrderEvent

from .events import order_event_build, order_event_record, order_events_append

Status = OrderAttempt.Status


def attempts_claim_new(
    *, signals: Sequence[Signal], account: AccountConfig
) -> dict[str, OrderAttempt]:
    """The attempts of the signals that have none yet, created (and so claimed) together for
    ``account``: one transaction, one append of their CREATED events, before any HTTP call.
    Signals with an attempt already, or all of them when another worker created one meanwhile
    (the insert fails as a whole), go through `attempt_claim` one by one."""
    prefix = account.client_order_id_prefix
    coids = {s.id: client_order_id_for(signal_id=s.id, prefix=prefix) for s in signals}
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
                [_attempt_for(s, coids[s.id], now, account) for s in new]
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


def attempt_claim(*, signal: Signal, coid: str, account: AccountConfig) -> OrderAttempt | None:
    """The attempt row for this signal, created before any HTTP call, claimed for this worker.

    Returns None when another worker created or touched it moments ago. The signal's attempt
    of another account (it named that account when the attempt was made) is returned as it is,
    unclaimed: the caller never sends it (`attempt.account` is not ``account``).
    """
    now = timezone.now()
    try:
        with transaction.atomic():
            attempt = _attempt_for(signal, coid, now, account)
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
    attempt = OrderAttempt.objects.filter(client_order_id=coid).first()
    if attempt is None:  # the signal's one attempt is another account's (another prefix)
        entries = OrderAttempt.objects.filter(leg="entry")
        return entries.filter(signal_id=audit_signal_id(signal.id)).first()
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


def attempt_release(*, attempt: OrderAttempt) -> None:
    """Free the claim of an attempt nothing was sent for (the next claim takes it at once)."""
    OrderAttempt.objects.filter(pk=attempt.pk).update(
        updated_at=timezone.now() - timedelta(seconds=settings.ORDER_CLAIM_TIMEOUT_S)
    )


def attempt_order_fields(signal: Signal) -> dict[str, object]:
    """The attempt's columns that describe the order its signal asks for (set at the claim, and
    again when the document changed before anything was sent)."""
    return dict(
        symbol=signal.symbol,
        side=str(signal.side),
        order_type=str(signal.order_type),
        qty=signal.qty,
        notional=signal.notional,
        limit_price=signal.limit_price,
        stop_price=signal.stop_price,
        extended_hours=signal.extended_hours,
    )


def _attempt_for(signal: Signal, coid: str, now: datetime, account: AccountConfig) -> OrderAttempt:
    audit_id = audit_signal_id(signal.id)
    return OrderAttempt(
        account=account.name,
        client_order_id=coid,
        signal_id=audit_id,
        signal_ref=OrderAttempt.signal_ref_for(signal.id, audit_id),
        leg="entry",
        created_at=now,
        updated_at=now,
        **attempt_order_fields(signal),
    )
