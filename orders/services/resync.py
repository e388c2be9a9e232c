"""Operator-requested re-sync of order attempts (the admin action), and its recorded outcome.

The request records who asked on each attempt (``resync_requested``) and enqueues one re-sync of
exactly those attempts; the re-sync brings them to the broker's state (the order sync, acting as
``re-sync requested by <user>``) and leaves one ``resync_outcome`` event on each attempt saying
what the broker said: the status changed, nothing changed, the order was not found, or the broker
could not be asked (docs/design.md section 7: the outcome of every re-sync is recorded).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

from django.db import transaction

from audit.services import chain_heads_record_moved
from brokerops.alpaca import BrokerError
from orders.models import OrderAttempt, OrderEvent

from .events import order_event_build, order_events_append
from .sync import BrokerAnswer, order_attempts_sync

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway
    from brokerops.intent.store import SignalStore

logger = logging.getLogger(__name__)


class ResyncResult(StrEnum):
    """What a re-sync found for one attempt (the outcome event's ``payload["result"]``)."""

    STATUS_CHANGED = "status_changed"
    UNCHANGED = "unchanged"
    NOT_FOUND = "not_found"
    BROKER_UNAVAILABLE = "broker_unavailable"


@dataclass(frozen=True)
class ResyncOutcome:
    attempt_id: int
    result: ResyncResult
    status_from: str
    status_to: str
    message: str


def order_attempts_request_resync(*, attempt_ids: Sequence[int], actor: str) -> int:
    """Record who asked on each attempt, then enqueue one re-sync of exactly those attempts."""
    from orders.tasks import order_attempts_resync_task

    attempts = list(OrderAttempt.objects.filter(pk__in=list(attempt_ids)))
    with transaction.atomic():
        order_events_append(
            order_event_build(
                attempt=a,
                kind=OrderEvent.Kind.RESYNC_REQUESTED,
                message="re-sync requested in the admin",
                actor=actor,
            )
            for a in attempts
        )
        ids = [a.pk for a in attempts]
        transaction.on_commit(
            lambda: order_attempts_resync_task.delay(attempt_ids=ids, actor=actor)
        )
    return len(attempts)


def order_attempts_resync(
    *,
    attempt_ids: Sequence[int],
    actor: str,
    gateway: AlpacaGateway | None = None,
    store: SignalStore | None = None,
) -> list[ResyncOutcome]:
    """Sync exactly these attempts with the broker and record each one's outcome.

    Each attempt is asked of its own account's broker (docs/design.md section 16): the attempts
    are synced account by account, through each account's gateway (``gateway``, when given,
    serves every account: tests of one account). A broker that cannot be asked (down, rate
    limited, a malformed answer), or an account no longer configured, is an outcome too: it is
    recorded on that account's attempts (nothing changed) and logged, not raised; the operator
    may ask again.
    """
    before = _states(attempt_ids)
    if not before:
        return []
    errors: dict[int, str] = {}
    answers: dict[int, BrokerAnswer] = {}
    for account, pks in _by_account(list(before)).items():
        try:
            answers |= order_attempts_sync(
                account=account,
                attempt_ids=pks,
                gateway=gateway,
                store=store,
                actor=f"re-sync requested by {actor}",
            ).answers
        except (BrokerError, KeyError) as exc:  # KeyError: the account is not configured
            error = f"{type(exc).__name__}: {exc}"
            errors |= dict.fromkeys(pks, error)
            logger.error(
                "re-sync of %d attempt(s) of account %r for %s: %s", len(pks), account, actor, error
            )
    after = _states(list(before))
    outcomes = [
        _outcome(pk, before[pk], after.get(pk, before[pk]), errors.get(pk, ""), answers.get(pk))
        for pk in sorted(before)
    ]
    attempts = OrderAttempt.objects.in_bulk([o.attempt_id for o in outcomes])
    order_events_append(
        order_event_build(
            attempt=attempts[o.attempt_id],
            kind=OrderEvent.Kind.RESYNC_OUTCOME,
            status_from=o.status_from,
            status_to=o.status_to,
            message=o.message,
            payload={"result": o.result.value, "requested_by": actor},
            actor=actor,
        )
        for o in outcomes
    )
    chain_heads_record_moved(recorded_by=actor)
    return outcomes


def _by_account(attempt_ids: Sequence[int]) -> dict[str, list[int]]:
    """The attempts' ids, grouped by their account."""
    groups: dict[str, list[int]] = {}
    rows = OrderAttempt.objects.filter(pk__in=list(attempt_ids)).values_list("account", "pk")
    for account, pk in rows.order_by("account", "pk"):
        groups.setdefault(account, []).append(pk)
    return groups


def _states(attempt_ids: Sequence[int]) -> dict[int, str]:
    rows = OrderAttempt.objects.filter(pk__in=list(attempt_ids)).values_list("pk", "status")
    return dict(rows)


def _qty(value) -> str:
    if value is None:
        return ""
    text = format(value, "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def _said(answer: BrokerAnswer | None) -> str:
    """What the broker answered this time (never the status an earlier read left on the row)."""
    if answer is None or answer.found is None:
        return "not listed by Alpaca yet"
    if not answer.found:
        return "Alpaca answered 404: order not found by client_order_id"
    return f"Alpaca says {answer.status}, filled {_qty(answer.filled_qty) or 0}"


def _outcome(
    pk: int, status_from: str, status_to: str, error: str, answer: BrokerAnswer | None
) -> ResyncOutcome:
    said = _said(answer)
    if error and status_from == status_to:
        message = f"broker unavailable: {error}"
        return ResyncOutcome(pk, ResyncResult.BROKER_UNAVAILABLE, status_from, status_to, message)
    if status_to == OrderAttempt.Status.MISSING and status_from != status_to:
        message = "order not found at Alpaca (404 by client_order_id): attempt marked missing"
        return ResyncOutcome(pk, ResyncResult.NOT_FOUND, status_from, status_to, message)
    if status_from != status_to:
        message = f"status changed: {status_from} -> {status_to} ({said})"
        return ResyncOutcome(pk, ResyncResult.STATUS_CHANGED, status_from, status_to, message)
    message = f"unchanged: {status_to} ({said})"
    return ResyncOutcome(pk, ResyncResult.UNCHANGED, status_from, status_to, message)
