"""Helpers for the paper broker tests: raw HTTP with the test key, order bodies, and waiting
for delayed fills as a client would."""

from __future__ import annotations

import threading
from typing import Any

import requests

from brokerops.sim import PaperBroker
from tests.waiting import wait_for

KEY_ID = "test-key"
SECRET = "test-secret"
AUTH = {"APCA-API-KEY-ID": KEY_ID, "APCA-API-SECRET-KEY": SECRET}


class Raw:
    """``requests`` against the broker with the test key, a timeout, and no retries."""

    def __init__(self, base_url: str) -> None:
        self.base_url = base_url
        self.session = requests.Session()
        self.session.headers.update(AUTH)

    def request(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", 5)
        return self.session.request(method, self.base_url + path, **kwargs)

    def get(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("GET", path, **kwargs)

    def post(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("POST", path, **kwargs)

    def delete(self, path: str, **kwargs: Any) -> requests.Response:
        return self.request("DELETE", path, **kwargs)

    def close(self) -> None:
        self.session.close()


def market(symbol: str, qty: object, side: str = "buy", **extra: object) -> dict[str, object]:
    """A ``POST /v2/orders`` body for a market order."""
    tif = "gtc" if "/" in symbol else "day"
    return {
        "symbol": symbol,
        "qty": str(qty),
        "side": side,
        "type": "market",
        "time_in_force": tif,
        **extra,
    }


def limit(
    symbol: str, qty: object, price: object, side: str = "buy", **extra: object
) -> dict[str, object]:
    """A ``POST /v2/orders`` body for a ``gtc`` limit order (``extra`` overrides any field)."""
    body = market(symbol, qty, side)
    body.update(type="limit", limit_price=str(price), time_in_force="gtc")
    body.update(extra)
    return body


def assert_in_flight(order: dict[str, Any]) -> None:
    """Alpaca's answer to a new order: ``pending_new`` with nothing filled yet."""
    assert order["status"] == "pending_new", order
    assert order["filled_qty"] == "0"
    assert order["filled_avg_price"] is None
    assert order["filled_at"] is None


def submit_and_settle(raw: Raw, broker: PaperBroker, body: dict[str, object]) -> dict[str, Any]:
    """``POST /v2/orders`` on a broker with delayed fills: the answer must be in flight
    (:func:`assert_in_flight`); waits until the order reaches the fill model, then returns it as
    ``GET /v2/orders/{id}`` serves it."""
    response = raw.post("/v2/orders", json=body)
    assert response.status_code == 200, response.text
    placed = response.json()
    assert_in_flight(placed)
    assert broker.settle(timeout=5)
    return raw.get(f"/v2/orders/{placed['id']}").json()


def wait_for_status(
    raw: Raw, order_id: str, status: str, timeout: float = 5.0, every: float = 0.02
) -> dict[str, Any]:
    """Poll ``GET /v2/orders/{id}`` until the order has ``status`` (what a client does without
    the broker's Python handle); returns the order as served then."""

    def reached() -> dict[str, Any] | None:
        order = raw.get(f"/v2/orders/{order_id}").json()
        return order if order["status"] == status else None

    return wait_for(reached, timeout_s=timeout, what=f"order {order_id} {status}", poll_s=every)


def broker_threads(prefix: str = "paper-broker") -> set[threading.Thread]:
    """The paper broker's own live threads (every one is named ``paper-broker-...``). A leak test
    compares these before and after, never the process's thread count: threads of other tests
    (clients, pools, earlier brokers) start and end meanwhile."""
    return {t for t in threading.enumerate() if t.name.startswith(prefix)}
