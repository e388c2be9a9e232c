"""A mismatch about several signals is found by each of them: the relation as rows."""

from decimal import Decimal

import pytest
from django.db import DatabaseError, connection, transaction
from django.db.migrations.executor import MigrationExecutor
from django.test.utils import CaptureQueriesContext
from django.urls import reverse

from audit.chain import chain_append
from audit.services import audit_verify
from reconciliation.diff import ReconciliationErrors
from reconciliation.models import Mismatch, MismatchSignal
from tests import factories
from tests.workspace.helpers import local_signal, record_mismatch

pytestmark = pytest.mark.django_db


@pytest.fixture
def compliance_client(client):
    client.force_login(factories.staff_user(group="compliance"))
    return client


def _signals(mismatch) -> list[str]:
    return list(mismatch.signals.order_by("id").values_list("signal_id", flat=True))


def test_the_writer_stores_one_row_per_signal_of_a_joined_finding():
    row = record_mismatch(
        kind=ReconciliationErrors.QTY_MISMATCH,
        symbol="AAPL",
        signal_ids=("demo-aapl", "demo-buy-aapl", "ux-test-1"),
        expected_qty=Decimal("2"),
        actual_qty=Decimal("1"),
    )
    assert row.signal_id == "demo-aapl,demo-buy-aapl,ux-test-1"  # the chained value, unchanged
    assert _signals(row) == ["demo-aapl", "demo-buy-aapl", "ux-test-1"]


def test_a_single_signal_id_holding_a_comma_stays_whole():
    row = record_mismatch(
        kind=ReconciliationErrors.ORPHAN_POSITION, symbol="AAPL", signal_id="odd,id"
    )
    assert _signals(row) == ["odd,id"]


def test_a_joined_finding_stores_an_id_holding_a_comma_as_one_row():
    row = record_mismatch(
        kind=ReconciliationErrors.QTY_MISMATCH, symbol="AAPL", signal_ids=("a,b", "c")
    )
    assert _signals(row) == ["a,b", "c"]


def test_a_finding_without_signals_has_no_rows():
    row = record_mismatch(kind=ReconciliationErrors.UNTRACKED_POSITION, symbol="AAPL")
    assert _signals(row) == []


def test_the_rows_are_append_only_at_the_database():
    row = record_mismatch(
        kind=ReconciliationErrors.QTY_MISMATCH, symbol="AAPL", signal_ids=("a", "b")
    )
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        MismatchSignal.objects.filter(mismatch=row).update(signal_id="evil")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        MismatchSignal.objects.filter(mismatch=row).delete()
    assert _signals(row) == ["a", "b"]


@pytest.mark.django_db(transaction=True)
def test_the_data_migration_fills_rows_for_existing_mismatches():
    """Mismatches stored before the relation (the schema of 0005) get their rows, chained since
    0008 (the relation's rows are audit rows: docs/design.md section 12)."""
    latest = MigrationExecutor(connection).loader.graph.leaf_nodes()
    executor = MigrationExecutor(connection)
    executor.migrate([("reconciliation", "0005_audit_chain")])
    old = executor.loader.project_state([("reconciliation", "0005_audit_chain")]).apps
    try:
        Run = old.get_model("reconciliation", "ReconciliationRun")
        Old = old.get_model("reconciliation", "Mismatch")
        run = Run.objects.create(trigger="schedule", status="succeeded")
        stored = chain_append(
            Old(run=run, kind=kind, severity="warning", signal_id=signal_id)
            for kind, signal_id in [
                ("QTY_MISMATCH", "s1,s2,s1"),
                ("ORPHAN_POSITION", "with,comma"),
                ("UNTRACKED_POSITION", ""),
            ]
        )
    finally:
        executor = MigrationExecutor(connection)
        executor.loader.build_graph()
        executor.migrate(latest)
    joined, single, none = (Mismatch.objects.get(pk=row.pk) for row in stored)
    assert _signals(joined) == ["s1", "s2"]
    assert _signals(single) == ["with,comma"]
    assert _signals(none) == []
    assert audit_verify(trigger="command", processes=1).ok


@pytest.mark.parametrize("term", ["demo-aapl", "demo-buy-aapl", "ux-test-1"])
def test_the_mismatch_search_finds_it_by_each_signal(compliance_client, term):
    row = record_mismatch(
        kind=ReconciliationErrors.QTY_MISMATCH,
        symbol="AAPL",
        signal_ids=("demo-aapl", "demo-buy-aapl", "ux-test-1"),
    )
    record_mismatch(kind=ReconciliationErrors.QTY_MISMATCH, symbol="AAPL", signal_id="else")
    page = compliance_client.get(reverse("admin:reconciliation_mismatch_changelist"), {"q": term})
    assert page.status_code == 200
    assert page.context["cl"].result_count == 1
    assert [m.pk for m in page.context["cl"].result_list] == [row.pk]


def test_the_signal_search_is_an_exact_indexed_look_up(compliance_client):
    record_mismatch(kind=ReconciliationErrors.QTY_MISMATCH, symbol="AAPL", signal_ids=("p", "q"))
    with CaptureQueriesContext(connection) as queries:
        compliance_client.get(reverse("admin:reconciliation_mismatch_changelist"), {"q": "p"})
    relation = [q["sql"] for q in queries if "reconciliation_mismatchsignal" in q["sql"]]
    assert relation, "the relation was not searched"
    assert all("LIKE" not in sql.upper() for sql in relation)
    assert any('"reconciliation_mismatchsignal"."signal_id" = ' in sql for sql in relation)


def test_the_mismatch_page_lists_its_signals_as_linked_rows(compliance_client):
    document = local_signal("demo-buy-aapl")
    row = record_mismatch(
        kind=ReconciliationErrors.QTY_MISMATCH,
        symbol="AAPL",
        signal_ids=("demo-aapl", "demo-buy-aapl"),
    )
    html = compliance_client.get(
        reverse("admin:reconciliation_mismatch_change", args=[row.pk])
    ).content.decode()
    assert html.count('<div class="mismatch-signal">') == 2
    assert reverse("admin:intent_localsignal_change", args=[document.pk]) in html
    for signal_id in ("demo-aapl", "demo-buy-aapl"):
        timeline = reverse("order_timeline", kwargs={"client_order_id": f"bo-{signal_id}-entry"})
        assert f'href="{timeline}"' in html


def test_the_attempt_page_links_the_mismatches_naming_it(compliance_client):
    attempt = factories.order_attempt(client_order_id="bo-m1-entry", signal_id="m1")
    row = record_mismatch(
        kind=ReconciliationErrors.ORDER_STATUS_DRIFT, symbol="AAPL", client_order_id="bo-m1-entry"
    )
    html = compliance_client.get(
        reverse("admin:orders_orderattempt_change", args=[attempt.pk])
    ).content.decode()
    assert f'href="{reverse("admin:reconciliation_mismatch_change", args=[row.pk])}"' in html
    run_url = reverse("admin:reconciliation_reconciliationrun_change", args=[row.run_id])
    assert f'href="{run_url}"' in html
