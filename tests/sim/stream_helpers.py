"""Clients of the paper broker's trade_updates stream for the tests: a raw websocket (the
``websockets`` package's sync client) for protocol details, and alpaca-py's own ``TradingStream``
run in a thread of its own, as an application would run it."""

from __future__ import annotations

import json
import queue
import threading
from typing import Any

from alpaca.trading.models import TradeUpdate
from alpaca.trading.stream import TradingStream
from websockets.sync.client import ClientConnection, connect

from brokerops.sim import PaperBroker

from .helpers import KEY_ID, SECRET

AUTHORIZED = {"stream": "authorization", "data": {"action": "authenticate", "status": "authorized"}}
LISTENING = {"stream": "listening", "data": {"streams": ["trade_updates"]}}


def connect_stream(broker: PaperBroker) -> ClientConnection:
    """A websocket to ``/stream``, not yet authenticated."""
    return connect(
        broker.stream_url, open_timeout=5, close_timeout=2, compression=None, legacy=True
    )


def message(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The next message, which the trading stream sends in a binary frame (as Alpaca does)."""
    raw = ws.recv(timeout=timeout)
    assert isinstance(raw, bytes), f"expected a binary frame, got text {raw!r}"
    return json.loads(raw)


def send(ws: ClientConnection, payload: dict[str, Any]) -> None:
    ws.send(json.dumps(payload))


def authenticate(ws: ClientConnection, key: str = KEY_ID, secret: str = SECRET) -> dict:
    """Alpaca's documented form (``auth`` with ``key``/``secret``); returns the answer."""
    send(ws, {"action": "auth", "key": key, "secret": secret})
    return message(ws)


def listen(ws: ClientConnection, streams: list[str] | None = None) -> dict[str, Any]:
    send(ws, {"action": "listen", "data": {"streams": streams or ["trade_updates"]}})
    return message(ws)


def open_listening(broker: PaperBroker, key: str = KEY_ID, secret: str = SECRET):
    """A connection that is authenticated and listening to trade_updates."""
    ws = connect_stream(broker)
    assert authenticate(ws, key, secret) == AUTHORIZED
    assert listen(ws) == LISTENING
    return ws


def next_update(ws: ClientConnection, timeout: float = 5.0) -> dict[str, Any]:
    """The ``data`` of the next trade_updates message."""
    received = message(ws, timeout)
    assert received["stream"] == "trade_updates", received
    return received["data"]


def updates_until(ws: ClientConnection, event: str, timeout: float = 5.0) -> list[dict[str, Any]]:
    """Every trade update up to and including the first ``event``."""
    seen: list[dict[str, Any]] = []
    while not seen or seen[-1]["event"] != event:
        seen.append(next_update(ws, timeout))
    return seen


class AlpacaStream:
    """alpaca-py's ``TradingStream`` pointed at the paper broker, run in its own thread with its
    own event loop (``TradingStream.run``); every TradeUpdate it parses lands in :attr:`updates`.
    """

    def __init__(self, broker: PaperBroker, key: str = KEY_ID, secret: str = SECRET) -> None:
        self.broker = broker
        self.stream = TradingStream(key, secret, paper=True, url_override=broker.stream_url)
        self.updates: queue.Queue[TradeUpdate] = queue.Queue()

        async def on_update(update: TradeUpdate) -> None:
            self.updates.put(update)

        self.stream.subscribe_trade_updates(on_update)
        self.thread = threading.Thread(target=self.stream.run, name="alpaca-stream", daemon=True)

    def start(self) -> AlpacaStream:
        self.thread.start()
        return self

    def next(self, timeout: float = 5.0) -> TradeUpdate:
        return self.updates.get(timeout=timeout)

    def until(self, event: str, timeout: float = 5.0) -> list[TradeUpdate]:
        seen: list[TradeUpdate] = []
        while not seen or seen[-1].event != event:
            seen.append(self.next(timeout))
        return seen

    def stop(self) -> None:
        """Ask it to stop, then drop its connection: alpaca-py looks at its stop request only
        between 5 s receive timeouts, a dropped connection wakes it at once."""
        if self.stream._loop is not None:
            self.stream.stop()
        self.broker.stream_drop()
        self.thread.join(10)
        assert not self.thread.is_alive()
