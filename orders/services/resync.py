"""Operator-requested re-sync of order attempts (the admin action)."""

from collections.abc import Sequence

from django.db import transaction

from orders.models import OrderAttempt, OrderEvent

from .events import order_event_build, order_events_append


def order_attempts_request_resync(*, attempt_ids: Sequence[int], actor: str) -> int:
    """Record who asked on each attempt, then enqueue one sync of exactly those attempts."""
    from orders.tasks import order_attempts_sync_task

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
        transaction.on_commit(lambda: order_attempts_sync_task.delay(attempt_ids=ids))
    return len(attempts)
