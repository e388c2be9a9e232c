"""Alpaca's trade_updates stream at ``GET /stream`` (same port as the HTTP API; docs/design.md
section 14).

The HTTP handler upgrades the request (``server.py``) and hands the socket to
:meth:`StreamHub.serve`; the book hands every order event to :meth:`StreamHub.publish`.

Protocol (Alpaca's, as alpaca-py's ``TradingStream`` speaks it). Every server message is JSON
in a **binary** frame, as on ``wss://paper-api.alpaca.markets/stream``; clients may send text or
binary frames, fragmented or not.

- Authenticate, either form: ``{"action": "auth", "key": K, "secret": S}`` (Alpaca's docs) or
  ``{"action": "authenticate", "data": {"key_id": K, "secret_key": S}}`` (alpaca-py), with the
  keys the HTTP side accepts. Answer ``{"stream": "authorization", "data": {"action":
  "authenticate", "status": "authorized"}}``; bad keys get ``"status": "unauthorized"`` and a
  close (1008 ``unauthorized``).
- Accounts (docs/design.md section 16): the keys open their account, and a connection hears
  only that account's order events, with that account's stream faults; the broker's other
  accounts have their own subscribers.
- One connection per API key: authenticating while another connection of the key is open is
  refused with ``{"stream": "authorization", "data": {"action": "authenticate", "error":
  "your connection is rejected while another connection is open under the same account"}}`` (no
  ``status``: the keys are fine, try again later) and a close (1008 ``connection limit
  exceeded``). The slot is freed the moment a connection ends (closed, dropped or cut by a fault).
- Listen: ``{"action": "listen", "data": {"streams": ["trade_updates"]}}`` answers ``{"stream":
  "listening", "data": {"streams": ["trade_updates"]}}`` (streams it does not have are left out;
  an empty list stops listening). Before authenticating: ``{"stream": "authorization", "data":
  {"action": "listen", "status": "unauthorized"}}`` and the connection stays open.
- Events: ``{"stream": "trade_updates", "data": {"event": E, "order": {...}, "timestamp": T}}``,
  fills with ``execution_id``, ``price``, ``qty`` and ``position_qty`` too (see
  :func:`~brokerops.sim.model.trade_update_json` and ``engine.py`` for which transition sends
  which event). Only authenticated, listening connections get them; nothing is queued for later
  (Alpaca does not replay: a client catches up with a REST order sync when it reconnects).
- Anything else: ``{"stream": "error", "data": {"error": "invalid syntax"}}`` (not a JSON
  object) or ``"unrecognized action"``; the connection stays open. Pings are answered.

Each connection reads in its HTTP handler thread and writes in a thread of its own from a queue,
so publishing never blocks the book, and the faults (:class:`~brokerops.sim.faults
.StreamFaultKind`: drop, stall, duplicate) act per connection without touching the others.
"""

from __future__ import annotations

import json
import logging
import queue
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO

from .faults import StreamFaultAction, StreamFaultInjector, StreamFaultKind
from .model import Order, trade_update_json
from .websocket import (
    CloseCode,
    ConnectionEnded,
    MessageReader,
    Opcode,
    ProtocolError,
    close_payload,
    encode_frame,
    parse_close,
)

if TYPE_CHECKING:
    from .engine import TradeUpdatePublisher

logger = logging.getLogger(__name__)

STREAM_PATH = "/stream"
TRADE_UPDATES = "trade_updates"
MSG_CONNECTION_LIMIT = (
    "your connection is rejected while another connection is open under the same account"
)
CLOSE_CONNECTION_LIMIT = "connection limit exceeded"
CLOSE_UNAUTHORIZED = "unauthorized"
#: How long a connection waits for the client's close frame after sending its own.
CLOSE_TIMEOUT_S = 2.0
#: Close codes that never go on the wire (RFC 6455 7.4.1); a close carrying one is echoed 1000.
UNSENDABLE = frozenset({1005, 1006, 1015})

COUNTERS = (
    "connections_accepted",  # authenticated (each connection once)
    "connections_refused",  # a second connection for a key that has one open
    "connections_unauthorized",  # bad keys
    "events_published",  # order events the book produced, listened to or not
    "events_pushed",  # trade_updates messages written to a socket (a duplicate counts twice)
    "events_duplicated",
    "drops",  # connections cut: stream_drop(), a drop fault, drop_after_events
    "stalls",  # stalls applied: stream_stall() per connection, a stall fault
)


def _encode(message: Mapping[str, object]) -> bytes:
    return encode_frame(Opcode.BINARY, json.dumps(message, separators=(",", ":")).encode())


def _authorization(action: str, **data: str) -> dict[str, object]:
    return {"stream": "authorization", "data": {"action": action, **data}}


def _error(text: str) -> dict[str, object]:
    return {"stream": "error", "data": {"error": text}}


def _credentials(message: Mapping[str, object]) -> tuple[object, object]:
    """``(key, secret)`` of either auth form."""
    data = message.get("data")
    data = data if isinstance(data, dict) else {}
    key = message.get("key", data.get("key_id"))
    secret = message.get("secret", data.get("secret_key"))
    return key, secret


@dataclass(frozen=True, slots=True)
class _Outgoing:
    """One frame for a connection's writer: a trade update (``event`` set, maybe a fault), an
    answer, a pong, or the close frame (nothing is sent after it)."""

    frame: bytes
    event: str | None = None
    fault: StreamFaultAction | None = None
    drop_after: bool = False
    close: bool = False


class StreamConnection:
    """One websocket client: reads in the calling (HTTP handler) thread, writes in its own."""

    def __init__(self, hub: StreamHub, sock: socket.socket, rfile: BinaryIO, name: str) -> None:
        self.hub = hub
        self.sock = sock
        self.rfile = rfile
        #: The authenticated API key and its account, None before. Guarded by the hub's lock.
        self.key: str | None = None
        self.account: object | None = None
        self.listening = False
        self.events_queued = 0
        self._queue: queue.SimpleQueue[_Outgoing | None] = queue.SimpleQueue()
        self._ended = threading.Event()
        self._closing = False
        self._dead = False
        self._stalled_until = 0.0
        self._writer = threading.Thread(target=self._write_loop, name=name, daemon=True)

    # ------------------------------------------------------------------ reading

    def run(self) -> None:
        """Serve until the client closes, the connection fails or is cut, or the broker stops
        (``stop`` shuts the socket down, which ends the read)."""
        self._writer.start()
        try:
            self._read_loop()
        finally:
            self.hub.forget(self)
            self._ended.set()  # ends a stall at once
            self._queue.put(None)
            self._writer.join()

    def _read_loop(self) -> None:
        reader = MessageReader(self.rfile)
        while True:
            try:
                opcode, payload = reader.next()
                if opcode is Opcode.CLOSE:
                    code, _ = parse_close(payload)  # type: ignore[arg-type]
                    self.close(code if 1000 <= code < 5000 and code not in UNSENDABLE else 1000)
                    return
            except ProtocolError as error:
                self.close(error.code, error.reason)
                self._drain()
                return
            except ConnectionEnded:
                return
            if opcode is Opcode.PING:
                self.enqueue(_Outgoing(encode_frame(Opcode.PONG, payload)))  # type: ignore[arg-type]
            elif opcode in (Opcode.TEXT, Opcode.BINARY) and not self._closing:
                self.hub.receive(self, payload)

    def _drain(self) -> None:
        """Read and discard until the client hangs up (or :data:`CLOSE_TIMEOUT_S` passes), so
        closing the socket does not reset it before the client has read the close frame."""
        try:
            while self.rfile.read1(65536):
                pass
        except (OSError, ValueError):
            logger.debug("stream socket ended while draining")

    # ------------------------------------------------------------------ writing

    def enqueue(self, item: _Outgoing) -> None:
        self._queue.put(item)

    def send(self, message: Mapping[str, object]) -> None:
        self.enqueue(_Outgoing(_encode(message)))

    def close(self, code: CloseCode | int, reason: str = "") -> None:
        """Queue the close frame; the reader then waits at most :data:`CLOSE_TIMEOUT_S` for the
        client's close before the socket is closed."""
        if self._closing:
            return
        self._closing = True
        frame = encode_frame(Opcode.CLOSE, close_payload(code, reason))
        self.enqueue(_Outgoing(frame, close=True))
        try:
            self.sock.settimeout(CLOSE_TIMEOUT_S)
        except OSError:
            logger.debug("stream socket gone before close")

    def stall(self, seconds: float) -> None:
        """Send nothing (events, answers, pongs) for ``seconds`` from now."""
        self._stalled_until = max(self._stalled_until, time.monotonic() + seconds)

    def abort(self) -> None:
        """Cut the connection without a close frame (as a network failure looks)."""
        self._dead = True
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            logger.debug("stream socket already closed")

    def _wait_out_stall(self) -> None:
        while (left := self._stalled_until - time.monotonic()) > 0 and not self._ended.is_set():
            self._ended.wait(left)

    def _write_loop(self) -> None:
        while (item := self._queue.get()) is not None:
            if self._dead:
                continue
            fault = item.fault.kind if item.fault is not None else None
            if fault is StreamFaultKind.DROP:
                self.hub.cut(self)
                continue
            if fault is StreamFaultKind.STALL:
                self.hub.count("stalls")
                self.stall(item.fault.stall_s)  # type: ignore[union-attr]
            self._wait_out_stall()
            copies = 2 if fault is StreamFaultKind.DUPLICATE else 1
            try:
                self.sock.sendall(item.frame * copies)
            except OSError:
                self.abort()
                continue
            if item.event is not None:
                self.hub.count("events_pushed", copies)
                if copies > 1:
                    self.hub.count("events_duplicated")
            if item.drop_after:
                self.hub.cut(self)
            elif item.close:
                self._dead = True


class StreamHub:
    """The stream's connections, keyed slots and counters; one per paper broker, serving every
    account it has. ``authenticate(key, secret)`` answers the key's account (any object; None
    for bad keys); a connection hears only its account's events, with that account's faults."""

    def __init__(self, *, authenticate: Callable[[str, str], object | None]) -> None:
        self._authenticate = authenticate
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)
        self._open: set[StreamConnection] = set()
        self._by_key: dict[str, StreamConnection] = {}
        self._listening: list[StreamConnection] = []
        self._counters = dict.fromkeys(COUNTERS, 0)

    def serve(self, sock: socket.socket, rfile: BinaryIO, name: str) -> None:
        """Run one upgraded connection in the calling thread until it ends."""
        connection = StreamConnection(self, sock, rfile, name)
        with self._lock:
            self._open.add(connection)
        connection.run()

    # ------------------------------------------------------------------ the book's side

    def publisher(self, account: object, faults: StreamFaultInjector) -> TradeUpdatePublisher:
        """What one account's book publishes its order events through (``Book.publisher``)."""

        def publish(event: str, order: Order, at: int, fields: Mapping[str, object]) -> None:
            self.publish(account, faults, event, order, at, fields)

        return publish

    def publish(
        self,
        account: object,
        faults: StreamFaultInjector,
        event: str,
        order: Order,
        at: int,
        fields: Mapping[str, object],
    ) -> None:
        """Queue one order event on every connection listening to ``account`` (called under the
        book's lock, so events go out in the order the book applied them), each with a fault
        ``faults`` decides; dropped if no one listens."""
        with self._lock:
            self._counters["events_published"] += 1
            listening = [c for c in self._listening if c.account is account]
            if not listening:
                return
            message = {"stream": TRADE_UPDATES, "data": trade_update_json(event, order, at, fields)}
            frame = _encode(message)
            for connection in listening:
                fault = faults.decide(event)
                connection.events_queued += 1
                drop_after = faults.drop_after(event, connection.events_queued)
                if drop_after or (fault is not None and fault.kind is StreamFaultKind.DROP):
                    self._stop_listening(connection)  # nothing more for a connection being cut
                connection.enqueue(_Outgoing(frame, event, fault, drop_after))

    # ------------------------------------------------------------------ the protocol

    def receive(self, connection: StreamConnection, payload: str | bytes) -> None:
        """A client message (text or binary) from one of the hub's connections."""
        try:
            message = json.loads(payload)
        except (ValueError, UnicodeDecodeError):
            message = None
        if not isinstance(message, dict):
            connection.send(_error("invalid syntax"))
            return
        action = message.get("action")
        if action in ("auth", "authenticate"):
            self._on_auth(connection, *_credentials(message))
        elif action == "listen":
            self._on_listen(connection, message.get("data"))
        else:
            connection.send(_error("unrecognized action"))

    def _on_auth(self, connection: StreamConnection, key: object, secret: object) -> None:
        valid = isinstance(key, str) and isinstance(secret, str)
        account = self._authenticate(key, secret) if valid else None  # type: ignore[arg-type]
        if account is None:
            self.count("connections_unauthorized")
            connection.send(_authorization("authenticate", status="unauthorized"))
            connection.close(CloseCode.POLICY_VIOLATION, CLOSE_UNAUTHORIZED)
            return
        with self._lock:
            holder = self._by_key.get(key)
            if holder is not None and holder is not connection:
                self._counters["connections_refused"] += 1
                refused = True
            else:
                refused = False
                if connection.key is None:
                    self._counters["connections_accepted"] += 1
                elif connection.key != key:
                    self._by_key.pop(connection.key, None)
                self._by_key[key] = connection
                connection.key = key
                connection.account = account
                self._changed.notify_all()
        if refused:
            connection.send(_authorization("authenticate", error=MSG_CONNECTION_LIMIT))
            connection.close(CloseCode.POLICY_VIOLATION, CLOSE_CONNECTION_LIMIT)
        else:
            connection.send(_authorization("authenticate", status="authorized"))

    def _on_listen(self, connection: StreamConnection, data: object) -> None:
        with self._lock:
            if connection.key is None:
                connection.send(_authorization("listen", status="unauthorized"))
                return
            streams = data.get("streams") if isinstance(data, dict) else None
            listening = isinstance(streams, list) and TRADE_UPDATES in streams
            if listening and not connection.listening:
                connection.listening = True
                self._listening.append(connection)
                self._changed.notify_all()
            elif not listening:
                self._stop_listening(connection)
            # Queued under the lock, so no event can overtake the acknowledgement.
            acknowledged = [TRADE_UPDATES] if listening else []
            connection.send({"stream": "listening", "data": {"streams": acknowledged}})

    # ------------------------------------------------------------------ bookkeeping

    def _stop_listening(self, connection: StreamConnection) -> None:
        """Under the lock."""
        if connection.listening:
            connection.listening = False
            self._listening.remove(connection)
            self._changed.notify_all()

    def forget(self, connection: StreamConnection) -> bool:
        """The connection ended (or is being cut): free its key's slot at once. False when it
        was already forgotten."""
        with self._lock:
            if connection not in self._open:
                return False
            self._open.discard(connection)
            self._stop_listening(connection)
            if connection.key is not None and self._by_key.get(connection.key) is connection:
                del self._by_key[connection.key]
            self._changed.notify_all()
            return True

    def cut(self, connection: StreamConnection) -> None:
        """Drop a connection now (its slot is free before the client can notice)."""
        if self.forget(connection):
            self.count("drops")
        connection.abort()

    def count(self, name: str, amount: int = 1) -> None:
        """Add to one of :data:`COUNTERS` (connections count their stalls, pushes, drops)."""
        with self._lock:
            self._counters[name] += amount

    # ------------------------------------------------------------------ the handle's side

    # Each takes ``account``: only that account's connections (None: every connection; a
    # connection not yet authenticated belongs to no account).

    def _of(self, connections: Iterable[StreamConnection], account: object | None) -> list:
        """Under the lock."""
        return [c for c in connections if account is None or c.account is account]

    def drop_all(self, account: object | None = None) -> int:
        """Cut every open stream connection now; returns how many."""
        with self._lock:
            connections = self._of(self._open, account)
        for connection in connections:
            self.cut(connection)
        return len(connections)

    def stall_all(self, seconds: float, account: object | None = None) -> int:
        """Stall every open stream connection for ``seconds``; returns how many."""
        with self._lock:
            connections = self._of(self._open, account)
            self._counters["stalls"] += len(connections)
        for connection in connections:
            connection.stall(seconds)
        return len(connections)

    def listeners(self, account: object | None = None) -> int:
        with self._lock:
            return len(self._of(self._listening, account))

    def connected_keys(self, account: object | None = None) -> list[str]:
        """API keys with an authenticated connection open."""
        with self._lock:
            return sorted(c.key for c in self._of(self._by_key.values(), account))  # type: ignore[misc]

    def wait_for_listeners(
        self, count: int, timeout: float | None, account: object | None = None
    ) -> bool:
        """Wait until exactly ``count`` connections listen; False on timeout."""
        with self._changed:
            return self._changed.wait_for(
                lambda: len(self._of(self._listening, account)) == count, timeout
            )

    def counters(self) -> dict[str, int]:
        with self._lock:
            return dict(self._counters)

    def reset_counters(self) -> None:
        with self._lock:
            self._counters = dict.fromkeys(COUNTERS, 0)
