"""Celery tasks for orders: thin wrappers over :mod:`orders.services`."""

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
