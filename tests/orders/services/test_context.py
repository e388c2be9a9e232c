"""`orders.services.context`: what one call of the order cycle decides on. The positions, risk
limits and latest prices read once, in bulk (`submit_context_open`), and each chunk's signals
re-read at most `REREAD_MAX_AGE_S` before their request (`SignalReread`, docs/design.md
section 3). The paper broker through the real alpaca-py client; the clock is a fake one."""

from decimal import Decimal
from types import SimpleNamespace

import pytest

from brokerops.alpaca import AlpacaGateway, BrokerRejected, NullLimiter, RetryPolicy
from brokerops.intent.local import LocalSignalStore
from brokerops.intent.schema import Signal, SignalStatus
from orders.services import context as context_module
from orders.services.context import REREAD_MAX_AGE_S, SignalReread, submit_context_open
from tests.integration.conftest import gateway_for
from tests.orders.services.helpers import CountingStore, pending_doc

pytestmark = pytest.mark.django_db
TRADES = ("GET", "/v2/stocks/trades/latest")


def signals(store, *docs):
    store.put_documents(list(docs))
    found = store.get_many([signal_id for signal_id, _ in docs])
    return [found[signal_id] for signal_id, _ in docs]


def test_positions_limits_and_prices_are_read_once_for_the_whole_call(
    broker, gateway, settings, default_scope
):
    settings.ORDER_MAX_NOTIONAL = Decimal("5000")
    settings.CRYPTO_FEE_TOLERANCE_BPS = 40
    broker.seed_position("AAPL", 7)
    broker.set_price("AAPL", Decimal("190.25"))
    broker.set_price("MSFT", Decimal("410"))
    store = LocalSignalStore()
    batch = signals(store, ("a", pending_doc("AAPL")), ("b", pending_doc("MSFT")))
    broker.reset_counters()

    context = submit_context_open(
        batch, gateway=gateway, store=store, actor="order-cycle", scope=default_scope
    )

    assert context.positions["AAPL"].qty == Decimal(7)
    assert context.prices == {"AAPL": Decimal("190.25"), "MSFT": Decimal("410")}
    assert context.prices_error == "" and context.accepted == []
    assert (context.limits.max_notional, context.limits.crypto_fee_tolerance_bps) == (
        Decimal("5000"),
        40,
    )
    assert broker.counters()[TRADES] == 1  # both symbols in one read
    assert broker.counters()[("GET", "/v2/positions")] == 1


def test_orders_naming_their_price_cost_no_market_data_call_without_a_max_notional(
    broker, gateway, settings, default_scope
):
    settings.ORDER_MAX_NOTIONAL = Decimal(0)
    store = LocalSignalStore()
    batch = signals(
        store,
        ("limit", pending_doc(order_type="limit", limit_price="1")),
        ("by-notional", pending_doc("MSFT", qty=None, notional="100")),
    )
    broker.reset_counters()

    context = submit_context_open(
        batch, gateway=gateway, store=store, actor="order-cycle", scope=default_scope
    )

    assert context.prices == {} and context.limits.max_notional is None
    assert TRADES not in broker.counters()


def test_with_a_max_notional_an_order_by_quantity_is_priced_even_naming_its_own_price(
    broker, gateway, settings, default_scope
):
    """A stop or a limit names no bound on what it fills at (`orders.validation.risk_value`)."""
    settings.ORDER_MAX_NOTIONAL = Decimal("100000")
    store = LocalSignalStore()
    batch = signals(store, ("stop", pending_doc(order_type="stop", stop_price="1")))

    context = submit_context_open(
        batch, gateway=gateway, store=store, actor="order-cycle", scope=default_scope
    )

    assert set(context.prices) == {"AAPL"}


def test_market_data_that_cannot_be_read_is_a_reason_not_an_error(broker, settings, default_scope):
    settings.ORDER_MAX_NOTIONAL = Decimal("100000")
    gateway = gateway_for(broker, retry_policy=RetryPolicy(max_attempts=1))
    broker.inject_next("GET /v2/stocks/trades/latest", "5xx", status=503)
    store = LocalSignalStore()

    context = submit_context_open(
        signals(store, ("a", pending_doc())),
        gateway=gateway,
        store=store,
        actor="order-cycle",
        scope=default_scope,
    )

    assert context.prices == {}
    assert context.prices_error.startswith("market data unavailable:")
    gateway.close()


def test_refused_keys_stop_the_call_before_anything_is_decided(broker, default_scope):
    bad = AlpacaGateway(
        api_key="wrong", secret_key="wrong", base_url=broker.base_url, limiter=NullLimiter()
    )
    store = LocalSignalStore()
    with pytest.raises(BrokerRejected) as raised:
        submit_context_open(
            signals(store, ("a", pending_doc())),
            gateway=bad,
            store=store,
            actor="order-cycle",
            scope=default_scope,
        )
    assert raised.value.status == 401
    bad.close()


# --- the re-read before each request --------------------------------------------------------


@pytest.fixture
def clock(monkeypatch):
    """The monotonic clock `SignalReread` reads, moved by hand."""
    now = SimpleNamespace(value=100.0)
    monkeypatch.setattr(context_module, "time", SimpleNamespace(monotonic=lambda: now.value))
    return now


def test_a_chunk_is_read_once_while_its_read_is_fresh(clock):
    counting = CountingStore()
    counting.store.put_documents([(i, pending_doc()) for i in ("s1", "s2", "s3")])
    reread = SignalReread(counting, ["s1", "s2", "s3"])

    first = reread.current("s1")
    clock.value += REREAD_MAX_AGE_S  # exactly the age allowed: still fresh
    second = reread.current("s2")

    assert counting.reads == [["s1", "s2", "s3"]]
    assert isinstance(first, Signal) and first.status is SignalStatus.PENDING
    assert second.id == "s2"


def test_an_older_read_is_done_again_for_what_is_left_of_the_chunk(clock):
    counting = CountingStore()
    counting.store.put_documents([(i, pending_doc()) for i in ("s1", "s2", "s3")])
    reread = SignalReread(counting, ["s1", "s2", "s3"])
    reread.current("s1")
    counting.store.transition(
        signal_id="s2",
        expected_status=SignalStatus.PENDING,
        new_status=SignalStatus.CANCELED,
        reason="withdrawn meanwhile",
    )

    clock.value += REREAD_MAX_AGE_S + 0.01
    current = reread.current("s2")

    assert counting.reads == [["s1", "s2", "s3"], ["s2", "s3"]]
    assert current.status is SignalStatus.CANCELED  # what it is now, not what it was


def test_a_deleted_document_reads_as_none():
    counting = CountingStore()
    counting.store.put_documents([("s1", pending_doc())])
    assert SignalReread(counting, ["s1", "gone"]).current("gone") is None


def test_what_the_listener_vouches_for_spares_the_read():
    counting = CountingStore()
    counting.store.put_documents([("s1", pending_doc()), ("s2", pending_doc())])
    seen = signals(LocalSignalStore(), ("s1", pending_doc()))[0]
    asked = []

    def view(ids, max_age_s):
        asked.append((list(ids), max_age_s))
        return {"s1": seen} if "s1" in ids else {}

    reread = SignalReread(counting, ["s1", "s2"], view)

    assert reread.current("s1") is seen and counting.reads == []
    assert reread.current("s2").id == "s2" and counting.reads == [["s2"]]
    assert asked == [(["s1"], REREAD_MAX_AGE_S), (["s2"], REREAD_MAX_AGE_S)]
