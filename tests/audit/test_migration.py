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


BEFORE_CHAINED_FILLS = [
    ("orders", "0007_attempt_signal_ref"),
    ("reconciliation", "0007_run_queued_requested"),
]


def test_executions_and_mismatch_signals_stored_before_their_chain_are_chained_by_it():
    from audit.chain import chain_append

    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    old = _migrate(BEFORE_CHAINED_FILLS)
    try:
        Attempt = old.get_model("orders", "OrderAttempt")
        Execution = old.get_model("orders", "OrderExecution")
        Run = old.get_model("reconciliation", "ReconciliationRun")
        OldMismatch = old.get_model("reconciliation", "Mismatch")
        OldSignal = old.get_model("reconciliation", "MismatchSignal")
        attempt = Attempt.objects.create(
            client_order_id="bo-old-entry", symbol="AAPL", side="buy", order_type="market"
        )
        when = datetime(2026, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)
        for i in range(3):
            Execution.objects.create(
                execution_id=f"e-{i}",
                attempt=attempt,
                event="fill",
                qty=Decimal("4"),
                price=Decimal("190.123456"),
                position_qty=Decimal(4 * (i + 1)),
                executed_at=when if i else None,
                received_at=when,
            )
        run = Run.objects.create(trigger="schedule", status="succeeded")
        (mismatch,) = chain_append(
            [OldMismatch(run=run, kind="QTY_MISMATCH", severity="warning", symbol="MSFT")]
        )
        OldSignal.objects.bulk_create(
            [OldSignal(mismatch=mismatch, signal_id=s) for s in ("s-a", "s,b")]
        )
    finally:
        new = _migrate(latest)

    Execution = new.get_model("orders", "OrderExecution")
    hashes = list(Execution.objects.order_by("pk").values_list("prev_hash", "hash"))
    assert len(hashes) == 3 and hashes[0][0] == "" and all(len(h) == 64 for _, h in hashes)
    result = audit_verify(trigger="command", processes=1)
    assert result.ok, result.verification.first_problem
    assert result.reports["order_executions"].rows == 3
    assert result.reports["mismatch_signals"].rows == 2
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Execution.objects.update(qty=Decimal("3000"))
    Signal = new.get_model("reconciliation", "MismatchSignal")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        Signal.objects.all().delete()
