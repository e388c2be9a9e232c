"""One finding's repair never fails the others (issue 20, point 4; docs/design.md section 4).

Through the paper broker and the operator's ``reconcile`` command: unknown orders with our
prefix whose signal id cannot be recovered (the hashed form) are all adopted, and a repair that
fails is recorded on its own finding (``repair_failed`` with the reason) while every other
finding of the run is repaired. CI runs this file on PostgreSQL and on SQLite.
"""

import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import IntegrityError

from orders.client_order_id import client_order_id_for
from orders.models import OrderAttempt
from reconciliation import repairs
from reconciliation.models import Mismatch, ReconciliationRun
from tests.integration.test_reconciliation_run import active

pytestmark = pytest.mark.django_db(transaction=True)

Action = Mismatch.Action
# Ids that need hashing (beyond [A-Za-z0-9_.:-]): their client_order_id does not give them back.
HASHED = [client_order_id_for(signal_id=s, prefix="bo") for s in ("a b", "c d")]
PLAIN = "bo-stray-entry"


@pytest.fixture
def reconcile(gateway, store, capsys, monkeypatch):
    """``manage.py reconcile --json`` against the paper broker: (exit status, report)."""
    monkeypatch.setattr("reconciliation.services.broker_gateway", lambda account=None: gateway)
    monkeypatch.setattr("reconciliation.services.get_signal_store", lambda: store)

    def run() -> tuple[int, dict]:
        try:
            call_command("reconcile", "--json")
            code = 0
        except CommandError as exc:
            code = exc.returncode
        return code, json.loads(capsys.readouterr().out)

    return run


def actions(report: dict) -> dict[str, str]:
    return {m["client_order_id"]: m["action"] for m in report["mismatches"]}


def test_unknown_orders_whose_signal_cannot_be_recovered_are_all_adopted(broker, reconcile):
    assert HASHED[0].startswith("bo-h") and HASHED[0] != HASHED[1]
    for client_order_id in [*HASHED, PLAIN]:
        broker.seed_order("AAPL", 1, client_order_id=client_order_id, status="filled")

    code, report = reconcile()

    assert (code, report["status"]) == (0, "succeeded"), report["error"]
    assert actions(report) == {c: Action.ORDER_ADOPTED for c in [*HASHED, PLAIN]}
    adopted = OrderAttempt.objects.filter(adopted=True)
    assert sorted(adopted.values_list("client_order_id", "signal_id")) == sorted(
        [(HASHED[0], ""), (HASHED[1], ""), (PLAIN, "stray")]
    )
    # The next run finds nothing unknown: the orders are in the audit trail.
    code, again = reconcile()
    assert (code, again["status"], again["mismatches"]) == (0, "succeeded", [])


def test_a_repair_that_fails_is_recorded_on_its_own_finding_only(
    broker, store, reconcile, monkeypatch
):
    """The second of three adoptions fails in the database (a genuine IntegrityError, which on
    PostgreSQL aborts the transaction around it): the first and the third are adopted, the
    orphan beside them is closed, and the failure is on the second finding only."""
    victim = "bo-victim-entry"
    for client_order_id in ("bo-first-entry", victim, "bo-third-entry"):
        broker.seed_order("AAPL", 1, client_order_id=client_order_id, status="filled")
    store.put_documents([("orphan", active("MSFT", 3))])
    adopt = repairs.order_attempt_adopt

    def adopt_failing_for_the_victim(*, order, actor, prefix, account):
        attempt = adopt(order=order, actor=actor, prefix=prefix, account=account)
        if order.client_order_id == victim:  # a second row for the order: refused
            OrderAttempt.objects.create(client_order_id=victim, signal_id="other", symbol="X")
        return attempt

    monkeypatch.setattr(repairs, "order_attempt_adopt", adopt_failing_for_the_victim)
    code, report = reconcile()

    assert code == 1 and report["status"] == "failed"
    assert "1 repair(s) failed" in report["error"] and "IntegrityError" in report["error"]
    assert actions(report) == {
        "bo-first-entry": Action.ORDER_ADOPTED,
        victim: Action.REPAIR_FAILED,
        "bo-third-entry": Action.ORDER_ADOPTED,
        "": Action.SIGNAL_CLOSED_MANUAL,
    }
    failed = Mismatch.objects.get(client_order_id=victim)
    assert "IntegrityError" in failed.outcome.message
    # The failed adoption left nothing behind; the others are whole.
    assert sorted(OrderAttempt.objects.values_list("client_order_id", flat=True)) == [
        "bo-first-entry",
        "bo-third-entry",
    ]
    run = ReconciliationRun.objects.get(pk=report["run_id"])
    assert run.finished_at is not None and run.repairs_applied == 3

    # Without the fault, the next run adopts it and succeeds.
    monkeypatch.setattr(repairs, "order_attempt_adopt", adopt)
    code, again = reconcile()
    assert (code, actions(again)) == (0, {victim: Action.ORDER_ADOPTED})


def test_a_batch_repair_that_fails_for_one_item_is_retried_one_by_one(
    broker, gateway, store, reconcile, monkeypatch
):
    """A handler that repairs its findings in one batch (closing orphans) and fails: each
    finding is tried alone, so only the one that fails alone is recorded failed."""
    store.put_documents([("good", active("MSFT", 3)), ("bad", active("TSLA", 2))])
    transition_many = store.transition_many

    def refusing_bad(transitions):
        if any(t.signal_id == "bad" for t in transitions):
            raise IntegrityError("the store refused 'bad'")
        return transition_many(transitions)

    monkeypatch.setattr(store, "transition_many", refusing_bad)
    code, report = reconcile()

    assert code == 1
    by_signal = {m["signal_id"]: m["action"] for m in report["mismatches"]}
    assert by_signal == {"good": Action.SIGNAL_CLOSED_MANUAL, "bad": Action.REPAIR_FAILED}
    assert store.get("good").status == "CLOSED_MANUAL"
    assert store.get("bad").status == "ACTIVE"


@pytest.mark.django_db(transaction=False)
def test_inside_a_callers_transaction_a_failed_adoption_spoils_nothing(
    broker, gateway, monkeypatch
):
    """Run inside a transaction (as a test or a caller's atomic block does): the failed
    statement is rolled back to its own savepoint, so on PostgreSQL the rest of the run still
    writes (an aborted transaction would refuse every later statement)."""
    from brokerops.intent.local import LocalSignalStore
    from reconciliation.services import reconciliation_run

    for client_order_id in (*HASHED, "bo-victim-entry", PLAIN):
        broker.seed_order("AAPL", 1, client_order_id=client_order_id, status="filled")
    adopt = repairs.order_attempt_adopt

    def adopt_failing_for_the_victim(*, order, actor, prefix, account):
        attempt = adopt(order=order, actor=actor, prefix=prefix, account=account)
        if order.client_order_id == "bo-victim-entry":
            OrderAttempt.objects.create(client_order_id=order.client_order_id, symbol="X")
        return attempt

    monkeypatch.setattr(repairs, "order_attempt_adopt", adopt_failing_for_the_victim)
    run = reconciliation_run(trigger="command", gateway=gateway, store=LocalSignalStore())

    assert run.finished_at is not None and "1 repair(s) failed" in run.error
    ended = dict(run.mismatches.with_final_action().values_list("client_order_id", "final_action"))
    assert ended == {
        HASHED[0]: Action.ORDER_ADOPTED,
        HASHED[1]: Action.ORDER_ADOPTED,
        "bo-victim-entry": Action.REPAIR_FAILED,
        PLAIN: Action.ORDER_ADOPTED,
    }
