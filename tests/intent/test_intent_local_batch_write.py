"""The local store's batch write (one conditional UPDATE per 500 transitions) stays cheap in a
large table whose statistics are stale: the state of a table just filled (a benchmark's, a
restored database's) before autovacuum has analysed it."""

import uuid

import pytest
from django.db import connection
from django.utils import timezone

from brokerops.intent.local import LocalSignalStore, _batch_update
from brokerops.intent.models import LocalSignal, stored_document_id
from brokerops.intent.schema import SignalStatus
from brokerops.intent.store import Transition, classify

pytestmark = pytest.mark.django_db
ACTIVE, CLOSED = SignalStatus.ACTIVE, SignalStatus.CLOSED
ROWS, BATCH = 40_000, 500


def test_a_batch_write_costs_its_batch_not_the_table_times_the_batch():
    """1,000 orphans closed in a 100,000-signal run cost 2 s in two UPDATEs: the planner, told
    by the stale statistics that few rows are ACTIVE, read them all by the status index, and
    each row was tested against the 500 conditions of the batch (docs/benchmarks.md). Each row
    is now tested against the batch's ids first, a hashed look-up."""
    if connection.vendor != "postgresql":
        pytest.skip("the planner's statistics and EXPLAIN ANALYZE are PostgreSQL's")
    with connection.cursor() as cursor:
        cursor.execute(f"ANALYZE {LocalSignal._meta.db_table}")  # empty: stale once filled
    store = LocalSignalStore()
    doc = {"symbol": "AAPL", "side": "buy", "qty": "1", "order_type": "market", "status": "ACTIVE"}
    store.put_documents((f"sig{i}", doc) for i in range(ROWS))
    ids = [f"sig{i}" for i in range(0, ROWS, ROWS // BATCH)]
    stored = dict(
        LocalSignal.objects.filter(
            document_id__in=[stored_document_id(i) for i in ids]
        ).values_list("document_id", "revision")
    )
    batch = []
    for signal_id in ids:
        plan = classify(Transition(signal_id, ACTIVE, CLOSED, "closed"), doc, str(uuid.uuid4()))
        batch.append((plan, doc, stored[stored_document_id(signal_id)]))
    new_revision = {signal_id: uuid.uuid4() for signal_id in ids}
    sql, params = _batch_update(batch, new_revision, timezone.now(), connection)

    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, FORMAT JSON) " + sql, params)
        (plan,) = cursor.fetchone()[0]

    (scan,) = plan["Plan"]["Plans"]
    assert scan["Actual Rows"] == BATCH
    # What each row read costs, not a time: the server reads every ACTIVE row here (the stale
    # statistics choose the status index), so what matters is the first test applied to each.
    # Before, all 500 conditions (400-900 ms here); now one hashed look-up of the batch's ids
    # (PostgreSQL hashes an ``= ANY`` list of 9 or more), the conditions only for those 500.
    # The time itself is the benchmark's to measure (docs/benchmarks.md).
    first_test = scan["Filter"].split(" AND ")[0]
    assert first_test.startswith("(((document_id)::text = ANY ('{"), scan["Filter"][:300]
    assert " OR " not in first_test
