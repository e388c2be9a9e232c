"""Text from outside is made safe before it is stored; a run always finishes, whatever its
error (issue 20.4). Meant for PostgreSQL, which refuses a NUL in text and JSON (CI runs it
there and on SQLite)."""

import pytest

from brokerops.alpaca import BrokerUnavailable
from orders.models import OrderAttempt, OrderEvent
from reconciliation.models import Mismatch, ReconciliationRun, RunEvent
from reconciliation.services import reconciliation_run

pytestmark = pytest.mark.django_db(transaction=True)

NUL_ERROR = "upstream said \x00 oops"


def run_once(gateway, store) -> ReconciliationRun:
    return reconciliation_run(trigger="command", gateway=gateway, store=store)


@pytest.mark.parametrize("error", [BrokerUnavailable(NUL_ERROR), RuntimeError(NUL_ERROR)])
def test_a_run_always_finishes_whatever_its_error(gateway, store, monkeypatch, error):
    def fail():
        raise error

    monkeypatch.setattr(gateway, "list_positions", fail)
    run = run_once(gateway, store)

    run.refresh_from_db()
    assert run.status == ReconciliationRun.Status.FAILED and run.finished_at is not None
    assert "upstream said" in run.error and "\x00" not in run.error
    assert not ReconciliationRun.objects.filter(status=ReconciliationRun.Status.RUNNING).exists()
    finished = RunEvent.objects.get(run=run, kind=RunEvent.Kind.FINISHED)
    assert "\x00" not in finished.message


def test_a_broker_symbol_with_a_nul_or_too_long_is_recorded_safely(broker, gateway, store):
    broker.seed_position("MSFT", 5)
    broker.set_position_fields("MSFT", symbol="MS\x00FT")  # the served symbol
    broker.seed_position("TSLA", 2)
    broker.set_position_fields("TSLA", symbol="T" * 40)
    run = run_once(gateway, store)

    assert run.status == ReconciliationRun.Status.SUCCEEDED, run.error
    symbols = sorted(run.mismatches.values_list("symbol", flat=True))
    assert len(symbols) == 2 and all("\x00" not in s and len(s) <= 32 for s in symbols)
    assert any(s.startswith("MS") and s.endswith("FT") for s in symbols)


def test_an_order_of_ours_with_nul_bearing_text_is_adopted_safely(broker, gateway, store):
    order = broker.seed_order(
        "MSFT", 2, client_order_id="bo-stray-entry", status="filled", filled_qty="2"
    )
    broker.set_order_fields(order["id"], symbol="MS\x00FT", status="fi\x00lled")
    run = run_once(gateway, store)

    assert run.status == ReconciliationRun.Status.SUCCEEDED, run.error
    assert run.mismatches.filter(kind=Mismatch.Kind.UNKNOWN_ORDER).exists()
    attempt = OrderAttempt.objects.get(client_order_id="bo-stray-entry")
    assert "\x00" not in attempt.symbol and "\x00" not in attempt.broker_status
    payload = OrderEvent.objects.get(attempt=attempt, kind=OrderEvent.Kind.ADOPTED).payload
    assert "\x00" not in payload["symbol"]


def test_a_run_finishes_even_when_its_end_cannot_be_recorded_as_it_was(gateway, store, monkeypatch):
    """Whatever the database refuses in a run's last write, the run is closed FAILED saying so."""
    from django.db import DataError

    from reconciliation import services

    real = services.run_event_record
    calls = []

    def refuse_once(**fields):
        calls.append(fields["kind"])
        if fields["kind"] == RunEvent.Kind.FINISHED and calls.count(RunEvent.Kind.FINISHED) == 1:
            raise DataError("the database refused it")
        return real(**fields)

    monkeypatch.setattr(services, "run_event_record", refuse_once)
    run = run_once(gateway, store)

    run.refresh_from_db()
    assert run.status == ReconciliationRun.Status.FAILED and run.finished_at is not None
    assert "recording the run's end failed (DataError)" in run.error
    assert RunEvent.objects.filter(run=run, kind=RunEvent.Kind.FINISHED).count() == 1


@pytest.mark.firestore
def test_a_pending_document_with_a_nul_in_its_text_is_rejected_and_recorded(
    gateway, firestore_store
):
    """Firestore holds any text (the embedded store's own table refuses a NUL on PostgreSQL)."""
    from orders.services.submit import orders_submit_pending

    store = firestore_store
    store.put_documents(
        [
            (
                "nul-doc",
                {
                    "symbol": "AA\x00PL",
                    "side": "bu\x00y",
                    "qty": "1",
                    "order_type": "market",
                    "status": "PENDING",
                    "note": "x\x00y",
                },
            )
        ]
    )
    orders_submit_pending(gateway=gateway, store=store)

    attempt = OrderAttempt.objects.get()
    assert attempt.status == "rejected" and "\x00" not in attempt.symbol + attempt.reason
    assert "\x00" not in str(attempt.request_payload)
