"""Audit events of order attempts. Every payload is redacted before it is stored."""

from typing import Any

from django.conf import settings

from brokerops.redaction import redact
from orders.models import OrderAttempt, OrderEvent


def _secrets() -> tuple[str, ...]:
    return tuple(s for s in (settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY) if s)


def order_event_build(
    *,
    attempt: OrderAttempt,
    kind: str,
    message: str = "",
    payload: Any = None,
    http_status: int | None = None,
    status_from: str = "",
    status_to: str = "",
    actor: str = "",
) -> OrderEvent:
    """An unsaved event (for ``bulk_create``), its payload and message redacted."""
    secrets = _secrets()
    return OrderEvent(
        attempt=attempt,
        kind=kind,
        message=redact(message, secrets=secrets),
        payload=redact(payload if payload is not None else {}, secrets=secrets),
        http_status=http_status,
        status_from=status_from,
        status_to=status_to,
        actor=actor[:150],
    )


def order_event_record(**fields: Any) -> OrderEvent:
    """Build and save one event (see :func:`order_event_build`)."""
    event = order_event_build(**fields)
    event.save()
    return event
