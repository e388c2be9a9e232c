"""Reconciliation against hostile inputs: every finding keeps its audit row, no bad document or
broker figure stops a run or repairs on a guess (issue 9; docs/design.md sections 3 and 4).

Both stores (local, Firestore emulator), and whichever database the run uses (CI runs this file
on PostgreSQL and again on SQLite).
"""

import pytest

from brokerops.intent.schema import SignalStatus
from brokerops.intent.store import SignalStoreUnavailable
from reconciliation.models import Mismatch, ReconciliationRun
from reconciliation.services import reconciliation_run
from tests.integration.test_reconciliation_run import active

pytestmark = pytest.mark.django_db(transaction=True)

# Firestore accepts these ids; the local store must too, and a run must handle them.
ODD_IDS = [" ", "x" * 300, "a b", "#?&%", "é" * 750, "ünï/cödé".replace("/", "-")]
POISON_QTYS = ["1e20", "1e12", "1e999999999", "1e-10", "0.0000000001", "-5", "NaN", 1e308]


def run_once(gateway, store, **kw) -> ReconciliationRun:
    return reconciliation_run(trigger="command", gateway=gateway, store=store, **kw)


def status_of(store, signal_id):
    doc = store.get(signal_id)
    return getattr(doc, "status", None) or doc.raw_status


@pytest.mark.parametrize("qty", POISON_QTYS)
def test_an_out_of_range_quantity_is_an_invalid_signal_and_the_orphan_beside_it_closes(
    broker, gateway, store, qty
):
    broker.seed_position("AAPL", 1)
    store.put_documents(
        [
            ("poison", {**active("AAPL", 1), "qty": qty}),
            ("orphan", active("MSFT", 3)),
        ]
    )
    run = run_once(gateway, store)

    assert run.status == ReconciliationRun.Status.SUCCEEDED, run.error
    rows = {m.signal_id: m for m in run.mismatches.all()}
    assert rows["poison"].kind == Mismatch.Kind.INVALID_SIGNAL
    assert "qty" in rows["poison"].detail
    assert rows["orphan"].outcome_action == Mismatch.Action.SIGNAL_CLOSED_MANUAL
    assert status_of(store, "poison") == "ACTIVE"  # an invalid document is never modified
    assert status_of(store, "orphan") == SignalStatus.CLOSED_MANUAL


@pytest.mark.parametrize("signal_id", ODD_IDS)
def test_any_id_firestore_accepts_is_reconciled_and_recorded_whole(
    broker, gateway, store, signal_id
):
    store.put_documents([(signal_id, active("MSFT", 2)), ("plain", active("TSLA", 1))])
    run = run_once(gateway, store)

    assert run.status == ReconciliationRun.Status.SUCCEEDED, run.error
    closed = run.mismatches.ended_as(Mismatch.Action.SIGNAL_CLOSED_MANUAL)
    assert sorted(closed.values_list("signal_id", flat=True)) == sorted([signal_id, "plain"])
    assert status_of(store, signal_id) == SignalStatus.CLOSED_MANUAL
    assert Mismatch.objects.filter(signal_id__exact=signal_id).count() == 1


def test_the_mismatch_row_is_stored_before_the_signal_moves(broker, gateway, store):
    store.put_documents([("orphan", active("MSFT", 3))])
    seen_before_move = []
    transition_many = store.transition_many

    def watching(transitions):
        seen_before_move.extend(
            Mismatch.objects.filter(signal_id__in=[t.signal_id for t in transitions]).values_list(
                "signal_id", "action"
            )
        )
        return transition_many(transitions)

    store.transition_many = watching
    run = run_once(gateway, store)

    assert run.status == ReconciliationRun.Status.SUCCEEDED, run.error
    assert seen_before_move == [("orphan", Mismatch.Action.REPAIR_STARTED)]
    row = run.mismatches.get(signal_id="orphan")
    assert row.outcome_action == Mismatch.Action.SIGNAL_CLOSED_MANUAL


def test_a_repair_that_fails_keeps_its_row_and_fails_the_run_without_stopping_others(
    broker, gateway, store
):
    """The store goes away during the repair: the row says so, the run is failed with the
    reason, and the order repairs of the same run still happen."""
    store.put_documents([("orphan", active("MSFT", 3))])
    broker.seed_order("AAPL", 1, client_order_id="bo-stray-entry", status="filled")

    def unavailable(transitions):
        raise SignalStoreUnavailable("store went away mid-run")

    store.transition_many = unavailable
    run = run_once(gateway, store)

    assert run.status == ReconciliationRun.Status.FAILED
    assert "close_signal failed" in run.error and "store went away" in run.error
    orphan = run.mismatches.get(kind=Mismatch.Kind.ORPHAN_POSITION)
    assert orphan.outcome_action == Mismatch.Action.REPAIR_FAILED
    assert "store went away" in orphan.outcome_detail
    adopted = run.mismatches.get(kind=Mismatch.Kind.UNKNOWN_ORDER)
    assert adopted.outcome_action == Mismatch.Action.ORDER_ADOPTED
    assert run.finished_at is not None


def test_a_signal_whose_symbol_changed_after_the_read_is_not_closed(broker, gateway, store):
    """The run read MSFT (not held); before the repair its writer moved it to AAPL (held)."""
    broker.seed_position("AAPL", 3)
    store.put_documents([("moving", active("MSFT", 3)), ("still", active("TSLA", 1))])
    read_for = store.read_for

    def read_then_writer_changes_symbol(*args, **kw):
        result = read_for(*args, **kw)
        store.put_documents([("moving", active("AAPL", 3))])
        return result

    store.read_for = read_then_writer_changes_symbol
    run = run_once(gateway, store)

    assert run.status == ReconciliationRun.Status.SUCCEEDED, run.error
    moving = run.mismatches.get(signal_id="moving")
    assert moving.outcome_action == Mismatch.Action.REPAIR_SKIPPED
    assert "changed since the read" in moving.outcome_detail
    assert status_of(store, "moving") == SignalStatus.ACTIVE
    assert status_of(store, "still") == SignalStatus.CLOSED_MANUAL


def test_a_signal_touched_but_unchanged_in_substance_is_still_closed(broker, gateway, store):
    """Same symbol, a new version (its writer touched another field): re-evaluated, closed."""
    store.put_documents([("touched", active("MSFT", 3))])
    read_for = store.read_for

    def read_then_writer_touches(*args, **kw):
        result = read_for(*args, **kw)
        store.put_documents([("touched", active("MSFT", 3, note="touched"))])
        return result

    store.read_for = read_then_writer_touches
    run = run_once(gateway, store)

    assert run.status == ReconciliationRun.Status.SUCCEEDED, run.error
    assert (
        run.mismatches.get(signal_id="touched").outcome_action
        == Mismatch.Action.SIGNAL_CLOSED_MANUAL
    )
    assert status_of(store, "touched") == SignalStatus.CLOSED_MANUAL


def test_redis_down_records_a_failed_run_naming_redis(gateway, store, settings):
    from brokerops.locks import _redis_client

    _redis_client.cache_clear()
    settings.REDIS_URL = "redis://127.0.0.1:1/0"  # nobody listens on port 1
    run = run_once(gateway, store)

    assert run.status == ReconciliationRun.Status.FAILED
    assert "Redis at 127.0.0.1:1 is unreachable" in run.error
    assert run.finished_at is not None
    assert ReconciliationRun.objects.filter(status=ReconciliationRun.Status.RUNNING).count() == 0


def test_a_bad_broker_setting_fails_the_run_instead_of_leaving_it_running(store, settings):
    from brokerops.alpaca import broker_gateway

    broker_gateway.cache_clear()
    settings.ALPACA_API_KEY, settings.ALPACA_SECRET_KEY = "a-key", ""
    try:
        run = reconciliation_run(trigger="command", store=store)
    finally:
        broker_gateway.cache_clear()

    assert run.status == ReconciliationRun.Status.FAILED
    assert run.error and run.finished_at is not None
    assert ReconciliationRun.objects.filter(status=ReconciliationRun.Status.RUNNING).count() == 0


def test_a_proxys_html_404_on_the_confirming_look_up_closes_nothing(broker, gateway, store):
    """Only Alpaca's JSON 404 means "no such position"; a load balancer's page is an outage."""
    store.put_documents([("orphan", active("MSFT", 3))])
    broker.inject_next("GET /v2/positions/{symbol_or_asset_id}", "non_json", count=10, status=404)
    run = run_once(gateway, store)

    assert run.status == ReconciliationRun.Status.FAILED
    assert "404" in run.error
    assert status_of(store, "orphan") == SignalStatus.ACTIVE
    assert not run.mismatches.ended_as(Mismatch.Action.SIGNAL_CLOSED_MANUAL).exists()


def test_a_broker_figure_out_of_range_fails_the_run_before_any_repair(broker, gateway, store):
    broker.seed_position("AAPL", 1)
    broker.set_position_fields("AAPL", qty="1e25")
    store.put_documents([("orphan", active("MSFT", 3))])
    run = run_once(gateway, store)

    assert run.status == ReconciliationRun.Status.FAILED
    assert "qty" in run.error and "BrokerMalformedResponse" in run.error
    assert run.mismatches.count() == 0
    assert status_of(store, "orphan") == SignalStatus.ACTIVE


def test_an_order_read_past_the_page_bound_fails_the_run_before_any_repair(
    broker, gateway, store, settings
):
    """A broker whose pages keep coming: bounded, malformed, nothing repaired."""
    gateway.max_order_pages = 3
    for i in range(4 * 500):
        broker.seed_order("AAPL", 1, client_order_id=f"manual-{i}", status="filled")
    store.put_documents([("orphan", active("MSFT", 3))])
    run = run_once(gateway, store)

    assert run.status == ReconciliationRun.Status.FAILED
    assert "ALPACA_MAX_ORDER_PAGES" in run.error
    assert status_of(store, "orphan") == SignalStatus.ACTIVE
