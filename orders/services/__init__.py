"""Order services: submission of PENDING signals, sync with the broker, the audit events.

Everything that changes an ``OrderAttempt`` or moves a signal because of an order goes through
here, so reconciliation and the order cycle apply the broker's facts the same way.
"""

from .broker_state import (
    AttemptChange,
    order_attempt_adopt,
    order_attempts_apply_broker_orders,
    order_attempts_mark_missing,
)
from .events import order_event_record
from .submit import SubmitResult, order_submit, orders_submit_pending
from .sync import SyncResult, order_attempts_sync

__all__ = [
    "AttemptChange",
    "SubmitResult",
    "SyncResult",
    "order_attempt_adopt",
    "order_attempts_apply_broker_orders",
    "order_attempts_mark_missing",
    "order_attempts_sync",
    "order_event_record",
    "order_submit",
    "orders_submit_pending",
]
