"""The order cycle against hostile inputs: one signal never stops the cycle, risk checks fail
closed, only bad keys stop everything (issues 9 and 10; docs/design.md sections 3 and 5).

Both stores; CI runs this file on PostgreSQL and again on SQLite.
"""

from decimal import Decimal as D

import pytest

from brokerops.alpaca import BrokerRejected
from brokerops.intent.schema import SignalStatus
from orders.models import OrderAttempt, OrderEvent
from orders.services import orders_submit_pending
from tests.integration.conftest import gateway_for
from tests.integration.test_order_flow import pending
from tests.integration.test_reconciliation_robustness import ODD_IDS, POISON_QTYS, status_of

pytestmark = pytest.mark.django_db(transaction=True)
POST = ("POST", "/v2/orders")


def outcomes(result):
    return {o.signal_id: (str(o.outcome), o.reason) for o in result.outcomes}


@pytest.mark.parametrize("qty", POISON_QTYS)
def test_a_pending_signal_out_of_range_is_rejected_and_the_others_are_sent(
    broker, gateway, store, qty
):
    store.put_documents(
        [("good-1", pending()), ("poison", pending(qty=qty)), ("good-2", pending("MSFT"))]
    )
    result = orders_submit_pending(gateway=gateway, store=store)

    got = outcomes(result)
    assert got["poison"][0] == "rejected" and "qty" in got["poison"][1]
    assert got["good-1"][0] == got["good-2"][0] == "submitted"
    assert status_of(store, "poison") == SignalStatus.REJECTED
    assert "qty" in store.get("poison").raw["status_reason"]
    attempt = OrderAttempt.objects.get(signal_id="poison")
    assert attempt.status == OrderAttempt.Status.REJECTED
    assert attempt.events.filter(kind=OrderEvent.Kind.VALIDATION_FAILED).exists()
    assert broker.counters()[POST] == 2
    # The next cycle is clean: nothing left PENDING, nothing sent twice.
    again = orders_submit_pending(gateway=gateway, store=store)
    assert again.outcomes == [] and broker.counters()[POST] == 2


def test_a_limit_order_without_limit_price_is_rejected_with_the_reason(broker, gateway, store):
    store.put_documents([("no-price", pending(order_type="limit"))])
    result = orders_submit_pending(gateway=gateway, store=store)

    assert outcomes(result)["no-price"][0] == "rejected"
    doc = store.get("no-price")
    assert doc.raw["status"] == "REJECTED"
    assert "limit_price is required" in doc.raw["status_reason"]
    assert broker.counters().get(POST, 0) == 0


def test_a_document_whose_status_cannot_be_read_is_left_untouched(broker, gateway, store):
    store.put_documents([("odd", {**pending(order_type="limit"), "status": "pending"})])
    orders_submit_pending(gateway=gateway, store=store)
    assert store.get("odd").raw == {**pending(order_type="limit"), "status": "pending"}
    assert not OrderAttempt.objects.filter(signal_id="odd").exists()


@pytest.mark.parametrize("signal_id", ODD_IDS)
def test_any_id_firestore_accepts_is_sent_once_and_its_signal_moves(
    broker, gateway, store, signal_id
):
    store.put_documents([(signal_id, pending()), ("plain", pending("MSFT"))])
    result = orders_submit_pending(gateway=gateway, store=store)

    assert {o.outcome for o in result.outcomes} == {"submitted"}
    assert status_of(store, signal_id) in (SignalStatus.SUBMITTED, SignalStatus.ACTIVE)
    assert OrderAttempt.objects.get(signal_id=signal_id).status != OrderAttempt.Status.CREATED
    again = orders_submit_pending(gateway=gateway, store=store)
    assert again.outcomes == []
    assert broker.counters()[POST] == 2


def test_max_notional_prices_a_market_order_by_quantity_from_market_data(
    broker, gateway, store, settings
):
    """1,000,000 MSFT at market is about $420M: refused before sending, priced in bulk."""
    settings.ORDER_MAX_NOTIONAL = D("100000")
    broker.set_price("MSFT", D("420"))
    store.put_documents([("whale", pending("MSFT", qty="1000000")), ("minnow", pending("MSFT"))])
    broker.reset_counters()
    result = orders_submit_pending(gateway=gateway, store=store)

    got = outcomes(result)
    assert got["whale"][0] == "rejected" and "exceeds the max notional" in got["whale"][1]
    assert got["minnow"][0] == "submitted"
    assert broker.counters()[POST] == 1
    data_calls = [k for k in broker.counters() if "trades/latest" in k[1]]
    assert data_calls and sum(broker.counters()[k] for k in data_calls) == 1


def test_with_no_market_price_a_market_order_by_quantity_is_deferred_not_sent(
    broker, gateway, store, settings
):
    settings.ORDER_MAX_NOTIONAL = D("100000")
    broker.set_market_data("MSFT", None)
    store.put_documents([("blind", pending("MSFT", qty="10"))])
    result = orders_submit_pending(gateway=gateway, store=store)

    assert outcomes(result)["blind"][0] == "deferred"
    assert "no market price" in outcomes(result)["blind"][1]
    assert status_of(store, "blind") == SignalStatus.PENDING
    assert broker.counters().get(POST, 0) == 0
    attempt = OrderAttempt.objects.get(signal_id="blind")
    assert attempt.events.filter(kind=OrderEvent.Kind.DEFERRED).exists()


def test_a_failure_on_one_signal_is_recorded_and_the_cycle_goes_on(broker, gateway, store):
    store.put_documents([("a-breaks", pending()), ("b-fine", pending("MSFT"))])
    get_many = store.get_many  # the read of the signals before sending

    def breaks_for_one(ids):
        if "a-breaks" in ids:
            raise RuntimeError("store hiccup on one document")
        return get_many(ids)

    store.get_many = breaks_for_one
    result = orders_submit_pending(gateway=gateway, store=store)

    got = outcomes(result)
    assert got["a-breaks"][0] == "failed" and "store hiccup" in got["a-breaks"][1]
    assert got["b-fine"][0] == "submitted"
    attempt = OrderAttempt.objects.get(signal_id="a-breaks")
    assert attempt.events.filter(kind=OrderEvent.Kind.ERROR, message__contains="hiccup").exists()


def test_a_business_refusal_rejects_that_signal_and_the_cycle_goes_on(broker, gateway, store):
    """403 is Alpaca refusing this order (buying power), not bad keys."""
    broker.set_cash(D("1000"))
    store.put_documents([("a-too-big", pending(qty="500")), ("b-small", pending(qty="1"))])
    result = orders_submit_pending(gateway=gateway, store=store)

    got = outcomes(result)
    assert got["a-too-big"][0] == "rejected"
    assert "insufficient buying power" in got["a-too-big"][1]
    assert got["b-small"][0] == "submitted"
    assert status_of(store, "a-too-big") == SignalStatus.REJECTED


def test_bad_keys_stop_the_cycle_and_reject_nothing(broker, store):
    store.put_documents([("s1", pending()), ("s2", pending("MSFT"))])
    bad = gateway_for(broker)
    bad_keys = type(bad)(
        api_key="wrong", secret_key="wrong", base_url=broker.base_url, limiter=None
    )
    with pytest.raises(BrokerRejected) as raised:
        orders_submit_pending(gateway=bad_keys, store=store)
    assert raised.value.status == 401
    assert status_of(store, "s1") == status_of(store, "s2") == SignalStatus.PENDING
    assert not OrderAttempt.objects.filter(status=OrderAttempt.Status.REJECTED).exists()


def test_outcomes_before_a_stopping_error_are_kept_for_the_caller(broker, store):
    """The broker is down: the cycle stops, but the invalid document it already rejected is
    reported (the command prints it in its JSON beside the error)."""
    from brokerops.alpaca import AlpacaGateway, BrokerUnavailable
    from orders.services import SubmitResult

    store.put_documents([("broken", pending(order_type="limit")), ("fine", pending())])
    down = AlpacaGateway(
        api_key="test-key", secret_key="test-secret", base_url="http://127.0.0.1:9", limiter=None
    )
    result = SubmitResult()
    with pytest.raises(BrokerUnavailable):
        orders_submit_pending(gateway=down, store=store, result=result)
    assert outcomes(result) == {
        "broken": ("rejected", "invalid signal: limit_price is required for a limit order")
    }
    assert status_of(store, "fine") == SignalStatus.PENDING


def test_without_a_max_notional_limit_orders_cost_no_market_data_call(
    broker, gateway, store, settings
):
    """The market's price is read for the risk check (a max notional) and for orders naming no
    price of their own; a cycle of limit orders without a max notional makes no such call."""
    settings.ORDER_MAX_NOTIONAL = D("0")
    store.put_documents([("resting", pending("MSFT", order_type="limit", limit_price="1"))])
    broker.reset_counters()
    result = orders_submit_pending(gateway=gateway, store=store)

    assert outcomes(result)["resting"][0] == "submitted"
    assert not [k for k in broker.counters() if "trades/latest" in k[1]]

    settings.ORDER_MAX_NOTIONAL = D("100000")  # with one, the same order is priced too
    store.put_documents([("priced", pending("MSFT", order_type="limit", limit_price="1"))])
    broker.reset_counters()
    assert outcomes(orders_submit_pending(gateway=gateway, store=store))["priced"][0] == (
        "submitted"
    )
    assert [k for k in broker.counters() if "trades/latest" in k[1]]
