"""The one mapping from alpaca-py / requests failures to the broker error taxonomy."""

import json

import pytest
import requests
from alpaca.common.exceptions import APIError

from brokerops.alpaca.errors import (
    BrokerMalformedResponse,
    BrokerNotFound,
    BrokerRateLimited,
    BrokerRejected,
    BrokerUnavailable,
    map_exception,
    map_http_error,
    parse_retry_after,
)

SECRET = "sk-super-secret-value"


def _api_error(status: int, text: str, headers: dict | None = None) -> APIError:
    response = requests.Response()
    response.status_code = status
    response._content = text.encode()
    response.headers.update(headers or {})
    return APIError(text, requests.HTTPError(response=response))


def test_404_is_not_found():
    err = map_exception(
        _api_error(404, '{"code": 40410000, "message": "position does not exist"}'),
        method="GET",
        path="/v2/positions/AAPL",
    )
    assert isinstance(err, BrokerNotFound)
    assert "position does not exist" in str(err)


def test_429_carries_retry_after_seconds():
    err = map_exception(
        _api_error(
            429, '{"code": 42910000, "message": "rate limit exceeded"}', {"Retry-After": "7"}
        ),
        method="GET",
        path="/v2/orders",
    )
    assert isinstance(err, BrokerRateLimited)
    assert err.retry_after_s == 7.0
    assert err.outcome_unknown is False


def test_429_falls_back_to_ratelimit_reset_epoch():
    err = map_http_error(
        method="POST",
        path="/v2/orders",
        status=429,
        body_text="",
        headers={"X-RateLimit-Reset": "1012"},
        now=lambda: 1000.0,
    )
    assert isinstance(err, BrokerRateLimited)
    assert err.retry_after_s == 12.0


def test_retry_after_http_date_and_garbage():
    assert parse_retry_after({"Retry-After": "Thu, 01 Jan 1970 00:00:30 GMT"}, now=lambda: 10) == 20
    assert parse_retry_after({"Retry-After": "soon"}) is None
    assert parse_retry_after({"X-RateLimit-Reset": "x"}) is None
    assert parse_retry_after({}) is None


def test_422_duplicate_client_order_id_is_flagged():
    body = json.dumps({"code": 40010001, "message": "client_order_id must be unique"})
    err = map_exception(_api_error(422, body), method="POST", path="/v2/orders")
    assert isinstance(err, BrokerRejected)
    assert (err.status, err.code) == (422, 40010001)
    assert err.is_duplicate_client_order_id
    assert err.outcome_unknown is False


def test_other_422_is_rejected_not_duplicate():
    body = json.dumps({"code": 42210000, "message": "sub-penny increment does not fulfill"})
    err = map_exception(_api_error(422, body), method="POST", path="/v2/orders")
    assert isinstance(err, BrokerRejected)
    assert not err.is_duplicate_client_order_id


def test_codeless_401_maps_cleanly():
    # APIError.code would raise KeyError on this body.
    err = map_exception(_api_error(401, '{"message": "unauthorized."}'), method="GET", path="/x")
    assert isinstance(err, BrokerRejected)
    assert err.status == 401 and err.code is None and err.is_auth_error
    assert err.broker_message == "unauthorized."


def test_html_502_maps_to_unavailable():
    # APIError.code would raise JSONDecodeError on this body.
    html = "<html><body><h1>502 Bad Gateway</h1>\n</body></html>"
    err = map_exception(_api_error(502, html), method="GET", path="/v2/positions")
    assert isinstance(err, BrokerUnavailable)
    assert err.status == 502 and not err.outcome_unknown
    assert "502 Bad Gateway" in str(err)


@pytest.mark.parametrize(("method", "unknown"), [("GET", False), ("POST", True), ("DELETE", True)])
def test_5xx_outcome_unknown_only_for_writes(method, unknown):
    err = map_exception(_api_error(504, "Gateway Timeout"), method=method, path="/v2/orders")
    assert isinstance(err, BrokerUnavailable)
    assert err.outcome_unknown is unknown


def test_read_timeout_on_post_is_outcome_unknown():
    err = map_exception(requests.ReadTimeout("read timed out"), method="POST", path="/v2/orders")
    assert isinstance(err, BrokerUnavailable) and err.outcome_unknown


def test_connect_timeout_and_refused_are_known_not_sent():
    for exc in (
        requests.ConnectTimeout("connect timed out"),
        requests.ConnectionError("NewConnectionError: [Errno 111] Connection refused"),
    ):
        err = map_exception(exc, method="POST", path="/v2/orders")
        assert isinstance(err, BrokerUnavailable) and not err.outcome_unknown


def test_reset_after_send_is_outcome_unknown():
    exc = requests.ConnectionError("('Connection aborted.', ConnectionResetError(104))")
    err = map_exception(exc, method="POST", path="/v2/orders")
    assert isinstance(err, BrokerUnavailable) and err.outcome_unknown


def test_non_json_2xx_and_parse_errors_are_malformed():
    err = map_exception(
        requests.exceptions.JSONDecodeError("Expecting value", "<html>", 0),
        method="POST",
        path="/v2/orders",
    )
    assert isinstance(err, BrokerMalformedResponse) and err.outcome_unknown
    err = map_exception(ValueError("bad qty"), method="GET", path="/v2/positions")
    assert isinstance(err, BrokerMalformedResponse) and not err.outcome_unknown


def test_secrets_are_scrubbed_from_messages():
    body = json.dumps({"code": 40110000, "message": f"bad key {SECRET}"})
    err = map_exception(_api_error(403, body), method="GET", path="/x", secrets=("k", SECRET))
    assert SECRET not in str(err) and SECRET not in err.broker_message
    assert "[redacted]" in str(err)


def test_unrelated_exceptions_are_not_swallowed():
    with pytest.raises(TypeError):
        map_exception(RuntimeError("bug"), method="GET", path="/x")
