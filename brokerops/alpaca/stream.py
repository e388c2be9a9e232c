"""Alpaca's trade_updates stream (docs/design.md section 14): order events pushed on a websocket.

The broker boundary's second door: :class:`TradeUpdatesConnection` connects, authenticates,
listens to ``trade_updates`` and yields each event parsed into a :class:`TradeUpdate` (the order
as :func:`~brokerops.alpaca.parsing.orders.parse_order` reads it, with every bound checked).
What to do with an event is the order services' business, not this module's.

Failures map onto the broker error taxonomy: no connection, a dropped one or a silent one is
:class:`BrokerUnavailable` (reconnect with backoff); refused keys are :class:`BrokerRejected`
with status 401 (stop: nothing will work until they are fixed); a message that does not parse is
:class:`BrokerMalformedResponse` for that message only (the connection stays usable).
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from brokerops.accounts import AccountConfig

from .accounts import account_endpoint, account_or_default
from .constants import MAX_EXECUTION_ID
from .errors import BrokerMalformedResponse, BrokerRejected, BrokerUnavailable, one_line
from .parsing.orders import parse_order
from .parsing.values import ParseError, bounded_decimal, broker_price, parse_timestamp
from .types import Order

logger = logging.getLogger(__name__)

PAPER_STREAM_URL = "wss://paper-api.alpaca.markets/stream"
LIVE_STREAM_URL = "wss://api.alpaca.markets/stream"
STREAM = "trade_updates"
FILL_EVENTS = frozenset({"fill", "partial_fill"})
EVENTS = frozenset(
    {
        "new",
        "fill",
        "partial_fill",
        "canceled",
        "expired",
        "rejected",
        "replaced",
        "pending_new",
        "done_for_day",
        "pending_cancel",
        "pending_replace",
        "stopped",
        "suspended",
        "calculated",
        "order_replace_rejected",
        "order_cancel_rejected",
    }
)


def stream_url_for(*, base_url: str | None, paper: bool) -> str:
    """The stream of the trading endpoint in use: ``http(s)://host[:port]`` becomes
    ``ws(s)://host[:port]/stream``; no override means Alpaca's paper or live stream."""
    if not base_url:
        return PAPER_STREAM_URL if paper else LIVE_STREAM_URL
    parts = urlsplit(base_url)
    scheme = {"http": "ws", "https": "wss", "ws": "ws", "wss": "wss"}.get(parts.scheme)
    if scheme is None:
        raise ValueError(f"cannot derive a stream URL from {base_url!r}")
    path = parts.path.rstrip("/")
    path = path.removesuffix("/v2")
    return urlunsplit((scheme, parts.netloc, f"{path}/stream", "", ""))


@dataclass(frozen=True)
class TradeUpdate:
    """One trade_updates event. Fills carry ``execution_id``, ``price``, ``qty`` (of this
    execution) and ``position_qty`` (the account's position in the symbol after it, net of
    crypto fees)."""

    event: str
    order: Order
    timestamp: datetime | None = None
    execution_id: str | None = None
    price: Decimal | None = None
    qty: Decimal | None = None
    position_qty: Decimal | None = None

    @property
    def is_fill(self) -> bool:
        return self.event in FILL_EVENTS


def parse_trade_update(data: Any) -> TradeUpdate:
    """A ``trade_updates`` message's ``data`` as a :class:`TradeUpdate`.

    Raises :class:`BrokerMalformedResponse` when it does not parse or a figure is out of bounds.
    """
    what = "trade update"
    try:
        if not isinstance(data, dict):
            raise ParseError(f"{what} is not an object: {one_line(repr(data), 80)}")
        event = data.get("event")
        if not isinstance(event, str) or not event:
            raise ParseError(f"{what} without an event")
        order = parse_order(data.get("order"))
        # The price at any precision; the quantities with their 9-decimal bound
        # (docs/design.md section 6). position_qty is negative for a short.
        figures = {
            key: None
            if data.get(key) is None
            else (broker_price if key == "price" else bounded_decimal)(data[key], key, what)
            for key in ("price", "qty", "position_qty")
        }
        execution_id = data.get("execution_id")
        if event in FILL_EVENTS:
            if not isinstance(execution_id, str) or not execution_id:
                raise ParseError(f"{what} {event} without an execution_id")
            if len(execution_id) > MAX_EXECUTION_ID:  # it could not be recorded once
                raise ParseError(
                    f"{what} {event}: 'execution_id' longer than {MAX_EXECUTION_ID} characters: "
                    f"{execution_id[:24]!r}..."
                )
            if figures["qty"] is None or figures["price"] is None:
                raise ParseError(f"{what} {event} without its qty and price")
            for key in ("qty", "price"):  # an execution of nothing, or at no price, is no fill
                if figures[key] <= 0:
                    raise ParseError(f"{what} {event}: {key!r} is not positive: {figures[key]}")
        return TradeUpdate(
            event=event,
            order=order,
            timestamp=parse_timestamp(data.get("timestamp"), "timestamp", what)
            if data.get("timestamp")
            else None,
            execution_id=execution_id if isinstance(execution_id, str) else None,
            **figures,
        )
    except BrokerMalformedResponse:
        raise
    except (ParseError, ValueError, TypeError, ArithmeticError) as exc:
        raise BrokerMalformedResponse(f"malformed trade update: {exc}") from exc


class TradeUpdatesConnection:
    """One connection to the stream: ``open()``, then iterate :meth:`updates`, then ``close()``.

    Usable as a context manager. Alpaca allows one stream connection per account: a second one
    is refused, which :meth:`open` reports as :class:`BrokerUnavailable` (retry later).
    """

    def __init__(
        self, *, url: str, api_key: str, secret_key: str, open_timeout_s: float = 10.0
    ) -> None:
        self.url = url
        self._credentials = (api_key, secret_key)
        self._open_timeout_s = open_timeout_s
        self._socket: Any = None

    def __repr__(self) -> str:  # never the keys
        return f"TradeUpdatesConnection(url={self.url!r})"

    def __enter__(self) -> TradeUpdatesConnection:
        self.open()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def open(self) -> None:
        """Connect, authenticate and listen to ``trade_updates``."""
        from websockets.exceptions import InvalidHandshake, InvalidURI, WebSocketException
        from websockets.sync.client import connect

        key, secret = self._credentials
        try:
            self._socket = connect(
                self.url,
                open_timeout=self._open_timeout_s,
                close_timeout=2,
                compression=None,
                proxy=None,
                max_size=2**22,
            ).__enter__()  # websockets 17: the connection comes from its context manager
            self._send({"action": "auth", "key": key, "secret": secret})
            answer = self._expect("authorization")
            if answer.get("status") != "authorized" and answer.get("status") != "unauthorized":
                # Keys fine, connection refused (Alpaca: one stream per account): retry later.
                raise BrokerUnavailable(f"the trade_updates stream refused: {one_line(answer)}")
            if answer.get("status") != "authorized":
                raise BrokerRejected(
                    f"the trade_updates stream refused the API keys: {one_line(answer)}",
                    status=401,
                    code=None,
                    broker_message=str(answer.get("message") or answer.get("status")),
                )
            self._send({"action": "listen", "data": {"streams": [STREAM]}})
            listening = self._expect("listening")
            if STREAM not in (listening.get("streams") or []):
                raise BrokerUnavailable(f"the stream did not listen to {STREAM}: {listening}")
        except (BrokerRejected, BrokerUnavailable):
            self.close()
            raise
        except (InvalidURI, InvalidHandshake, WebSocketException, OSError, TimeoutError) as exc:
            self.close()
            raise BrokerUnavailable(f"trade_updates stream at {self.url}: {one_line(exc)}") from exc

    def batches(
        self, *, idle_s: float = 1.0, max_size: int = 200
    ) -> Iterator[list[TradeUpdate | BrokerMalformedResponse]]:
        """Events in arrival order, each batch holding the first one to arrive and whatever was
        already waiting behind it (up to ``max_size``); an empty batch after ``idle_s`` without
        any (a chance for the caller to check whether to stop). A message that does not parse is
        in the batch as a :class:`BrokerMalformedResponse` (the next one may be fine). Raises
        :class:`BrokerUnavailable` when the connection drops."""
        while True:
            batch: list[TradeUpdate | BrokerMalformedResponse] = []
            timeout: float | None = idle_s
            while len(batch) < max_size:
                message = self._receive(timeout)
                if message is None:
                    break
                timeout = 0  # then only what is already here
                item = self._event(message)
                if item is not None:
                    batch.append(item)
            yield batch

    def _event(self, message: Any) -> TradeUpdate | BrokerMalformedResponse | None:
        stream = message.get("stream") if isinstance(message, dict) else None
        if stream == STREAM:
            try:
                return parse_trade_update(message.get("data"))
            except BrokerMalformedResponse as exc:
                return exc
        data = message.get("data") if isinstance(message, dict) else None
        if stream == "authorization" and (data or {}).get("status") != "authorized":
            raise BrokerUnavailable(f"the stream withdrew authorization: {one_line(message)}")
        logger.debug("trade_updates stream: ignored %s", one_line(message, 200))
        return None

    def close(self) -> None:
        socket, self._socket = self._socket, None
        if socket is not None:
            socket.close()

    # --- frames ---------------------------------------------------------------------------

    def _send(self, message: dict[str, Any]) -> None:
        self._socket.send(json.dumps(message))

    def _receive(self, timeout_s: float | None) -> Any:
        from websockets.exceptions import ConnectionClosed

        if self._socket is None:
            raise BrokerUnavailable("the trade_updates stream is not open")
        try:
            raw = self._socket.recv(timeout=timeout_s)
        except TimeoutError:
            return None
        except ConnectionClosed as exc:
            raise BrokerUnavailable(f"the trade_updates stream closed: {one_line(exc)}") from exc
        except OSError as exc:
            raise BrokerUnavailable(f"the trade_updates stream failed: {one_line(exc)}") from exc
        try:
            return json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            # Parsed as an event that does not parse: reported, and the stream goes on.
            return {"stream": STREAM, "data": f"not JSON: {one_line(repr(raw), 80)}"}

    def _expect(self, stream: str) -> dict[str, Any]:
        """The ``data`` of the next message on ``stream`` (within the open timeout)."""
        deadline = time.monotonic() + self._open_timeout_s
        while (left := deadline - time.monotonic()) > 0:
            message = self._receive(left)
            if not isinstance(message, dict):
                continue
            data = message.get("data")
            data = data if isinstance(data, dict) else {}
            if message.get("stream") == stream:
                return data
            if message.get("stream") == "authorization" or message.get("T") == "error":
                return data or message  # refused (keys, or a second connection)
        raise BrokerUnavailable(
            f"no {stream} answer from the stream within {self._open_timeout_s:g}s"
        )


def trade_updates_connection_from_settings(
    account: AccountConfig | None = None,
) -> TradeUpdatesConnection:
    """The stream connection of ``account`` (the default account when omitted), configured like
    :func:`~brokerops.alpaca.gateway.gateway_from_settings`: the same keys (the paper broker's
    without any), at the account's ``stream_url`` (``ALPACA_STREAM_URL``) or the stream of its
    trading endpoint."""
    account = account or account_or_default(None)
    endpoint = account_endpoint(account)
    url = account.stream_url or stream_url_for(base_url=endpoint.base_url, paper=endpoint.paper)
    return TradeUpdatesConnection(url=url, api_key=endpoint.api_key, secret_key=endpoint.secret_key)
