"""Reconciliation end to end: paper broker over loopback, real alpaca-py, the signal store."""

import json
import logging
import math
import threading
from datetime import timedelta
from decimal import Decimal as D

import pytest
from django.core.management import call_command
from django.utils import timezone

from brokerops.alpaca import RetryPolicy
from brokerops.intent.schema import Signal, SignalStatus
from orders.models import OrderAttempt
from reconciliation.models import Mismatch, ReconciliationRun
from reconciliation.services import reconciliation_run
from tests import factories
from tests.integration.conftest import gateway_for

pytestmark = pytest.mark.django_db(transaction=True)


def active(symbol, qty, side="buy", **extra):
    return {
        "symbol": symbol,
        "side": side,
        "qty": str(qty),
        "order_type": "market",
        "status": "ACTIVE",
        **extra,
    }


@pytest.fixture
def scenario(broker, store):
    """Every mismatch kind once, next to holdings that agree."""
    broker.seed_position("AAPL", 10)  # agrees with s-aapl
    broker.seed_position("MSFT", 5)  # UNTRACKED_POSITION
    broker.seed_position("TSLA", 7)  # QTY_MISMATCH (10 expected)
    broker.seed_position("SPY", -5)  # SIDE_MISMATCH (long 5 expected)
    broker.seed_position("BTC/USD", D("0.5"))  # agrees with s-btc (BTC/USD vs BTCUSD)
    store.put_documents(
        [
            ("s-aapl", active("AAPL", 10)),
            ("s-btc", active("BTC/USD", "0.5")),
            ("s-eth", active("ETH/USD", "2", client_order_id="bo-s-eth-entry")),  # ORPHAN_POSITION
            ("s-tsla", active("TSLA", 10)),
            ("s-spy", active("SPY", 5)),
            (
                "s-bad",
                {
                    "symbol": "AAPL",
                    "side": "buy",
                    "qty": "lots",
                    "order_type": "market",
                    "status": "ACTIVE",
                },
            ),  # INVALID_SIGNAL
        ]
    )
    hour_ago = timezone.now() - timedelta(hours=1)
    factories.order_attempt(
        client_order_id="bo-gone-entry",
        signal_id="gone",
        symbol="AAPL",
        status="open",
        broker_status="new",
        created_at=hour_ago,
    )
    canceled = broker.seed_order("MSFT", 1, client_order_id="bo-drift-entry", status="canceled")
    factories.order_attempt(
        client_order_id="bo-drift-entry",
        signal_id="drift",
        symbol="MSFT",
        status="open",
        broker_status="new",
        alpaca_order_id=canceled["id"],
        created_at=hour_ago,
    )
    broker.seed_order(
        "MSFT",
        2,
        client_order_id="bo-stray-entry",
        status="filled",
        filled_qty="2",
        filled_avg_price="100",
    )  # UNKNOWN_ORDER
    broker.seed_order("MSFT", 3, client_order_id="manual-1", status="filled")  # not ours
    return broker


def kinds(run):
    return sorted((m.kind, m.outcome_action) for m in run.mismatches.select_related("outcome"))


def test_every_mismatch_kind_is_found_repaired_and_recorded(scenario, gateway, store, caplog):
    scenario.reset_counters()
    with caplog.at_level(logging.CRITICAL, logger="reconciliation.services"):
        run = reconciliation_run(trigger="command", gateway=gateway, store=store)

    assert run.status == ReconciliationRun.Status.SUCCEEDED, run.error
    assert kinds(run) == [
        ("INVALID_SIGNAL", "flagged"),
        ("ORDER_NOT_FOUND", "attempt_marked_missing"),
        ("ORDER_STATUS_DRIFT", "attempt_status_updated"),
        ("ORPHAN_POSITION", "signal_closed_manual"),
        ("QTY_MISMATCH", "flagged"),
        ("SIDE_MISMATCH", "flagged"),
        ("UNKNOWN_ORDER", "order_adopted"),
        ("UNTRACKED_POSITION", "flagged"),
    ]
    # Repairs: Alpaca wins.
    eth = store.get("s-eth")
    assert isinstance(eth, Signal) and eth.status is SignalStatus.CLOSED_MANUAL
    assert f"run #{run.pk}" in eth.status_reason
    assert store.get("s-aapl").status is SignalStatus.ACTIVE
    assert OrderAttempt.objects.get(client_order_id="bo-gone-entry").status == "missing"
    drift = OrderAttempt.objects.get(client_order_id="bo-drift-entry")
    assert (drift.status, drift.broker_status) == ("canceled", "canceled")
    stray = OrderAttempt.objects.get(client_order_id="bo-stray-entry")
    assert stray.adopted and stray.status == "filled" and stray.signal_id == "stray"
    assert not OrderAttempt.objects.filter(client_order_id="manual-1").exists()
    qty = run.mismatches.get(kind="QTY_MISMATCH")
    assert (qty.symbol, qty.expected_qty, qty.actual_qty) == ("TSLA", D("10"), D("7"))
    assert "ORPHAN_POSITION" in caplog.text and "ETHUSD" in caplog.text

    # What it saw and what it cost.
    assert (run.positions_seen, run.orders_seen, run.signals_seen) == (5, 3, 6)
    counters = scenario.counters()
    assert counters[("GET", "/v2/positions")] == 1
    assert counters[("GET", "/v2/orders")] == 1
    # Confirmations: one per orphaned symbol, one per missing order; nothing else.
    assert counters[("GET", "/v2/positions/{symbol_or_asset_id}")] == 1
    assert counters[("GET", "/v2/orders:by_client_order_id")] == 1
    assert run.api_calls == scenario.total_requests() == 4
    assert run.finished_at is not None and run.duration_s >= 0


def test_a_run_records_its_events_the_repair_outcomes_and_the_chain_heads(
    scenario, gateway, store, settings
):
    settings.AUDIT_HMAC_KEY = "run-test-key"
    run = reconciliation_run(trigger="command", gateway=gateway, store=store)

    events = list(run.events.order_by("pk"))
    assert [e.kind for e in events if e.kind != "repair_outcome"] == ["started", "finished"]
    assert (events[0].status, events[-1].status) == ("running", "succeeded")
    assert events[-1].payload["mismatches_found"] == 8
    # Every repair's outcome is its own event, appended after the row it completes.
    outcomes = [e for e in events if e.kind == "repair_outcome"]
    assert sorted(e.action for e in outcomes) == sorted(a for _, a in kinds(run) if a != "flagged")
    assert all(
        e.mismatch.run_id == run.pk and e.created_at >= e.mismatch.created_at for e in outcomes
    )
    # The mismatch rows themselves were never updated: they say what was stored first.
    assert set(run.mismatches.values_list("action", flat=True)) == {"repair_started", "flagged"}
    heads = {h.chain: h for h in run.chain_heads.all()}
    assert set(heads) == {
        "order_events",
        "mismatches",
        "mismatch_signals",
        "run_events",
        "break_events",
    }
    assert heads["run_events"].row_id == events[-1].pk and all(h.signature for h in heads.values())
    from audit.services import audit_verify

    assert audit_verify(trigger="command", processes=1).ok


def test_a_skipped_run_and_an_abandoned_one_are_events_too(broker, gateway, store):
    dead = factories.reconciliation_run(status="running")
    reconciliation_run(trigger="schedule", gateway=gateway, store=store)
    assert list(dead.events.values_list("kind", "status")) == [("abandoned", "failed")]


def test_a_second_run_finds_only_what_is_still_true(scenario, gateway, store):
    reconciliation_run(trigger="command", gateway=gateway, store=store)
    again = reconciliation_run(trigger="command", gateway=gateway, store=store)
    assert kinds(again) == [
        ("INVALID_SIGNAL", "flagged"),
        ("QTY_MISMATCH", "flagged"),
        ("SIDE_MISMATCH", "flagged"),
        ("UNTRACKED_POSITION", "flagged"),
    ]


def test_a_dry_run_reports_and_changes_nothing(scenario, gateway, store):
    run = reconciliation_run(trigger="command", dry_run=True, gateway=gateway, store=store)
    assert run.status == "succeeded" and run.dry_run
    assert set(run.mismatches.values_list("action", flat=True)) == {"dry_run", "flagged"}
    assert run.repairs_applied == 0
    assert store.get("s-eth").status is SignalStatus.ACTIVE
    assert OrderAttempt.objects.get(client_order_id="bo-gone-entry").status == "open"
    assert not OrderAttempt.objects.filter(client_order_id="bo-stray-entry").exists()


def test_the_api_call_bound_holds_over_many_orders(broker, gateway, store):
    m = 1_234
    for i in range(m):
        broker.seed_order("AAPL", 1, client_order_id=f"ext-{i}", status="filled", filled_qty="1")
    broker.reset_counters()
    run = reconciliation_run(trigger="command", gateway=gateway, store=store)
    assert run.orders_seen == m
    assert broker.counters()[("GET", "/v2/orders")] == math.ceil(m / 500)
    assert run.api_calls == 1 + math.ceil(m / 500)


def test_a_429_in_the_middle_is_waited_out(broker, store):
    waits = []
    gw = gateway_for(broker, retry_policy=RetryPolicy(sleep=waits.append))
    for i in range(600):
        broker.seed_order("AAPL", 1, client_order_id=f"ext-{i}", status="filled", filled_qty="1")
    broker.seed_position("AAPL", 1)
    broker.inject_next("GET /v2/orders", "429", retry_after_s=2)
    run = reconciliation_run(trigger="command", gateway=gw, store=store)
    assert run.status == "succeeded", run.error
    assert run.orders_seen == 600
    assert waits and waits[0] >= 2  # Retry-After honoured
    assert run.api_calls == broker.total_requests()


def test_an_unreachable_broker_fails_the_run_and_repairs_nothing(broker, store):
    store.put_documents([("s-eth", active("ETH/USD", "2"))])
    gw = gateway_for(broker, retry_policy=RetryPolicy(max_attempts=1))
    broker.stop()
    run = reconciliation_run(trigger="command", gateway=gw, store=store)
    assert run.status == "failed"
    assert "BrokerUnavailable" in run.error
    assert run.mismatches.count() == 0
    assert store.get("s-eth").status is SignalStatus.ACTIVE  # never "no positions"


def test_an_order_read_that_keeps_failing_fails_the_run(broker, store):
    store.put_documents([("s-eth", active("ETH/USD", "2"))])
    for i in range(600):
        broker.seed_order("AAPL", 1, client_order_id=f"ext-{i}", status="filled", filled_qty="1")
    broker.inject_next("GET /v2/orders", "non_json", count=3)
    gw = gateway_for(broker, retry_policy=RetryPolicy(max_attempts=3, sleep=lambda s: None))
    run = reconciliation_run(trigger="command", gateway=gw, store=store)
    assert run.status == "failed"
    assert run.mismatches.count() == 0
    assert store.get("s-eth").status is SignalStatus.ACTIVE
    assert broker.counters()[("GET", "/v2/orders")] == 3


def test_concurrent_triggers_give_one_run_and_one_skipped(broker, store):
    broker.set_faults(None)
    broker.seed_position("AAPL", 1)
    from brokerops.sim import FaultConfig

    broker.set_faults(FaultConfig(seed=1, latency_s=0.5, routes=("GET /v2/positions",)))
    runs = []
    gws = [gateway_for(broker), gateway_for(broker)]

    def trigger(gw):
        runs.append(reconciliation_run(trigger="schedule", gateway=gw, store=store))

    threads = [threading.Thread(target=trigger, args=(gw,)) for gw in gws]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(r.status for r in runs) == ["skipped", "succeeded"]
    assert ReconciliationRun.objects.count() == 2


def test_a_run_left_running_by_a_dead_worker_is_failed_by_the_next(broker, gateway, store):
    dead = ReconciliationRun.objects.create(trigger="schedule", status="running")
    run = reconciliation_run(trigger="schedule", gateway=gateway, store=store)
    dead.refresh_from_db()
    assert dead.status == "failed" and "abandoned" in dead.error
    assert run.status == "succeeded"


def test_an_order_in_flight_is_not_taken_for_an_orphan(broker, gateway, store):
    store.put_documents([("s-aapl", active("AAPL", 10))])
    broker.set_auto_fill(False)
    broker.seed_order("AAPL", 5, client_order_id="manual-open", status="new")
    run = reconciliation_run(trigger="command", gateway=gateway, store=store)
    [m] = run.mismatches.all()
    assert (m.kind, m.severity, m.action) == ("QTY_MISMATCH", "info", "flagged")
    assert store.get("s-aapl").status is SignalStatus.ACTIVE


def test_the_reconcile_command_prints_the_contract_json(
    scenario, gateway, store, capsys, monkeypatch
):
    monkeypatch.setattr("brokerops.alpaca.broker_gateway", lambda: gateway)
    monkeypatch.setattr("reconciliation.services.broker_gateway", lambda account=None: gateway)
    monkeypatch.setattr("reconciliation.services.get_signal_store", lambda: store)
    call_command("reconcile", "--json", "--dry-run")
    report = json.loads(capsys.readouterr().out)
    assert set(report) >= {
        "run_id",
        "status",
        "positions_seen",
        "signals_seen",
        "orders_seen",
        "api_calls",
        "duration_s",
        "mismatches",
    }
    assert report["status"] == "succeeded"
    tsla = next(m for m in report["mismatches"] if m["kind"] == "QTY_MISMATCH")
    assert tsla == {
        "kind": "QTY_MISMATCH",
        "symbol": "TSLA",
        "signal_id": "s-tsla",
        "client_order_id": "",
        "expected_qty": "10",
        "actual_qty": "7",
        "action": "flagged",
    }
    assert Mismatch.objects.filter(run_id=report["run_id"]).count() == len(report["mismatches"])


def test_the_reconcile_command_exits_non_zero_when_the_run_fails(broker, store, monkeypatch):
    from django.core.management.base import CommandError

    gw = gateway_for(broker, retry_policy=RetryPolicy(max_attempts=1))
    broker.stop()
    monkeypatch.setattr("reconciliation.services.broker_gateway", lambda account=None: gw)
    monkeypatch.setattr("reconciliation.services.get_signal_store", lambda: store)
    with pytest.raises(CommandError) as err:
        call_command("reconcile", "--json")
    assert err.value.returncode == 1
    assert ReconciliationRun.objects.get().status == "failed"


def test_attempts_with_an_unknown_outcome_are_left_to_the_order_cycle(broker, gateway, store):
    factories.order_attempt(
        client_order_id="bo-u1-entry",
        signal_id="u1",
        status="unknown",
        created_at=timezone.now() - timedelta(hours=1),
    )
    run = reconciliation_run(trigger="command", gateway=gateway, store=store)
    assert run.mismatches.count() == 0
    assert OrderAttempt.objects.get(client_order_id="bo-u1-entry").status == "unknown"
