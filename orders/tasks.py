"""Celery tasks for orders: thin wrappers over :mod:`orders.services`.

``orders.submit_pending`` and ``orders.sync_open`` are one account's work (keyword ``account``,
None: the default account; docs/design.md section 16): the fan-out enqueues one of each per
account, and each holds its account's single-flight lock (``orders-submit:<account>``,
``orders-sync:<account>``), so one account's runs never overlap and never wait for another's.
"""

from collections import Counter

from celery import shared_task

from .services import orders_submit_pending
from .services.sync import order_attempts_sync, orders_sync_open


@shared_task(name="orders.submit_pending")
def orders_submit_pending_task(*, account: str | None = None) -> dict[str, object]:
    """One order cycle for the PENDING signals of ``account``; idempotent (client_order_id
    makes resends harmless)."""
    return orders_submit_pending(account=account).report()


@shared_task(name="orders.sync_open")
def order_attempts_sync_task(
    *, account: str | None = None, attempt_ids: list[int] | None = None
) -> dict[str, object]:
    """Refresh the open order attempts of ``account`` (or the given ones of it) from its
    broker in bulk."""
    if attempt_ids is not None:
        return order_attempts_sync(account=account, attempt_ids=attempt_ids).report()
    return orders_sync_open(account=account).report()


@shared_task(name="orders.resync")
def order_attempts_resync_task(*, attempt_ids: list[int], actor: str) -> dict[str, int]:
    """An operator's re-sync of these attempts (each at its own account's broker); each gets
    its outcome recorded (counts by result returned). Delivered twice, it syncs again and
    records a second outcome: harmless."""
    from .services.resync import order_attempts_resync

    outcomes = order_attempts_resync(attempt_ids=attempt_ids, actor=actor)
    return dict(Counter(o.result.value for o in outcomes))
