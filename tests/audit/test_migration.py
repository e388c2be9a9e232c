"""The migration chains the rows written before the chain existed, then makes them append-only."""

from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor

from audit.services import audit_verify

pytestmark = pytest.mark.django_db(transaction=True)
BEFORE = [("orders", "0003_hardening"), ("reconciliation", "0004_hardening")]


def _migrate(targets):
    executor = MigrationExecutor(connection)
    executor.loader.build_graph()
    executor.migrate(targets)
    return executor.loader.project_state(targets).apps


def test_rows_written_before_the_chain_are_chained_by_the_migration():
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    old = _migrate(BEFORE)
    try:
        Attempt = old.get_model("orders", "OrderAttempt")
        Event = old.get_model("orders", "OrderEvent")
        Run = old.get_model("reconciliation", "ReconciliationRun")
        OldMismatch = old.get_model("reconciliation", "Mismatch")
        attempt = Attempt.objects.create(
            client_order_id="bo-old-entry", symbol="AAPL", side="buy", order_type="market"
        )
        when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        for i in range(5):
            Event.objects.create(
                attempt=attempt,
                kind="response",
                message=f"old {i}",
                payload={"b": i, "a": [i]},
                created_at=when,
            )
        run = Run.objects.create(trigger="schedule", status="succeeded")
        OldMismatch.objects.create(
            run=run,
            kind="QTY_MISMATCH",
            severity="warning",
            symbol="MSFT",
            expected_qty=Decimal("10.5"),
            actual_qty=Decimal("3"),
            created_at=when,
        )
    finally:
        new = _migrate(latest)

    Event = new.get_model("orders", "OrderEvent")
    hashes = list(Event.objects.order_by("pk").values_list("prev_hash", "hash"))
    assert len(hashes) == 5 and hashes[0][0] == "" and all(len(h) == 64 for _, h in hashes)
    result = audit_verify(trigger="command", processes=1)
    assert result.ok, result.verification.first_problem
    assert result.reports["order_events"].rows == 5
    assert result.reports["mismatches"].rows == 1
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Event.objects.update(message="rewritten")
