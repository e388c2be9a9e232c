"""The project against a paper broker as strict as Alpaca (issue 10; docs/design.md sections 4, 5,
9): delayed fills, crypto fees in the coin, reserved buying power, wash-trade refusals."""

from decimal import Decimal as D

import pytest

from brokerops.alpaca import OrderRequest
from brokerops.intent.schema import SignalStatus
from orders.models import OrderAttempt
from orders.services import order_attempts_sync, orders_submit_pending
from reconciliation.models import Mismatch, ReconciliationRun
from reconciliation.services import reconciliation_run
from tests.integration.test_order_flow import pending

pytestmark = pytest.mark.django_db(transaction=True)
POST = ("POST", "/v2/orders")


def outcome_counts(result):
    return result.counts()


def test_the_default_paper_broker_is_strict(broker):
    assert broker.fidelity.fill_delay_s > 0
    assert broker.fidelity.rate_limit_per_min == 200
    assert broker.fidelity.reserve_buying_power and broker.fidelity.wash_trade_check


def test_a_market_order_is_accepted_unfilled_and_its_signal_waits_for_the_fill(
    broker, gateway, store
):
    store.put_documents([("s1", pending())])
    orders_submit_pending(gateway=gateway, store=store)

    attempt = OrderAttempt.objects.get(signal_id="s1")
    assert attempt.status == OrderAttempt.Status.OPEN and not attempt.filled_qty
    assert store.get("s1").status is SignalStatus.SUBMITTED

    assert broker.settle(timeout=5)
    order_attempts_sync(gateway=gateway, store=store)
    attempt.refresh_from_db()
    assert attempt.status == OrderAttempt.Status.FILLED
    signal = store.get("s1")
    assert signal.status is SignalStatus.ACTIVE and signal.filled_qty == D("5")


def test_when_the_money_runs_out_halfway_the_rest_is_rejected_once_and_the_next_cycle_is_clean(
    broker, gateway, store
):
    """200 signals of $100 each against $10,000 of buying power: open buys reserve it."""
    broker.set_rate_limit(5000)  # volume, not the rate limit, is under test here
    broker.set_cash(D("5000"))  # buying power = 2 x cash
    broker.set_price("AAPL", D("100"))
    store.put_documents([(f"s{i:03d}", pending(qty="1")) for i in range(200)])
    broker.reset_counters()
    result = orders_submit_pending(gateway=gateway, store=store)

    counts = outcome_counts(result)
    assert counts.get("submitted", 0) + counts.get("rejected", 0) == 200, counts
    assert 90 <= counts["submitted"] <= 100, counts
    rejected = [o for o in result.outcomes if str(o.outcome) == "rejected"]
    assert all("insufficient buying power" in o.reason for o in rejected)
    assert broker.counters()[POST] == 200  # each signal sent once, none twice
    statuses = {store.get(f"s{i:03d}").status for i in range(200)}
    assert statuses == {SignalStatus.SUBMITTED, SignalStatus.REJECTED}

    again = orders_submit_pending(gateway=gateway, store=store)
    assert again.outcomes == [] and broker.counters()[POST] == 200


def test_a_buy_against_an_open_sell_is_refused_as_a_wash_trade_and_the_cycle_goes_on(
    broker, gateway, store
):
    broker.seed_position("AAPL", 10)
    broker.set_price("AAPL", D("100"))
    # A sell limit above the market rests open however long the store takes: one at or below
    # the market would fill after the broker's fill delay and race the buy (a slow Firestore
    # emulator under load lost that race).
    gateway.submit_order(
        OrderRequest(
            symbol="AAPL",
            side="sell",
            type="limit",
            time_in_force="gtc",
            qty=D("10"),
            limit_price=D("110"),
            client_order_id="manual-sell-1",
        )
    )
    assert broker.settle(timeout=5)
    assert broker.order("manual-sell-1")["status"] == "new"
    store.put_documents([("a-wash", pending()), ("b-other", pending("MSFT"))])
    result = orders_submit_pending(gateway=gateway, store=store)

    got = {o.signal_id: (str(o.outcome), o.reason) for o in result.outcomes}
    assert got["a-wash"][0] == "rejected" and "potential wash trade" in got["a-wash"][1]
    assert got["b-other"][0] == "submitted"
    assert store.get("a-wash").status is SignalStatus.REJECTED
    assert broker.order("manual-sell-1")["status"] == "new"


def test_a_crypto_buy_holds_less_than_it_filled_and_reconciles_clean(broker, gateway, store):
    """Alpaca keeps the fee in the coin: 0.5 BTC bought holds about 0.49875."""
    broker.set_price("BTC/USD", D("60000"))
    store.put_documents([("btc", pending("BTC/USD", qty="0.5", time_in_force="gtc"))])
    orders_submit_pending(gateway=gateway, store=store)
    assert broker.settle(timeout=5)
    order_attempts_sync(gateway=gateway, store=store)

    held = D(broker.position("BTCUSD")["qty"])
    assert held < D("0.5")
    signal = store.get("btc")
    assert signal.status is SignalStatus.ACTIVE and signal.filled_qty == D("0.5")

    run = reconciliation_run(trigger="command", gateway=gateway, store=store)
    assert run.status == ReconciliationRun.Status.SUCCEEDED, run.error
    assert not run.mismatches.filter(symbol="BTCUSD").exists(), list(
        run.mismatches.values_list("kind", "detail")
    )
    assert not Mismatch.objects.filter(kind=Mismatch.Kind.QTY_MISMATCH).exists()


def test_a_crypto_exit_sells_what_is_held_and_alpaca_accepts_it(broker, gateway, store):
    broker.set_price("BTC/USD", D("60000"))
    store.put_documents([("btc-in", pending("BTC/USD", qty="0.5", time_in_force="gtc"))])
    orders_submit_pending(gateway=gateway, store=store)
    assert broker.settle(timeout=5)
    held = D(broker.position("BTCUSD")["qty"])

    exit_doc = {**pending("BTC/USD", qty="0.5", time_in_force="gtc"), "side": "sell"}
    store.put_documents([("btc-out", exit_doc)])
    result = orders_submit_pending(gateway=gateway, store=store)

    [outcome] = result.outcomes
    assert str(outcome.outcome) == "submitted", outcome.reason
    sent = OrderAttempt.objects.get(signal_id="btc-out")
    assert D(sent.request_payload["qty"]) == held
    assert broker.settle(timeout=5)
    assert broker.position("BTCUSD") is None  # all of it sold, nothing short
