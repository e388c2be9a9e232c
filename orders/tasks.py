"""Celery tasks for orders: thin wrappers over :mod:`orders.services`."""

from collections import Counter

from celery import shared_task

from .services import order_attempts_sync, orders_submit_pending


@shared_task(name="orders.submit_pending")
def orders_submit_pending_task() -> dict[str, int]:
    """One order cycle for PENDING signals; idempotent (client_order_id makes resends harmless)."""
    return orders_submit_pending().counts()


@shared_task(name="orders.sync_open")
def order_attempts_sync_task(*, attempt_ids: list[int] | None = None) -> dict[str, int]:
    """Refresh open order attempts (or the given ones) from the broker in bulk."""
    return order_attempts_sync(attempt_ids=attempt_ids).counts()


@shared_task(name="orders.resync")
def order_attempts_resync_task(*, attempt_ids: list[int], actor: str) -> dict[str, int]:
    """An operator's re-sync of these attempts; each gets its outcome recorded (counts by
    result returned). Delivered twice, it syncs again and records a second outcome: harmless."""
    from .services.resync import order_attempts_resync

    outcomes = order_attempts_resync(attempt_ids=attempt_ids, actor=actor)
    return dict(Counter(o.result.value for o in outcomes))
