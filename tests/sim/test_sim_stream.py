"""The trade_updates stream at ``/stream``: the websocket protocol, Alpaca's messages, and one
event for every order transition the book applies (docs/design.md sections 9 and 14)."""

from __future__ import annotations

import base64
import json
import os
import socket
import struct
import uuid
from decimal import Decimal

import pytest
import requests
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import OrderSide, TimeInForce, TradeEvent
from alpaca.trading.requests import MarketOrderRequest
from websockets.exceptions import ConnectionClosed

from brokerops.sim import PaperBroker

from .helpers import KEY_ID, SECRET, Raw, limit, market
from .stream_helpers import (
    AUTHORIZED,
    LISTENING,
    AlpacaStream,
    authenticate,
    connect_stream,
    listen,
    message,
    next_update,
    open_listening,
    send,
    updates_until,
)

REFUSED = "your connection is rejected while another connection is open under the same account"


# ---------------------------------------------------------------------- authentication


def test_auth_with_key_and_secret_is_authorized_in_a_binary_frame(
    paper_broker: PaperBroker,
) -> None:
    with connect_stream(paper_broker) as ws:
        assert authenticate(ws) == AUTHORIZED  # message() asserts the frame is binary
    assert paper_broker.stream_counters()["connections_accepted"] == 1


def test_alpaca_py_authenticate_form_is_authorized(paper_broker: PaperBroker) -> None:
    with connect_stream(paper_broker) as ws:
        send(ws, {"action": "authenticate", "data": {"key_id": KEY_ID, "secret_key": SECRET}})
        assert message(ws) == AUTHORIZED


def test_bad_keys_are_unauthorized_then_closed(paper_broker: PaperBroker) -> None:
    with connect_stream(paper_broker) as ws:
        answer = authenticate(ws, KEY_ID, "wrong-secret")
        assert answer == {
            "stream": "authorization",
            "data": {"action": "authenticate", "status": "unauthorized"},
        }
        with pytest.raises(ConnectionClosed):
            ws.recv(timeout=5)
    counters = paper_broker.stream_counters()
    assert counters["connections_unauthorized"] == 1
    assert counters["connections_accepted"] == 0


def test_keys_added_to_the_broker_work_on_the_stream(paper_broker: PaperBroker) -> None:
    paper_broker.add_key("second-key", "second-secret")
    with connect_stream(paper_broker) as ws:
        assert authenticate(ws, "second-key", "second-secret") == AUTHORIZED


def test_listen_before_auth_is_unauthorized_and_the_connection_stays_usable(
    paper_broker: PaperBroker,
) -> None:
    with connect_stream(paper_broker) as ws:
        assert listen(ws) == {
            "stream": "authorization",
            "data": {"action": "listen", "status": "unauthorized"},
        }
        assert authenticate(ws) == AUTHORIZED
        assert listen(ws) == LISTENING


def test_listen_acknowledges_only_the_streams_it_has(paper_broker: PaperBroker) -> None:
    with connect_stream(paper_broker) as ws:
        authenticate(ws)
        assert listen(ws, ["trade_updates", "account_updates"]) == LISTENING
        assert paper_broker.stream_listeners() == 1
        send(ws, {"action": "listen", "data": {"streams": []}})  # stops listening
        assert message(ws) == {"stream": "listening", "data": {"streams": []}}
        assert paper_broker.stream_listeners() == 0


def test_text_binary_and_fragmented_client_messages_are_all_read(
    paper_broker: PaperBroker,
) -> None:
    with connect_stream(paper_broker) as ws:
        auth = json.dumps({"action": "auth", "key": KEY_ID, "secret": SECRET})
        ws.send(auth.encode())  # a binary frame
        assert message(ws) == AUTHORIZED
        listen_text = json.dumps({"action": "listen", "data": {"streams": ["trade_updates"]}})
        ws.send([listen_text[:10], listen_text[10:25], listen_text[25:]])  # three fragments
        assert message(ws) == LISTENING


def test_ping_is_answered_with_a_pong(paper_broker: PaperBroker) -> None:
    with connect_stream(paper_broker) as ws:
        assert ws.ping(b"are-you-there").wait(timeout=5)


def test_a_message_that_is_not_json_is_answered_with_an_error(paper_broker: PaperBroker) -> None:
    with connect_stream(paper_broker) as ws:
        ws.send("not json")
        assert message(ws) == {"stream": "error", "data": {"error": "invalid syntax"}}
        send(ws, {"action": "subscribe"})
        assert message(ws) == {"stream": "error", "data": {"error": "unrecognized action"}}
        assert authenticate(ws) == AUTHORIZED


def test_a_clean_close_is_answered(paper_broker: PaperBroker) -> None:
    ws = open_listening(paper_broker)
    ws.close()
    assert ws.close_code == 1000
    assert paper_broker.wait_for_stream_listeners(0, timeout=5)


# ---------------------------------------------------------------------- the HTTP side


def _handshake(port: int, **headers: str) -> tuple[socket.socket, bytes]:
    key = base64.b64encode(os.urandom(16)).decode()
    fields = {
        "Host": f"127.0.0.1:{port}",
        "Upgrade": "websocket",
        "Connection": "Upgrade",
        "Sec-WebSocket-Key": key,
        "Sec-WebSocket-Version": "13",
    }
    fields.update(headers)
    request = "GET /stream HTTP/1.1\r\n" + "".join(f"{k}: {v}\r\n" for k, v in fields.items())
    sock = socket.create_connection(("127.0.0.1", port), timeout=5)
    sock.sendall((request + "\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = sock.recv(4096)
        if not chunk:
            break
        head += chunk
    return sock, head


def test_unmasked_client_frames_are_a_protocol_error(paper_broker: PaperBroker) -> None:
    sock, head = _handshake(paper_broker.port)
    with sock:
        assert head.startswith(b"HTTP/1.1 101 ")
        payload = b'{"action":"auth"}'
        sock.sendall(bytes([0x81, len(payload)]) + payload)  # FIN + text, no mask bit
        frame = sock.recv(4096)
        assert frame[0] == 0x88  # FIN + close
        assert struct.unpack("!H", frame[2:4])[0] == 1002


def test_a_wrong_websocket_version_is_426(paper_broker: PaperBroker) -> None:
    sock, head = _handshake(paper_broker.port, **{"Sec-WebSocket-Version": "8"})
    with sock:
        assert head.startswith(b"HTTP/1.1 426 ")
        assert b"Sec-WebSocket-Version: 13" in head


def test_plain_get_of_stream_is_400(paper_broker: PaperBroker) -> None:
    response = requests.get(paper_broker.base_url + "/stream", timeout=5)
    assert response.status_code == 400
    assert paper_broker.counters()[("GET", "/stream")] == 1


# ---------------------------------------------------------------------- events


def test_market_order_pushes_pending_new_new_then_fill(raw: Raw, paper_broker: PaperBroker) -> None:
    """Strict default: answered ``pending_new``, filled after the fill delay."""
    with open_listening(paper_broker) as ws:
        placed = raw.post("/v2/orders", json=market("AAPL", 10)).json()
        events = updates_until(ws, "fill")
        assert [e["event"] for e in events] == ["pending_new", "new", "fill"]
        assert all(e["order"]["id"] == placed["id"] for e in events)
        assert [e["order"]["status"] for e in events] == ["pending_new", "new", "filled"]
        assert events[0]["order"] == placed  # the order exactly as the REST API rendered it
        fill = events[-1]
        assert fill["order"] == raw.get(f"/v2/orders/{placed['id']}").json()
        uuid.UUID(fill["execution_id"])
        assert (fill["price"], fill["qty"], fill["position_qty"]) == ("190", "10", "10")
        assert fill["timestamp"] == fill["order"]["filled_at"]
        assert "execution_id" not in events[0] and "price" not in events[1]
        assert events[0]["timestamp"] == placed["updated_at"]


def test_each_execution_has_its_own_id_and_position_qty_accumulates(
    raw: Raw, paper_broker: PaperBroker
) -> None:
    with open_listening(paper_broker) as ws:
        raw.post("/v2/orders", json=market("AAPL", 10))
        first = updates_until(ws, "fill")[-1]
        raw.post("/v2/orders", json=market("AAPL", 5, side="sell"))
        second = updates_until(ws, "fill")[-1]
    assert first["execution_id"] != second["execution_id"]
    assert (second["qty"], second["position_qty"]) == ("5", "5")


def test_crypto_fill_reports_the_position_net_of_the_fee(
    raw: Raw, paper_broker: PaperBroker
) -> None:
    with open_listening(paper_broker) as ws:
        raw.post("/v2/orders", json=market("BTC/USD", "0.0002"))
        fill = updates_until(ws, "fill")[-1]
    assert fill["qty"] == "0.0002"
    assert fill["order"]["filled_qty"] == "0.0002"
    assert fill["position_qty"] == "0.000199499"  # Alpaca's example: 25 bps paid in the coin
    assert paper_broker.position("BTC/USD")["qty"] == "0.000199499"  # type: ignore[index]


def test_instant_fills_push_new_then_fill(lenient_raw: Raw, lenient_broker: PaperBroker) -> None:
    with open_listening(lenient_broker) as ws:
        lenient_raw.post("/v2/orders", json=market("MSFT", 3))
        assert [e["event"] for e in updates_until(ws, "fill")] == ["new", "fill"]


def test_partial_fills_by_hand(raw: Raw, paper_broker: PaperBroker) -> None:
    paper_broker.set_auto_fill(False)
    with open_listening(paper_broker) as ws:
        placed = raw.post("/v2/orders", json=limit("AAPL", 10, 180)).json()
        accepted = next_update(ws)
        assert (accepted["event"], accepted["order"]["status"]) == ("new", "accepted")
        paper_broker.fill_order(placed["id"], qty=4, price="179.5")
        partial = next_update(ws)
        assert partial["event"] == "partial_fill"
        assert (partial["qty"], partial["price"], partial["position_qty"]) == ("4", "179.5", "4")
        assert partial["order"]["status"] == "partially_filled"
        assert partial["order"]["filled_qty"] == "4"
        paper_broker.fill_order(placed["id"])
        fill = next_update(ws)
    assert (fill["event"], fill["qty"], fill["position_qty"]) == ("fill", "6", "10")
    assert fill["execution_id"] != partial["execution_id"]


def test_a_limit_order_fills_when_the_price_crosses(raw: Raw, paper_broker: PaperBroker) -> None:
    with open_listening(paper_broker) as ws:
        placed = raw.post("/v2/orders", json=limit("AAPL", 2, 180)).json()
        assert [e["event"] for e in updates_until(ws, "new")] == ["pending_new", "new"]
        paper_broker.set_price("AAPL", "179")
        fill = next_update(ws)
    assert (fill["event"], fill["order"]["id"], fill["price"]) == ("fill", placed["id"], "179")


def test_cancels_push_canceled(raw: Raw, paper_broker: PaperBroker) -> None:
    with open_listening(paper_broker) as ws:
        by_api = raw.post("/v2/orders", json=limit("AAPL", 1, 100)).json()
        by_hand = raw.post("/v2/orders", json=limit("MSFT", 1, 100)).json()
        assert paper_broker.settle()
        assert len(updates_until(ws, "new")) + len(updates_until(ws, "new")) == 4
        assert raw.delete(f"/v2/orders/{by_api['id']}").status_code == 204
        first = next_update(ws)
        paper_broker.cancel_order_manually(by_hand["client_order_id"])
        second = next_update(ws)
    assert (first["event"], first["order"]["id"]) == ("canceled", by_api["id"])
    assert (second["event"], second["order"]["id"]) == ("canceled", by_hand["id"])
    assert second["order"]["status"] == "canceled"
    assert second["timestamp"] == second["order"]["canceled_at"]


def test_an_ioc_limit_that_does_not_cross_is_canceled(
    lenient_raw: Raw, lenient_broker: PaperBroker
) -> None:
    with open_listening(lenient_broker) as ws:
        lenient_raw.post("/v2/orders", json=limit("AAPL", 1, 100, time_in_force="ioc"))
        assert [e["event"] for e in updates_until(ws, "canceled")] == ["new", "canceled"]


def test_end_of_day_pushes_expired(raw: Raw, paper_broker: PaperBroker) -> None:
    with open_listening(paper_broker) as ws:
        raw.post("/v2/orders", json=limit("AAPL", 1, 100, time_in_force="day"))
        updates_until(ws, "new")
        assert paper_broker.expire_day_orders() == 1
        expired = next_update(ws)
    assert (expired["event"], expired["order"]["status"]) == ("expired", "expired")
    assert expired["timestamp"] == expired["order"]["expired_at"]


def test_a_rejection_after_acceptance_pushes_rejected(raw: Raw, paper_broker: PaperBroker) -> None:
    with open_listening(paper_broker) as ws:
        placed = raw.post("/v2/orders", json=limit("AAPL", 1, 100)).json()
        updates_until(ws, "new")
        order = paper_broker.reject_order_manually(placed["id"])
        rejected = next_update(ws)
    assert order["status"] == "rejected" and order["failed_at"] is not None
    assert (rejected["event"], rejected["order"]) == ("rejected", order)
    assert raw.get(f"/v2/orders/{placed['id']}").json()["status"] == "rejected"


@pytest.mark.parametrize("event", ["replaced", "done_for_day"])
def test_events_the_book_does_not_model_can_be_pushed_by_hand(
    raw: Raw, paper_broker: PaperBroker, event: str
) -> None:
    placed = raw.post("/v2/orders", json=limit("AAPL", 1, 100)).json()
    # Accepted first: an order still pending_new when pushed turned new before the read below
    # (red once on a loaded CI machine).
    assert paper_broker.settle()
    with open_listening(paper_broker) as ws:
        sent = paper_broker.emit_trade_update(placed["id"], event, note="by hand")
        pushed = next_update(ws)
    assert pushed == sent
    assert (pushed["event"], pushed["note"]) == (event, "by hand")
    assert pushed["order"] == raw.get(f"/v2/orders/{placed['id']}").json()


def test_a_manual_close_pushes_its_order_and_fill(paper_broker: PaperBroker) -> None:
    paper_broker.seed_position("AAPL", 7)
    with open_listening(paper_broker) as ws:
        paper_broker.close_position_manually("AAPL")
        fill = updates_until(ws, "fill")[-1]
    assert (fill["qty"], fill["position_qty"], fill["order"]["side"]) == ("7", "0", "sell")


def test_a_short_position_qty_is_negative(lenient_raw: Raw, lenient_broker: PaperBroker) -> None:
    with open_listening(lenient_broker) as ws:
        lenient_raw.post("/v2/orders", json=market("AAPL", 3, side="sell"))
        assert updates_until(ws, "fill")[-1]["position_qty"] == "-3"


# ---------------------------------------------------------------------- who gets events


def test_events_are_not_queued_while_no_one_listens(raw: Raw, paper_broker: PaperBroker) -> None:
    unheard = raw.post("/v2/orders", json=market("AAPL", 1)).json()
    assert paper_broker.settle()
    with connect_stream(paper_broker) as ws:
        authenticate(ws)
        raw.post("/v2/orders", json=market("AAPL", 1))  # authenticated, not listening
        assert paper_broker.settle()
        with pytest.raises(TimeoutError):
            ws.recv(timeout=0.3)
        assert listen(ws) == LISTENING
        heard = raw.post("/v2/orders", json=market("MSFT", 1)).json()
        events = updates_until(ws, "fill")
    assert {e["order"]["id"] for e in events} == {heard["id"]} != {unheard["id"]}
    counters = paper_broker.stream_counters()
    assert counters["events_published"] == 9  # three orders: pending_new, new, fill each
    assert counters["events_pushed"] == 3


def test_every_listening_connection_gets_every_event(paper_broker: PaperBroker) -> None:
    paper_broker.add_key("other-key", "other-secret")
    with (
        open_listening(paper_broker) as a,
        open_listening(paper_broker, "other-key", "other-secret") as b,
    ):
        paper_broker.seed_position("AAPL", 2)
        paper_broker.close_position_manually("AAPL")
        assert updates_until(a, "fill") == updates_until(b, "fill")


def test_a_second_connection_for_the_same_key_is_refused(
    raw: Raw, paper_broker: PaperBroker
) -> None:
    with open_listening(paper_broker) as first:
        with connect_stream(paper_broker) as second:
            assert authenticate(second) == {
                "stream": "authorization",
                "data": {"action": "authenticate", "error": REFUSED},
            }
            with pytest.raises(ConnectionClosed) as closed:
                second.recv(timeout=5)
            assert closed.value.rcvd is not None
            assert (closed.value.rcvd.code, closed.value.rcvd.reason) == (
                1008,
                "connection limit exceeded",
            )
        raw.post("/v2/orders", json=market("AAPL", 1))
        assert next_update(first)["event"] == "pending_new"  # the first one is unharmed
    assert paper_broker.stream_counters()["connections_refused"] == 1
    assert paper_broker.wait_for_stream_listeners(0, timeout=5)
    with open_listening(paper_broker):  # the slot is free again once the first has closed
        pass


# ---------------------------------------------------------------------- alpaca-py unchanged


def test_alpaca_py_trading_stream_receives_parsed_updates(paper_broker: PaperBroker) -> None:
    client = TradingClient(KEY_ID, SECRET, paper=True, url_override=paper_broker.base_url)
    stream = AlpacaStream(paper_broker).start()
    try:
        assert paper_broker.wait_for_stream_listeners(1, timeout=10)
        order = client.submit_order(
            MarketOrderRequest(
                symbol="AAPL", qty=3, side=OrderSide.BUY, time_in_force=TimeInForce.DAY
            )
        )
        updates = stream.until(TradeEvent.FILL)
    finally:
        stream.stop()
    assert [u.event for u in updates] == [TradeEvent.PENDING_NEW, TradeEvent.NEW, TradeEvent.FILL]
    fill = updates[-1]
    assert fill.order.id == order.id
    assert fill.execution_id is not None
    assert (fill.qty, fill.price, fill.position_qty) == (3.0, 190.0, 3.0)
    assert Decimal(fill.order.filled_qty or "0") == 3


def test_alpaca_py_reconnects_after_a_drop_and_hears_new_events(
    raw: Raw, paper_broker: PaperBroker
) -> None:
    stream = AlpacaStream(paper_broker).start()
    try:
        assert paper_broker.wait_for_stream_listeners(1, timeout=10)
        assert paper_broker.stream_drop() == 1
        assert paper_broker.wait_for_stream_listeners(1, timeout=10)  # its backoff is ~1 s
        placed = raw.post("/v2/orders", json=market("AAPL", 1)).json()
        assert str(stream.until(TradeEvent.FILL)[-1].order.id) == placed["id"]
    finally:
        stream.stop()
    assert paper_broker.stream_counters()["connections_accepted"] == 2
