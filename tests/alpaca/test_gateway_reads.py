"""Reads through the real alpaca-py client against the paper broker: typed, Decimal, counted."""

import uuid
from decimal import Decimal

import pytest

from brokerops.alpaca import Asset, BrokerNotFound, Order, Position


def test_list_positions_is_one_call_with_signed_decimals(broker, gateway):
    broker.seed_position("AAPL", 10, avg_entry_price="150.25")
    broker.seed_position("TSLA", -3, avg_entry_price="200")
    broker.seed_position("BTC/USD", "0.125", avg_entry_price="60000")

    positions = {p.symbol_key: p for p in gateway.list_positions()}

    assert set(positions) == {"AAPL", "TSLA", "BTCUSD"}
    assert all(isinstance(p, Position) for p in positions.values())
    assert positions["TSLA"].qty == Decimal(-3) and positions["TSLA"].side == "short"
    assert positions["BTCUSD"].qty == Decimal("0.125")
    assert positions["AAPL"].avg_entry_price == Decimal("150.25")
    assert isinstance(positions["AAPL"].market_value, Decimal)
    assert broker.counters() == {("GET", "/v2/positions"): 1}
    assert gateway.api_calls == 1


def test_empty_positions_is_an_empty_list(gateway):
    assert gateway.list_positions() == []


def test_get_position_by_slash_symbol_uses_the_position_form(broker, gateway):
    broker.seed_position("BTC/USD", "0.5")
    position = gateway.get_position("BTC/USD")
    assert position.symbol_key == "BTCUSD" and position.qty == Decimal("0.5")
    assert broker.counters() == {("GET", "/v2/positions/{symbol_or_asset_id}"): 1}


def test_get_position_by_asset_id(broker, gateway):
    broker.seed_position("AAPL", 4)
    asset_id = broker.position("AAPL")["asset_id"]
    assert gateway.get_position(asset_id).qty == Decimal(4)
    assert gateway.get_position(uuid.UUID(asset_id)).symbol == "AAPL"


def test_missing_position_is_not_found(gateway):
    with pytest.raises(BrokerNotFound):
        gateway.get_position("AAPL")


def test_missing_order_by_id_and_by_client_id_is_not_found(broker, gateway):
    with pytest.raises(BrokerNotFound):
        gateway.get_order(uuid.uuid4())
    with pytest.raises(BrokerNotFound):
        gateway.get_order_by_client_id("bo-never-sent")
    # Answers, not failures: looked up once each, never retried.
    assert broker.counters() == {
        ("GET", "/v2/orders/{id}"): 1,
        ("GET", "/v2/orders:by_client_order_id"): 1,
    }


def test_non_uuid_order_id_is_a_caller_error(gateway):
    with pytest.raises(ValueError, match="UUID"):
        gateway.get_order("not-an-id")


def test_get_order_by_id_and_client_id(broker, gateway):
    seeded = broker.seed_order(
        "AAPL", "2.5", "buy", type="limit", limit_price="99.99", client_order_id="bo-sig-7"
    )
    by_id = gateway.get_order(seeded["id"])
    by_coid = gateway.get_order_by_client_id("bo-sig-7")
    assert isinstance(by_id, Order) and by_id == by_coid
    assert by_id.qty == Decimal("2.5") and by_id.limit_price == Decimal("99.99")
    assert by_id.status == "new" and by_id.order_type == "limit"


def test_unknown_enum_values_do_not_break_reads(broker, gateway):
    broker.seed_position("AAPL", 1)
    broker.set_asset_fields("AAPL", exchange="NEWEXCH")
    order = broker.seed_order("MSFT", 1, client_order_id="bo-odd")
    broker.set_order_fields("bo-odd", status="some_new_status")

    assert gateway.list_positions()[0].symbol == "AAPL"
    assert gateway.find_asset("AAPL").exchange == "NEWEXCH"
    assert gateway.get_order(order["id"]).status == "some_new_status"
    assert [o.status for o in gateway.list_orders(status="open")] == ["some_new_status"]


def test_alpaca_py_models_would_have_failed_on_the_same_data(broker):
    """The trap the gateway avoids: alpaca-py's pydantic models reject a new exchange."""
    from alpaca.trading.client import TradingClient

    broker.seed_position("AAPL", 1)
    broker.set_asset_fields("AAPL", exchange="NEWEXCH")
    client = TradingClient("test-key", "test-secret", url_override=broker.base_url)
    with pytest.raises(ValueError):  # pydantic.ValidationError
        client.get_all_positions()


def test_assets_are_read_once_and_cached(broker, gateway, clock):
    assets = gateway.list_assets()
    assert all(isinstance(a, Asset) for a in assets)
    assert gateway.find_asset("btc/usd").asset_class == "crypto"
    assert gateway.find_asset("NOPE") is None
    assert gateway.find_asset("NOSHRT").shortable is False
    assert broker.counters() == {("GET", "/v2/assets"): 1}
    clock.now += 301  # past the TTL
    gateway.list_assets()
    gateway.list_assets(refresh=True)
    assert broker.counters() == {("GET", "/v2/assets"): 3}


def test_asset_increments_are_decimals(gateway):
    btc = gateway.find_asset("BTC/USD")
    for value in (btc.min_order_size, btc.min_trade_increment, btc.price_increment):
        assert value is None or isinstance(value, Decimal)


def test_account(gateway):
    account = gateway.get_account()
    assert isinstance(account.cash, Decimal) and account.cash > 0
    assert account.status


def test_count_calls_scopes_and_total(broker, gateway):
    gateway.list_positions()
    with gateway.count_calls() as calls:
        gateway.list_positions()
        gateway.get_account()
        with pytest.raises(BrokerNotFound):
            gateway.get_position("AAPL")
    assert calls.total == 3 and calls.by_method == {"GET": 3}
    assert gateway.api_calls == 4 == broker.total_requests()


def test_count_calls_for_the_current_thread_only(gateway):
    import threading

    with gateway.count_calls(current_thread_only=True) as mine, gateway.count_calls() as every:
        gateway.list_positions()
        worker = threading.Thread(target=gateway.list_positions)
        worker.start()
        worker.join()
    assert (mine.total, every.total) == (1, 2)


class RecordingLimiter:
    def __init__(self):
        self.acquired = 0
        self.pauses = []

    def acquire(self):
        self.acquired += 1

    def pause(self, seconds):
        self.pauses.append(seconds)


def test_every_attempt_takes_a_token_retries_included(broker, make_gateway, frozen_wall):
    limiter = RecordingLimiter()
    gateway = make_gateway(limiter=limiter, wall_clock=frozen_wall)
    broker.inject_next("GET /v2/positions", "5xx", count=2)
    broker.inject_next("GET /v2/account", "429", retry_after_s=2)
    gateway.list_positions()
    gateway.get_account()
    assert limiter.acquired == 5 == broker.total_requests() == gateway.api_calls
    assert broker.status_counts() == {500: 2, 429: 1, 200: 2}
    # One pause, only for the 429 (never for a 5xx), until the reset the broker sent in Alpaca's
    # way: X-RateLimit-Reset 2 s ahead in whole epoch seconds, no Retry-After.
    assert not broker.fidelity.retry_after_header
    assert len(limiter.pauses) == 1
    frozen_wall.assert_waits_until_reset(limiter.pauses[0], 2)


def test_nested_count_scopes_are_independent(gateway):
    with gateway.count_calls() as outer:
        with gateway.count_calls() as inner:
            gateway.get_account()
        gateway.get_account()
    assert (outer.total, inner.total) == (2, 1)


def test_alpaca_py_alone_sends_the_slash_symbol_into_the_path(broker):
    """The trap get_position avoids: alpaca-py requests /v2/positions/BTC/USD."""
    from alpaca.common.exceptions import APIError
    from alpaca.trading.client import TradingClient

    broker.seed_position("BTC/USD", "0.5")
    client = TradingClient("test-key", "test-secret", url_override=broker.base_url)
    with pytest.raises(APIError):
        client.get_open_position("BTC/USD")
    assert ("GET", "/v2/positions/{symbol_or_asset_id}") not in broker.counters()


def test_a_helper_thread_counts_in_every_scope_of_the_thread_it_works_for(gateway):
    """A thread reading ahead for another (the ledger's page reader): its calls count in each
    of the caller's own scopes, nested ones too, never in another thread's."""
    import threading

    caller = threading.get_ident()

    def helper():
        with gateway.count_calls_as(caller):
            gateway.list_positions()
        gateway.list_positions()  # after: its own again

    with (
        gateway.count_calls(current_thread_only=True) as outer,
        gateway.count_calls(current_thread_only=True) as inner,
    ):
        gateway.get_account()
        worker = threading.Thread(target=helper)
        worker.start()
        worker.join()
    assert (outer.total, inner.total, gateway.api_calls) == (2, 2, 3)
