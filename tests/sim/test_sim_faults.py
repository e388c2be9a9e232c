"""Fault injection: each kind, forced and seeded, and the traps it sets for a client."""

from __future__ import annotations

import json
import time

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce
from alpaca.trading.requests import MarketOrderRequest

from brokerops.sim import FaultConfig, FaultKind, PaperBroker
from tests.waiting import wait_for

from .helpers import Raw, market, wait_for_status

ORDERS = "POST /v2/orders"


def _outcome(raw: Raw, path: str = "/v2/account", timeout: float = 2.0) -> object:
    """What a client sees: the status code, or the name of the exception."""
    try:
        return raw.get(path, timeout=timeout).status_code
    except requests.exceptions.Timeout:
        return "timeout"
    except requests.exceptions.ConnectionError:
        return "connection error"


def test_reset_after_places_the_order_but_the_client_sees_a_connection_error(
    raw: Raw, paper_broker: PaperBroker
) -> None:
    paper_broker.inject_next(ORDERS, "reset_after")
    with pytest.raises(requests.exceptions.ConnectionError):
        raw.post("/v2/orders", json=market("AAPL", 1, client_order_id="lost-reply"))
    placed = raw.get("/v2/orders:by_client_order_id", params={"client_order_id": "lost-reply"})
    assert placed.status_code == 200
    # Placed (in flight, or already filled); the client sees it fill like any order.
    assert placed.json()["status"] in ("pending_new", "filled")
    assert wait_for_status(raw, placed.json()["id"], "filled")["filled_qty"] == "1"
    resend = raw.post("/v2/orders", json=market("AAPL", 1, client_order_id="lost-reply"))
    assert resend.status_code == 422
    assert len(paper_broker.orders()) == 1


def test_reset_before_places_nothing(raw: Raw, paper_broker: PaperBroker) -> None:
    paper_broker.inject_next(ORDERS, FaultKind.RESET_BEFORE)
    with pytest.raises(requests.exceptions.ConnectionError):
        raw.post("/v2/orders", json=market("AAPL", 1, client_order_id="never"))
    assert paper_broker.order("never") is None
    assert raw.post("/v2/orders", json=market("AAPL", 1, client_order_id="never")).ok


def test_504_after_is_the_double_fill_trap_of_alpaca_py(paper_broker: PaperBroker) -> None:
    """alpaca-py retries a 504 on POST: with a fresh client_order_id that is two orders."""
    client = TradingClient("test-key", "test-secret", url_override=paper_broker.base_url)
    client._retry_wait = 0
    paper_broker.inject_next(ORDERS, "5xx_after")
    order = client.submit_order(
        MarketOrderRequest(symbol="AAPL", qty=1, side=OrderSide.BUY, time_in_force=TimeInForce.DAY)
    )
    assert len(paper_broker.orders()) == 2
    assert str(order.id) == paper_broker.orders()[1]["id"]
    assert paper_broker.counters()[("POST", "/v2/orders")] == 2


def test_5xx_before_and_after(raw: Raw, paper_broker: PaperBroker) -> None:
    paper_broker.inject_next(ORDERS, "5xx", status=503)
    before = raw.post("/v2/orders", json=market("AAPL", 1))
    assert before.status_code == 503
    assert before.json()["code"] == 50310000
    assert paper_broker.orders() == []

    paper_broker.inject_next(ORDERS, "5xx_after")
    after = raw.post("/v2/orders", json=market("AAPL", 1))
    assert after.status_code == 504
    assert len(paper_broker.orders()) == 1


def test_non_json_502_breaks_api_error_code(
    trading_client: TradingClient, paper_broker: PaperBroker, raw: Raw
) -> None:
    paper_broker.inject_next("GET /v2/account", "non_json")
    response = raw.get("/v2/account")
    assert response.status_code == 502
    assert response.headers["Content-Type"].startswith("text/html")
    assert b"502 Bad Gateway" in response.content

    paper_broker.inject_next("GET /v2/positions", "non_json")
    with pytest.raises(APIError) as caught:
        trading_client.get_all_positions()
    assert caught.value.status_code == 502
    with pytest.raises(json.JSONDecodeError):
        _ = caught.value.code


def test_non_json_after_applies_the_order(raw: Raw, paper_broker: PaperBroker) -> None:
    paper_broker.inject_next(ORDERS, "non_json_after")
    assert raw.post("/v2/orders", json=market("AAPL", 1)).status_code == 502
    assert len(paper_broker.orders()) == 1


def test_lenient_forced_429_carries_retry_after(
    lenient_raw: Raw, lenient_broker: PaperBroker
) -> None:
    """The lenient profile (``retry_after_header``, no rate limit): an injected 429 says the wait
    in ``Retry-After``. Alpaca sends none (test_sim_ratelimit's strict injected 429 test)."""
    lenient_broker.inject_next("*", "429", count=2, retry_after_s=7)
    first = lenient_raw.get("/v2/positions")
    assert first.status_code == 429
    assert first.headers["Retry-After"] == "7"
    assert lenient_raw.post("/v2/orders", json=market("AAPL", 1)).status_code == 429
    assert lenient_raw.get("/v2/positions").status_code == 200
    assert lenient_broker.rate_limited_count() == 2
    assert lenient_broker.orders() == []


def test_stall_outlasts_the_client_timeout_then_applies(
    raw: Raw, paper_broker: PaperBroker
) -> None:
    paper_broker.inject_next(ORDERS, "stall", stall_s=0.5)
    with pytest.raises(requests.exceptions.Timeout):
        raw.post("/v2/orders", json=market("AAPL", 1, client_order_id="late"), timeout=0.1)
    assert paper_broker.order("late") is None
    wait_for(lambda: paper_broker.order("late") is not None, what="the stalled order to land")


def test_stall_after_applies_before_the_client_gives_up(
    raw: Raw, paper_broker: PaperBroker
) -> None:
    paper_broker.inject_next(ORDERS, "stall_after", stall_s=5)
    with pytest.raises(requests.exceptions.Timeout):
        raw.post("/v2/orders", json=market("AAPL", 1, client_order_id="slow"), timeout=0.2)
    assert paper_broker.order("slow") is not None


def test_stop_is_prompt_during_a_stall() -> None:
    broker = PaperBroker(default_assets=True).start()
    broker.inject_next("GET /v2/account", "stall", stall_s=60)
    client = Raw(broker.base_url)
    with pytest.raises(requests.exceptions.Timeout):
        client.get("/v2/account", timeout=0.2)
    started = time.monotonic()
    broker.stop()
    assert time.monotonic() - started < 1.0
    client.close()


def test_latency_delays_matching_requests_only(raw: Raw, paper_broker: PaperBroker) -> None:
    paper_broker.set_faults(FaultConfig(latency_s=0.2, routes=("GET /v2/account",)))
    started = time.monotonic()
    raw.get("/v2/positions")
    assert time.monotonic() - started < 0.15
    started = time.monotonic()
    raw.get("/v2/account")
    assert time.monotonic() - started >= 0.2


KIND_CONFIGS = {
    "stall": {"stall_rate": 0.3, "stall_s": 0.01},
    "stall_after": {"stall_after_rate": 0.3, "stall_s": 0.01},
    "reset_before": {"reset_before_rate": 0.3},
    "reset_after": {"reset_after_rate": 0.3},
    "5xx": {"error_5xx_rate": 0.3},
    "5xx_after": {"error_5xx_after_rate": 0.3},
    "non_json": {"non_json_rate": 0.3},
    "non_json_after": {"non_json_after_rate": 0.3},
    "429": {"rate_429": 0.3},
}


EXPECTED_OUTCOMES: dict[str, set[object]] = {
    "reset_before": {"connection error"},
    "reset_after": {"connection error"},
    "5xx": {500, 502, 503, 504},
    "5xx_after": {500, 502, 503, 504},
    "non_json": {502},
    "non_json_after": {502},
    "429": {429},
}


@pytest.mark.parametrize("kind", sorted(KIND_CONFIGS))
def test_each_kind_reproduces_with_its_seed(raw: Raw, paper_broker: PaperBroker, kind: str) -> None:
    def run(seed: int) -> tuple[list[object], list[tuple[int | None, str, int]]]:
        paper_broker.clear_faults()
        config = FaultConfig(seed=seed, routes=("GET /v2/account",), **KIND_CONFIGS[kind])
        paper_broker.set_faults(config)
        outcomes = [_outcome(raw) for _ in range(30)]
        assert _outcome(raw, "/v2/positions") == 200  # not eligible: never faulted
        log = [(e.draw, e.kind.value, e.status) for e in paper_broker.fault_log()]
        return outcomes, log

    first = run(11)
    assert first == run(11)
    assert first != run(12)
    outcomes, log = first
    assert log
    assert {k for _, k, _ in log} == {kind}
    faulted = [o for o in outcomes if o != 200]
    if kind.startswith("stall"):
        assert faulted == []  # a short stall still answers
    else:
        assert len(faulted) == len(log)
        assert set(faulted) <= EXPECTED_OUTCOMES[kind]


def test_seeded_mix_of_faults_on_order_submission(raw: Raw, paper_broker: PaperBroker) -> None:
    config = FaultConfig(
        seed=5,
        reset_before_rate=0.1,
        reset_after_rate=0.1,
        error_5xx_rate=0.1,
        error_5xx_after_rate=0.1,
        non_json_rate=0.05,
        rate_429=0.05,
        methods=("POST",),
    )

    def run() -> list[object]:
        paper_broker.clear_faults()
        paper_broker.set_faults(config)
        seen = []
        for _ in range(60):
            try:
                seen.append(raw.post("/v2/orders", json=market("AAPL", 1)).status_code)
            except requests.exceptions.ConnectionError:
                seen.append("reset")
        return seen

    first = run()
    placed = len(paper_broker.orders())
    assert first == run()
    applied = sum(1 for e in paper_broker.fault_log() if e.kind.value.endswith("_after"))
    assert placed == first.count(200) + applied
    assert {"reset", 200, 429} <= set(first)


def test_counters_count_every_request(raw: Raw, paper_broker: PaperBroker) -> None:
    paper_broker.reset_counters()
    paper_broker.inject_next("GET /v2/orders/{id}", "reset_before")
    order = raw.post("/v2/orders", json=market("AAPL", 1)).json()
    raw.get("/v2/positions")
    raw.get("/v2/orders", params={"status": "all"})
    with pytest.raises(requests.exceptions.ConnectionError):
        raw.get(f"/v2/orders/{order['id']}")
    raw.get(f"/v2/orders/{order['id']}")
    raw.get("/v2/positions/BTC/USD")
    assert paper_broker.counters() == {
        ("POST", "/v2/orders"): 1,
        ("GET", "/v2/positions"): 1,
        ("GET", "/v2/orders"): 1,
        ("GET", "/v2/orders/{id}"): 2,
        ("GET", "<unmatched>"): 1,
    }
    assert paper_broker.total_requests() == 6
    assert paper_broker.status_counts() == {200: 4, 0: 1, 404: 1}
    paper_broker.reset_counters()
    assert paper_broker.counters() == {}


def test_fault_config_rejects_rates_over_one() -> None:
    with pytest.raises(ValueError, match="at most 1"):
        FaultConfig(reset_after_rate=0.6, error_5xx_rate=0.6)
