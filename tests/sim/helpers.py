"""Helpers for the paper broker tests: raw HTTP with the test key, order bodies."""

from __future__ import annotations

from typing import Any

import requests

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
