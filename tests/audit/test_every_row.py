"""Every audit row is covered, the newest too (docs/design.md section 12).

Executions and a mismatch's signals are chained like the events; the rows that summarise events
(an attempt, a run) are cross-checked against them; heads are recorded at the end of every
writer's cycle, so deleting the newest rows (triggers off: PostgreSQL's replica role, SQLite's
dropped trigger) is named; the SQLite maintenance door opens for the reset paths only.
"""

from decimal import Decimal
from types import SimpleNamespace

import pytest
from django.db import DatabaseError, connection, transaction

from audit import triggers
from audit.models import ChainHead
from audit.services import audit_verify, chain_heads_record
from brokerops.intent.local import LocalSignalStore
from brokerops.intent.schema import SignalStatus
from orders.models import OrderAttempt, OrderEvent, OrderExecution
from orders.services.stream import trade_updates_apply
from reconciliation.diff import ReconciliationErrors
from reconciliation.models import MismatchSignal, ReconciliationRun, RunEvent
from reconciliation.records import run_event_record
from tests import factories
from tests.audit._trail import write_trail
from tests.orders.services.helpers import update
from tests.workspace.helpers import record_mismatch

pytestmark = pytest.mark.django_db
KEY = "test-audit-key-not-a-secret"


@pytest.fixture(autouse=True)
def _signed(settings):
    settings.AUDIT_HMAC_KEY = KEY


def sql(statement: str, params=()) -> None:
    with connection.cursor() as cursor:
        cursor.execute(statement, params)


def drop_triggers(*tables: str) -> None:
    triggers.remove(SimpleNamespace(connection=connection), list(tables))


def verify():
    return audit_verify(trigger="command", processes=1)


def problems(result) -> list[str]:
    return [str(p) for report in result.reports.values() for p in report.problems]


def fill(store, coid="bo-sig1-entry", execution_id="e-1", filled="4"):
    """A stream fill of 4 @ 187.5 for the attempt ``coid`` (through the stream's one writer)."""
    return trade_updates_apply(
        updates=[update(execution_id=execution_id, coid=coid, filled=filled)], store=store
    )


@pytest.fixture
def store():
    store = LocalSignalStore()
    store.put_documents(
        [
            (
                "sig1",
                {
                    "symbol": "AAPL",
                    "side": "buy",
                    "qty": 10,
                    "order_type": "market",
                    "status": SignalStatus.SUBMITTED.value,
                },
            )
        ]
    )
    return store


@pytest.fixture
def filled(store):
    attempt = factories.order_attempt(
        client_order_id="bo-sig1-entry", signal_id="sig1", status="open", broker_status="new"
    )
    fill(store)
    chain_heads_record(recorded_by="reconciliation run #1")
    return attempt


# Executions -------------------------------------------------------------------------------------


def test_an_execution_is_chained_and_a_changed_fill_is_named(filled):
    execution = OrderExecution.objects.get()
    assert len(execution.hash) == 64 and execution.prev_hash == ""
    assert verify().ok

    drop_triggers("orders_orderexecution")
    sql("UPDATE orders_orderexecution SET qty = 3000, price = 0.01 WHERE id = %s", [execution.pk])
    result = verify()

    assert not result.ok
    assert (
        f"order_executions row {execution.pk}: content does not match its hash: changed after"
        " it was written"
    ) in problems(result)


def test_executions_are_append_only_and_written_only_by_their_writer(filled):
    execution = OrderExecution.objects.get()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        OrderExecution.objects.update(qty=Decimal("3000"))
    with pytest.raises(TypeError, match="chain_append"):
        execution.save()
    with pytest.raises(TypeError, match="chain_append"):
        OrderExecution.objects.bulk_create([OrderExecution(attempt=filled, execution_id="x")])


# Mismatch signals -------------------------------------------------------------------------------


@pytest.fixture
def mismatch():
    row = record_mismatch(
        kind=ReconciliationErrors.QTY_MISMATCH, symbol="MSFT", signal_ids=("s-a", "s-b", "s-c")
    )
    chain_heads_record(recorded_by="reconciliation run #1")
    return row


def test_a_deleted_mismatch_signal_is_named(mismatch):
    ids = list(MismatchSignal.objects.order_by("pk").values_list("pk", flat=True))
    hashes = MismatchSignal.objects.values_list("hash", flat=True)
    assert len(ids) == 3 and all(len(h) == 64 for h in hashes)
    assert verify().ok

    drop_triggers("reconciliation_mismatchsignal")
    sql("DELETE FROM reconciliation_mismatchsignal WHERE id = %s", [ids[1]])
    result = verify()

    assert not result.ok
    assert any(
        p.startswith(f"mismatch_signals row {ids[2]}: prev_hash does not name the row before it")
        for p in problems(result)
    )


def test_a_changed_mismatch_signal_is_named(mismatch):
    row = MismatchSignal.objects.order_by("pk").first()
    drop_triggers("reconciliation_mismatchsignal")
    sql("UPDATE reconciliation_mismatchsignal SET signal_id = 'other' WHERE id = %s", [row.pk])
    assert f"mismatch_signals row {row.pk}: content does not match its hash" in (
        verify().verification.first_problem
    )


# Rows that summarise events ---------------------------------------------------------------------


def test_an_attempt_whose_status_disagrees_with_its_events_is_named(filled):
    assert OrderAttempt.objects.get().status == "filled"
    sql("UPDATE orders_orderattempt SET status = 'canceled' WHERE id = %s", [filled.pk])

    result = verify()

    assert not result.ok
    assert any(
        p.startswith(f"order_attempts row {filled.pk}: status canceled, its events say filled")
        for p in problems(result)
    ), problems(result)


def test_an_attempt_whose_filled_qty_disagrees_with_its_events_is_named(filled):
    sql("UPDATE orders_orderattempt SET filled_qty = 3000 WHERE id = %s", [filled.pk])

    result = verify()

    assert not result.ok
    assert any(
        p.startswith(f"order_attempts row {filled.pk}: filled_qty 3000, its events say 4")
        for p in problems(result)
    ), problems(result)


def test_a_run_whose_status_or_counts_disagree_with_its_events_is_named():
    run = factories.reconciliation_run(status=ReconciliationRun.Status.RUNNING)
    run_event_record(run=run, kind=RunEvent.Kind.STARTED)
    run.status = ReconciliationRun.Status.SUCCEEDED
    run.mismatches_found = 2
    run.save()
    run_event_record(
        run=run, kind=RunEvent.Kind.FINISHED, payload={"status": "succeeded", "mismatches_found": 2}
    )
    assert verify().ok

    sql("UPDATE reconciliation_reconciliationrun SET status = 'failed' WHERE id = %s", [run.pk])
    assert f"reconciliation_runs row {run.pk}: status failed, its events say succeeded: edited" in (
        problems(verify())
    )
    sql(
        "UPDATE reconciliation_reconciliationrun SET status = 'succeeded', mismatches_found = 0"
        " WHERE id = %s",
        [run.pk],
    )
    assert f"reconciliation_runs row {run.pk}: mismatches_found 0, its events say 2: edited" in (
        problems(verify())
    )


def test_the_trail_of_the_other_audit_tests_agrees_with_its_summaries():
    write_trail()
    result = verify()
    assert result.ok, result.verification.first_problem


# The newest rows --------------------------------------------------------------------------------


def _delete_without_triggers(table: str, ids: list[int]) -> None:
    """What someone with database access does: PostgreSQL's replica role turns triggers off;
    on SQLite the trigger is dropped (the maintenance door is shut to them)."""
    marks = ", ".join(["%s"] * len(ids))
    if connection.vendor == "postgresql":
        with transaction.atomic():
            sql("SET LOCAL session_replication_role = replica")
            sql(f"DELETE FROM {table} WHERE id IN ({marks})", ids)  # noqa: S608
    else:
        drop_triggers(table)
        sql(f"DELETE FROM {table} WHERE id IN ({marks})", ids)  # noqa: S608


def test_the_newest_events_deleted_after_a_stream_batch_are_named(filled, store):
    other = factories.order_attempt(
        client_order_id="bo-sig2-entry", signal_id="sig2", status="open", broker_status="new"
    )
    before = OrderEvent.objects.count()
    fill(store, coid="bo-sig2-entry", execution_id="e-2")  # the newest order's events
    newest = list(
        OrderEvent.objects.filter(attempt=other).order_by("pk").values_list("pk", flat=True)
    )
    assert newest and OrderEvent.objects.count() > before

    _delete_without_triggers("orders_orderevent", newest)
    result = verify()

    assert not result.ok
    assert any(
        p.startswith(f"order_events row {newest[-1]}: head #") and p.endswith("which is missing")
        for p in problems(result)
    ), problems(result)


def test_heads_are_recorded_only_for_chains_that_moved(filled):
    from audit.services import chain_heads_record_moved

    count = ChainHead.objects.count()
    assert chain_heads_record_moved(recorded_by="beat") == []
    assert ChainHead.objects.count() == count
    factories.order_event(attempt=filled)
    (head,) = chain_heads_record_moved(recorded_by="beat")
    assert head.chain == "order_events" and head.signature
    assert head.row_id == OrderEvent.objects.order_by("-pk").first().pk


def test_beat_records_the_heads_every_interval(settings):
    from brokerops.celery import beat_schedule

    settings.AUDIT_HEADS_INTERVAL_S = 60
    job = beat_schedule()["record-audit-heads"]
    assert job["task"] == "audit.record_heads" and job["schedule"] == 60.0


@pytest.mark.skipif("connection.vendor != 'sqlite'")
def test_on_sqlite_rows_deleted_after_the_newest_head_are_named_by_the_sequence(filled):
    """SQLite's AUTOINCREMENT sequence is rolled back with its transaction: a sequence past the
    last row, with a head recorded, can only mean rows at the end were deleted."""
    factories.order_event(attempt=filled)
    factories.order_event(attempt=filled)
    ids = list(OrderEvent.objects.order_by("-pk").values_list("pk", flat=True)[:2])
    _delete_without_triggers("orders_orderevent", ids)

    result = verify()

    assert not result.ok
    assert any(
        "rows after it were deleted" in p and p.startswith("order_events row ")
        for p in problems(result)
    ), problems(result)


# The SQLite maintenance door --------------------------------------------------------------------


@pytest.mark.parametrize("reason", ["", "tamper", "test", "demo"])
def test_the_maintenance_door_refuses_any_other_caller(reason):
    with (
        pytest.raises(PermissionError, match="audit maintenance"),
        triggers.audit_maintenance(reason),
    ):
        pass


@pytest.mark.parametrize("reason", ["demo reset", "test database reset"])
def test_the_maintenance_door_opens_for_the_reset_paths(reason):
    assert frozenset({"demo reset", "test database reset"}) == triggers.MAINTENANCE_REASONS
    with triggers.audit_maintenance(reason):
        pass
