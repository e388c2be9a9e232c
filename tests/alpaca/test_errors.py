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


# --- only Alpaca's JSON 404 means "absent" (issue 9 item 8) -------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        "<html><head><title>404 Not Found</title></head><body><h1>Not Found</h1></body></html>",
        "404 page not found",
        "",
        '{"message": "Not Found"}',  # JSON, but no integer code: not Alpaca's error
        '{"code": "40410000", "message": "position does not exist"}',
        "[]",
        # A proxy's or gateway's JSON error: an integer code, but not Alpaca's 8-digit 404 code.
        '{"code": 404, "message": "Not Found"}',
        '{"code": 404000, "message": "route not found"}',
        '{"code": 40010001, "message": "not a 404 code"}',
        '{"code": 4041000000, "message": "ten digits"}',
        '{"code": true, "message": "Not Found"}',
    ],
)
def test_a_404_that_is_not_alpacas_json_error_is_unavailable(body):
    err = map_exception(_api_error(404, body), method="GET", path="/v2/positions/AAPL")
    assert isinstance(err, BrokerUnavailable) and not isinstance(err, BrokerNotFound)
    assert err.status == 404 and not err.outcome_unknown
    assert "not Alpaca" in str(err)


@pytest.mark.parametrize("method", ["POST", "DELETE"])
def test_a_proxy_404_on_a_write_leaves_the_outcome_unknown(method):
    err = map_exception(_api_error(404, "<html>nope</html>"), method=method, path="/v2/orders/x")
    assert isinstance(err, BrokerUnavailable) and err.outcome_unknown


@pytest.mark.parametrize("code", [40410000, 40410001, 40499999])
def test_alpacas_404_family_is_not_found(code):
    body = f'{{"code": {code}, "message": "order not found"}}'
    err = map_exception(_api_error(404, body), method="GET", path="/v2/orders/x")
    assert isinstance(err, BrokerNotFound)


def test_alpacas_json_404_on_delete_is_not_found():
    body = '{"code": 40410000, "message": "order not found"}'
    err = map_exception(_api_error(404, body), method="DELETE", path="/v2/orders/x")
    assert isinstance(err, BrokerNotFound) and not err.outcome_unknown


# --- 429 waits are capped (issue 9 item 6) ------------------------------------------------------


@pytest.mark.parametrize(
    "headers",
    [{"Retry-After": "86400"}, {"X-RateLimit-Reset": str(1000 + 86400)}],
)
def test_a_429_wait_hint_is_capped(headers):
    body = '{"code": 42910000, "message": "rate limit exceeded"}'
    err = map_http_error(
        method="GET",
        path="/v2/orders",
        status=429,
        body_text=body,
        headers=headers,
        now=lambda: 1000.0,
    )
    assert isinstance(err, BrokerRateLimited) and err.retry_after_s == 65.0
    err = map_http_error(
        method="GET",
        path="/v2/orders",
        status=429,
        body_text=body,
        headers=headers,
        now=lambda: 1000.0,
        max_pause_s=10.0,
    )
    assert err.retry_after_s == 10.0
    assert "clamped" in str(err)


def test_rate_limit_wait_names_the_header_it_used():
    from brokerops.alpaca.errors import rate_limit_wait

    wait = rate_limit_wait({"X-RateLimit-Reset": "1100"}, now=lambda: 1000.0, max_pause_s=65)
    assert (wait.seconds, wait.header, wait.requested_s, wait.clamped) == (
        65.0,
        "X-RateLimit-Reset",
        100.0,
        True,
    )
    wait = rate_limit_wait({"Retry-After": "3"}, now=lambda: 1000.0, max_pause_s=65)
    assert (wait.seconds, wait.header, wait.clamped) == (3.0, "Retry-After", False)
    wait = rate_limit_wait({}, now=lambda: 1000.0, max_pause_s=65)
    assert wait.seconds is None and wait.header is None


# --- 403 is a business refusal, 401 is bad keys (issue 10) --------------------------------------


def test_403_is_a_business_refusal_with_alpacas_details():
    body = json.dumps(
        {
            "code": 40310000,
            "message": "insufficient buying power",
            "buying_power": "12.5",
            "cost_basis": 190.0,
            "unrelated": "dropped",
        }
    )
    err = map_exception(_api_error(403, body), method="POST", path="/v2/orders")
    assert isinstance(err, BrokerRejected)
    assert err.is_business_refusal and not err.is_auth_error
    assert err.details == {"buying_power": "12.5", "cost_basis": "190.0"}
    assert err.broker_message == "insufficient buying power"


def test_403_insufficient_qty_details():
    body = json.dumps(
        {
            "code": 40310000,
            "message": "insufficient qty available for order (requested: 5, available: 2)",
            "available": "2",
            "existing_qty": "3",
            "held_for_orders": "1",
            "symbol": "AAPL",
        }
    )
    err = map_exception(_api_error(403, body), method="POST", path="/v2/orders")
    assert err.details == {
        "available": "2",
        "existing_qty": "3",
        "held_for_orders": "1",
        "symbol": "AAPL",
    }
    assert "available=2" in str(err)


def test_401_is_auth_not_business():
    err = map_exception(_api_error(401, '{"message": "unauthorized."}'), method="GET", path="/x")
    assert err.is_auth_error and not err.is_business_refusal and err.details == {}


def test_details_never_carry_secrets_or_walls():
    body = json.dumps({"code": 40310000, "message": "no", "symbol": f"{SECRET}\n" + "x" * 500})
    err = map_exception(_api_error(403, body), method="POST", path="/v2/orders", secrets=(SECRET,))
    assert SECRET not in err.details["symbol"] and "\n" not in err.details["symbol"]
    assert len(err.details["symbol"]) <= 64


# --- one clear line (issue 9 item 12) -----------------------------------------------------------


def test_an_html_wall_becomes_one_short_line():
    wall = (
        "<!DOCTYPE html>\n<html><head><title>502 Bad Gateway</title>\n<style>body{}</style>"
        "<script>var x = 1;\n</script></head>\n<body>\n"
        + "<p>Something went wrong.</p>\n" * 400
        + "</body></html>"
    )
    err = map_exception(_api_error(502, wall), method="GET", path="/v2/positions")
    text = str(err)
    assert "\n" not in text and len(text) <= 200
    assert "502 Bad Gateway" in text and "<" not in text and "var x" not in text


@pytest.mark.parametrize(
    "error",
    [
        BrokerUnavailable("line one\nline two\r\n" + "y" * 2000),
        BrokerMalformedResponse("a\nb"),
        BrokerRateLimited("c\n\nd", retry_after_s=1),
        BrokerRejected("e\nf", status=422, code=1, broker_message="m"),
        BrokerNotFound("g\th"),
    ],
)
def test_every_broker_error_message_is_one_short_line(error):
    assert "\n" not in str(error) and "\r" not in str(error) and "\t" not in str(error)
    assert len(str(error)) <= 400 and str(error) == error.message


def test_parse_error_text_is_flattened():
    err = map_exception(ValueError("bad\nqty " + "z" * 1000), method="GET", path="/v2/positions")
    assert "\n" not in str(err) and len(str(err)) <= 400


def test_connection_refused_names_host_and_port():
    session = requests.Session()
    try:
        session.get("http://127.0.0.1:9/v2/account", timeout=2)
    except requests.RequestException as exc:
        err = map_exception(exc, method="GET", path="/v2/account")
    assert isinstance(err, BrokerUnavailable)
    assert str(err) == "GET /v2/account: connection refused (127.0.0.1:9)"


def test_a_broker_message_with_a_nul_is_made_safe_for_any_column():
    body = '{"code": 50010000, "message": "upstream said \\u0000 oops"}'
    err = map_exception(_api_error(500, body), method="GET", path="/v2/positions")
    assert "upstream said" in str(err) and "\x00" not in str(err)
