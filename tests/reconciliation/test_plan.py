"""The repair plan (pure) and the audit column's bounds: one behaviour per test."""

from decimal import Decimal as D
from types import SimpleNamespace

import pytest

from reconciliation.diff import Finding, ReconciliationErrors, Severity
from reconciliation.plan import BULK_LAGGED, OVER_BUDGET, Repair, Verdict, repair_plan
from reconciliation.records import storable_qty


def finding(kind, **kw):
    return Finding(kind=kind, severity=Severity.WARNING, **kw)


def plan(findings, *, absent=None, looked_up=None, orders=None):
    return repair_plan(
        findings,
        position_absent=absent or {},
        orders_looked_up=looked_up or {},
        orders_by_client_id=orders or {},
    )


ORPHAN = finding(ReconciliationErrors.ORPHAN_POSITION, symbol="MSFT", signal_id="s1")


def test_an_orphan_confirmed_absent_closes_its_signal():
    [item] = plan([ORPHAN], absent={"MSFT": True})
    assert (item.verdict, item.repair) == (Verdict.REPAIR, Repair.CLOSE_SIGNAL)


def test_an_orphan_the_look_up_found_is_skipped_as_a_lagging_bulk_read():
    [item] = plan([ORPHAN], absent={"MSFT": False})
    assert (item.verdict, item.detail) == (Verdict.SKIP, BULK_LAGGED)


def test_an_orphan_not_looked_up_waits_for_the_next_run():
    [item] = plan([ORPHAN])
    assert (item.verdict, item.detail) == (Verdict.SKIP, OVER_BUDGET)


def test_an_order_confirmed_absent_is_marked_missing():
    f = finding(ReconciliationErrors.ORDER_NOT_FOUND, client_order_id="bo-a-entry")
    [item] = plan([f], looked_up={"bo-a-entry": None})
    assert item.repair is Repair.MARK_ORDER_MISSING


def test_an_order_found_by_look_up_is_drift_and_takes_the_broker_state():
    f = finding(ReconciliationErrors.ORDER_NOT_FOUND, client_order_id="bo-a-entry")
    order = SimpleNamespace(id="o-1", status="canceled")
    [item] = plan([f], looked_up={"bo-a-entry": order})
    assert item.repair is Repair.APPLY_BROKER_ORDER and item.order is order
    assert item.finding.kind is ReconciliationErrors.ORDER_STATUS_DRIFT
    assert item.finding.broker_status == "canceled"


@pytest.mark.parametrize(
    "kind",
    [
        ReconciliationErrors.UNTRACKED_POSITION,
        ReconciliationErrors.QTY_MISMATCH,
        ReconciliationErrors.SIDE_MISMATCH,
        ReconciliationErrors.INVALID_SIGNAL,
    ],
)
def test_flag_only_kinds_never_plan_a_repair(kind):
    [item] = plan([finding(kind)])
    assert (item.verdict, item.repair) == (Verdict.FLAG, None)


def test_every_kind_has_a_model_choice_and_the_lists_agree():
    from reconciliation.models import Mismatch

    assert {k.value for k in ReconciliationErrors} == set(Mismatch.Kind.values)


@pytest.mark.parametrize(
    ("value", "fits"),
    [
        (D("1"), True),
        (D("0.000000001"), True),
        (D("-9999999999999999999"), True),
        (D("1e19"), False),
        (D("1e25"), False),
        (D("0.0000000001"), False),
        (D("NaN"), False),
    ],
)
def test_storable_qty_keeps_what_the_column_holds_and_notes_the_rest(value, fits):
    stored, note = storable_qty(value)
    if fits:
        assert stored == value and note == ""
    else:
        assert stored is None and str(value) in note
