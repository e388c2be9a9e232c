"""Per-key rate limit: X-RateLimit-* headers, 429s (Alpaca's: without Retry-After), counted,
window resets. The default profile has Alpaca's limit (200 a minute, no ``Retry-After``); the
lenient values (no limit, ``Retry-After`` on 429s) are options."""

from __future__ import annotations

import time

import pytest
import requests
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient

from brokerops.sim import PaperBroker
from brokerops.sim.ratelimit import RateLimiter
from tests.waiting import wait_for

from .helpers import AUTH, Raw, market


def test_headers_count_down_then_429_with_the_retry_after_option(
    raw: Raw, paper_broker: PaperBroker
) -> None:
    """A small limit counts down to a 429; ``retry_after_header`` (a lenient option, Alpaca sends
    none: see test_strict_429_has_no_retry_after_only_the_reset) adds ``Retry-After``."""
    paper_broker.set_fidelity(retry_after_header=True)
    paper_broker.set_rate_limit(3)
    before = time.time()
    remaining = []
    for _ in range(3):
        response = raw.get("/v2/account")
        assert response.status_code == 200
        assert response.headers["X-RateLimit-Limit"] == "3"
        remaining.append(response.headers["X-RateLimit-Remaining"])
        reset = int(response.headers["X-RateLimit-Reset"])
        assert before <= reset <= before + 61
    assert remaining == ["2", "1", "0"]

    limited = raw.get("/v2/positions")
    assert limited.status_code == 429
    assert limited.json() == {"code": 42910000, "message": "rate limit exceeded"}
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert paper_broker.rate_limited_count() == 1
    assert paper_broker.counters()[("GET", "/v2/positions")] == 1


def test_window_resets(raw: Raw, paper_broker: PaperBroker) -> None:
    # A window long enough that three loopback requests fit in it on a loaded machine; then the
    # limit lifts on its own once the window has passed (refused requests do not extend it).
    paper_broker.set_rate_limit(2, window_s=2)
    assert [raw.get("/v2/account").status_code for _ in range(3)] == [200, 200, 429]
    wait_for(lambda: raw.get("/v2/account").status_code == 200, what="the window to reset")


def test_limit_is_per_api_key(paper_broker: PaperBroker) -> None:
    paper_broker.add_key("other-key", "other-secret")
    paper_broker.set_rate_limit(1)
    url = paper_broker.base_url + "/v2/account"
    assert requests.get(url, headers=AUTH, timeout=5).status_code == 200
    assert requests.get(url, headers=AUTH, timeout=5).status_code == 429
    other = {"APCA-API-KEY-ID": "other-key", "APCA-API-SECRET-KEY": "other-secret"}
    assert requests.get(url, headers=other, timeout=5).status_code == 200


def test_no_headers_when_the_limit_is_off(
    raw: Raw, paper_broker: PaperBroker, lenient_raw: Raw
) -> None:
    assert raw.get("/v2/account").headers["X-RateLimit-Limit"] == "200"  # the default: Alpaca's
    paper_broker.set_rate_limit(None)  # the single option
    assert "X-RateLimit-Limit" not in raw.get("/v2/account").headers
    assert "X-RateLimit-Limit" not in lenient_raw.get("/v2/account").headers  # strict=False


def test_alpaca_py_sees_429_as_api_error(
    trading_client: TradingClient, paper_broker: PaperBroker
) -> None:
    paper_broker.set_rate_limit(1)
    trading_client.get_account()
    with pytest.raises(APIError) as caught:
        trading_client.get_account()
    assert caught.value.status_code == 429
    assert caught.value.code == 42910000


def test_unknown_key_is_401_without_code(paper_broker: PaperBroker) -> None:
    response = requests.get(
        paper_broker.base_url + "/v2/account",
        headers={"APCA-API-KEY-ID": "nope", "APCA-API-SECRET-KEY": "nope"},
        timeout=5,
    )
    assert response.status_code == 401
    assert response.json() == {"message": "unauthorized."}
    client = TradingClient("nope", "nope", url_override=paper_broker.base_url)
    with pytest.raises(APIError) as caught:
        client.get_account()
    with pytest.raises(KeyError):
        _ = caught.value.code


def test_limiter_fixed_window_with_a_fake_clock() -> None:
    now = [1000.25]
    limiter = RateLimiter(2, 60.0, clock=lambda: now[0])
    first = limiter.check("k")
    assert first is not None
    assert (first.allowed, first.remaining, first.reset_epoch) == (True, 1, 1061)
    assert limiter.check("k").allowed  # type: ignore[union-attr]
    denied = limiter.check("k")
    assert denied is not None
    assert (denied.allowed, denied.retry_after_s) == (False, 60)
    now[0] += 60
    assert limiter.check("k").allowed  # type: ignore[union-attr]


def test_strict_limit_is_200_a_minute_with_headers_on_every_answer(
    strict_raw: Raw, strict_broker: PaperBroker
) -> None:
    before = time.time()
    answers = [
        strict_raw.get("/v2/account"),
        strict_raw.get("/v2/watchlists"),  # 404
        strict_raw.request("PATCH", "/v2/account"),  # 405
        strict_raw.get("/v2/orders/not-a-uuid"),  # 422
        strict_raw.post("/v2/orders", json=market("NOSHRT", 1, "sell")),  # 422
        strict_raw.post("/v2/orders", json=market("AAPL", 100_000)),  # 403
    ]
    assert [a.status_code for a in answers] == [200, 404, 405, 422, 422, 403]
    for n, answer in enumerate(answers):
        assert answer.headers["X-RateLimit-Limit"] == "200"
        assert answer.headers["X-RateLimit-Remaining"] == str(199 - n)
        reset = answer.headers["X-RateLimit-Reset"]
        assert reset.isdigit() and before <= int(reset) <= before + 61


def test_strict_429_has_no_retry_after_only_the_reset(
    strict_raw: Raw, strict_broker: PaperBroker, strict_client: TradingClient
) -> None:
    strict_broker.set_rate_limit(2)
    assert [strict_raw.get("/v2/account").status_code for _ in range(2)] == [200, 200]
    limited = strict_raw.get("/v2/positions")
    assert limited.status_code == 429
    assert limited.json() == {"code": 42910000, "message": "rate limit exceeded"}
    assert "Retry-After" not in limited.headers
    assert limited.headers["X-RateLimit-Limit"] == "2"
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert 0 <= int(limited.headers["X-RateLimit-Reset"]) - time.time() <= 61
    with pytest.raises(APIError) as caught:
        strict_client.get_account()
    assert caught.value.status_code == 429


def test_strict_injected_429_tells_the_wait_in_the_reset_header(
    strict_raw: Raw, strict_broker: PaperBroker
) -> None:
    strict_broker.inject_next("GET /v2/orders", "429", retry_after_s=7)
    before = time.time()
    limited = strict_raw.get("/v2/orders")
    assert limited.status_code == 429
    assert "Retry-After" not in limited.headers
    assert limited.headers["X-RateLimit-Remaining"] == "0"
    assert before + 7 <= int(limited.headers["X-RateLimit-Reset"]) <= time.time() + 8
    assert strict_raw.get("/v2/orders").status_code == 200


def test_retry_after_and_the_limit_are_options() -> None:
    with PaperBroker(strict=True, retry_after_header=True) as broker:
        broker.set_rate_limit(1)
        raw = Raw(broker.base_url)
        raw.get("/v2/account")
        assert "Retry-After" in raw.get("/v2/account").headers
        raw.close()
    with PaperBroker(strict=True, rate_limit_per_min=None) as broker:
        raw = Raw(broker.base_url)
        assert "X-RateLimit-Limit" not in raw.get("/v2/account").headers
        raw.close()
