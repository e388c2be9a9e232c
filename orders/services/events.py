"""The one writer of ``OrderEvent`` and ``OrderExecution`` rows: redacted, chained, append-only.

Services build events with :func:`order_event_build` and store them with
:func:`order_events_append` (or both at once with :func:`order_event_record`); nothing else
creates events, so every event is redacted and takes its place in the hash chain
(:mod:`audit.chain`). Append events last in a transaction: the chain stays locked until it ends.
"""

from collections.abc import Iterable
from typing import Any

from django.conf import settings

from audit.chain import chain_append
from brokerops.redaction import redact
from brokerops.text import db_json, db_text
from orders.models import OrderAttempt, OrderEvent, OrderExecution


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
    """An unsaved event (for :func:`order_events_append`), its payload and message redacted."""
    secrets = _secrets()
    return OrderEvent(
        attempt=attempt,
        kind=kind,
        # Outside text (a broker's message, its raw order) made safe for the columns.
        message=db_text(redact(message, secrets=secrets)),
        payload=db_json(redact(payload if payload is not None else {}, secrets=secrets)),
        http_status=http_status,
        status_from=status_from,
        status_to=status_to,
        actor=actor[:150],
    )


def order_events_append(events: Iterable[OrderEvent]) -> list[OrderEvent]:
    """Store built events at the end of the chain, in one transaction (the caller's, if any)."""
    return chain_append(events)


def order_event_record(**fields: Any) -> OrderEvent:
    """Build and store one event (see :func:`order_event_build`)."""
    (event,) = order_events_append([order_event_build(**fields)])
    return event


def order_executions_append(executions: Iterable[OrderExecution]) -> list[OrderExecution]:
    """Store the stream's executions (fills) at the end of their chain, in one transaction (the
    caller's, if any): the only way an execution is written."""
    return chain_append(executions)
