"""A small audit trail written through the services' writers, for the audit tests."""

from decimal import Decimal

from audit.chain import chain_append
from orders.models import OrderEvent
from orders.services.events import order_event_build, order_events_append
from reconciliation.models import Mismatch, RunEvent
from reconciliation.records import run_event_record
from tests import factories


def write_trail(*, events: int = 6) -> dict:
    """An attempt with ``events`` events, a run with two mismatches and its events."""
    attempt = factories.order_attempt(status="filled")  # what its events say
    order_events_append(
        order_event_build(
            attempt=attempt,
            kind=OrderEvent.Kind.STATUS_CHANGED,
            message=f"event {i}",
            payload={"i": i, "qty": "1.5", "nested": {"b": [1, 2], "a": None}},
            status_from="open",
            status_to="filled",
        )
        for i in range(events)
    )
    run = factories.reconciliation_run()
    run_event_record(run=run, kind=RunEvent.Kind.STARTED, payload={"trigger": "schedule"})
    mismatches = chain_append(
        [
            Mismatch(
                run=run,
                kind=Mismatch.Kind.QTY_MISMATCH,
                severity=Mismatch.Severity.WARNING,
                symbol="MSFT",
                expected_qty=Decimal("10"),
                actual_qty=Decimal("7.25"),
            ),
            Mismatch(
                run=run,
                kind=Mismatch.Kind.ORPHAN_POSITION,
                severity=Mismatch.Severity.CRITICAL,
                symbol="AAPL",
                signal_id="sig-1",
                action=Mismatch.Action.REPAIR_STARTED,
            ),
        ]
    )
    chain_append(
        [
            RunEvent(
                run=run,
                kind=RunEvent.Kind.REPAIR_OUTCOME,
                mismatch=mismatches[1],
                action=Mismatch.Action.SIGNAL_CLOSED_MANUAL,
            )
        ]
    )
    run_event_record(run=run, kind=RunEvent.Kind.FINISHED, payload={"status": "succeeded"})
    return {"attempt": attempt, "run": run, "mismatches": mismatches}
