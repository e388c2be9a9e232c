"""The HTTP side of the paper broker: a threaded stdlib server on loopback.

Per request, in order: count it under its route template, find the account its keys open
(``APCA-API-KEY-ID``/``APCA-API-SECRET-KEY``; docs/design.md section 16), apply that account's
fault latency, answer unknown keys 401 ``{"message": "unauthorized."}`` (Alpaca's body), charge the
key's rate limit (its account's own budget, or the broker's; 429 beyond it), answer unknown paths
(404 ``404 page not found``, plain text, as Alpaca's router does), then apply one of the
account's faults or the request itself, on the account's book. Every answer of an authenticated
request (but the HTML 502 page) carries ``X-RateLimit-*`` when a limit is set. A 429 carries
``Retry-After`` only under ``fidelity.retry_after_header``; without it (Alpaca's way) the wait is
in ``X-RateLimit-Reset`` (an injected 429 sets ``X-RateLimit-Remaining: 0`` and a reset
``retry_after_s`` ahead).

``GET /stream`` is the trade_updates websocket (``stream.py``): counted as ``("GET",
"/stream")``, it is upgraded without the API's header auth, rate limit or faults (the stream
authenticates by message and has faults of its own); a request that is not a websocket upgrade
gets 400 (426 for a websocket version other than 13).

Connections are HTTP/1.1 keep-alive. ``stop`` ends promptly: it stops accepting, wakes stalled
requests, shuts every open connection (stream connections too) and joins all handler threads.
"""

from __future__ import annotations

import json
import logging
import math
import socket
import struct
import threading
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import TYPE_CHECKING
from urllib.parse import parse_qsl, urlsplit

from . import api, websocket
from .errors import CODE_RATE_LIMITED, ApiError
from .faults import FaultAction, FaultKind
from .stream import STREAM_PATH

if TYPE_CHECKING:
    from .book import Book
    from .broker import PaperBroker

logger = logging.getLogger(__name__)

UNMATCHED = "<unmatched>"
JSON_TYPE = "application/json; charset=utf-8"


def _html_page(status: int) -> bytes:
    """A proxy's error page (nginx's shape), as a load balancer answers for a sick backend."""
    if status == 502:
        return HTML_502
    title = f"{status} {HTTPStatus(status).phrase}".encode()
    return (
        b"<html>\r\n<head><title>" + title + b"</title></head>\r\n<body>\r\n"
        b"<center><h1>" + title + b"</h1></center>\r\n</body>\r\n</html>\r\n"
    )


HTML_502 = (
    b"<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n"
    b"<center><h1>502 Bad Gateway</h1></center>\r\n</body>\r\n</html>\r\n"
)
UNAUTHORIZED = json.dumps({"message": "unauthorized."}).encode()


def _dumps(payload: object) -> bytes:
    return json.dumps(payload, separators=(",", ":")).encode()


class BrokerHTTPServer(ThreadingHTTPServer):
    """Threading server that tracks its connections and handler threads so ``stop`` can end them.

    Handler threads are daemons (a broker someone forgot to stop never blocks interpreter exit)
    yet :meth:`close_connections` plus :meth:`join_handlers` end and join them all on ``stop``.
    """

    daemon_threads = True
    request_queue_size = 256
    allow_reuse_address = True

    def __init__(self, address: tuple[str, int], broker: PaperBroker) -> None:
        self.broker = broker
        self._connections: set[socket.socket] = set()
        self._handlers: set[threading.Thread] = set()
        self._connections_lock = threading.Lock()
        super().__init__(address, RequestHandler)

    def process_request(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        thread = threading.Thread(
            target=self.process_request_thread,
            args=(request, client_address),
            name=f"paper-broker-conn-{client_address[1]}",
            daemon=True,
        )
        with self._connections_lock:
            self._connections.add(request)
            self._handlers.add(thread)
        thread.start()

    def process_request_thread(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self._connections_lock:
                self._handlers.discard(threading.current_thread())

    def shutdown_request(self, request) -> None:  # type: ignore[no-untyped-def]
        with self._connections_lock:
            self._connections.discard(request)
        super().shutdown_request(request)

    def join_handlers(self, timeout_s: float = 5.0) -> None:
        """Wait for every handler thread to finish (after :meth:`close_connections`)."""
        deadline = time.monotonic() + timeout_s
        with self._connections_lock:
            handlers = list(self._handlers)
        for thread in handlers:
            thread.join(max(0.0, deadline - time.monotonic()))

    def handle_error(self, request, client_address) -> None:  # type: ignore[no-untyped-def]
        logger.debug("connection from %s ended with an error", client_address, exc_info=True)

    def close_connections(self) -> None:
        """Shut down every open connection (idle keep-alives included)."""
        with self._connections_lock:
            connections = list(self._connections)
        for connection in connections:
            try:
                connection.shutdown(socket.SHUT_RDWR)
            except OSError:
                logger.debug("connection already closed")


class RequestHandler(BaseHTTPRequestHandler):
    """One connection; dispatches each request through auth, rate limit, faults and the book."""

    protocol_version = "HTTP/1.1"
    server_version = "brokerops-sim/1.0"
    sys_version = ""
    timeout = 300  # idle keep-alive connections close after five minutes
    server: BrokerHTTPServer

    def do_GET(self) -> None:
        if urlsplit(self.path).path == STREAM_PATH:
            self._upgrade_stream()
        else:
            self._dispatch("GET")

    def do_POST(self) -> None:
        self._dispatch("POST")

    def do_DELETE(self) -> None:
        self._dispatch("DELETE")

    def do_PATCH(self) -> None:
        self._dispatch("PATCH")

    def do_PUT(self) -> None:
        self._dispatch("PUT")

    def log_message(self, format: str, *args: object) -> None:
        logger.debug("%s " + format, self.address_string(), *args)

    # ------------------------------------------------------------------ the stream

    def _upgrade_stream(self) -> None:
        """Answer the websocket handshake, then serve the trade_updates stream on this
        connection until it ends (the handler thread is the connection's reader)."""
        broker = self.server.broker
        broker.requests.count_request("GET", STREAM_PATH)
        refusal = websocket.handshake_refusal(self.headers)
        if refusal is not None:
            body = refusal.message.encode()
            self._send(refusal.status, body, "text/plain; charset=utf-8", list(refusal.headers))
            return
        self.close_connection = True
        broker.requests.count_status(101)
        self.wfile.write(
            websocket.switching_protocols(self.headers["Sec-WebSocket-Key"], self.server_version)
        )
        self.connection.settimeout(None)  # no idle timeout: stop() shuts the socket down
        name = f"paper-broker-stream-{self.client_address[1]}"
        broker.stream.serve(self.connection, self.rfile, name)

    # ------------------------------------------------------------------ dispatch

    def _dispatch(self, method: str) -> None:
        broker = self.server.broker
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length > 0 else b""
        split = urlsplit(self.path)
        query = dict(parse_qsl(split.query, keep_blank_values=True))
        route, params, path_known = api.match(method, split.path)
        template = route.template if route is not None else UNMATCHED
        broker.requests.count_request(method, template)

        key_id = self.headers.get("APCA-API-KEY-ID")
        secret = self.headers.get("APCA-API-SECRET-KEY")
        account = None if key_id is None or secret is None else broker.resolve(key_id, secret)
        # Latency comes before the 401 (bad keys wait too): the first account's when no account.
        faults = account.faults if account is not None else broker.faults
        delay = faults.latency(method, template)
        if delay and broker.stopped_within(delay):
            self._drop()
            return
        if account is None:
            self._send(401, UNAUTHORIZED, JSON_TYPE)
            return

        decision = broker.limiter.check(key_id, account.rate_limit_per_min)  # type: ignore[arg-type]
        rate_headers = decision.headers() if decision is not None else []
        if decision is not None and not decision.allowed:
            broker.requests.count_rate_limited()
            self._send_429(rate_headers, decision.retry_after_s, decision.reset_epoch)
            return

        if route is None:
            if path_known:
                body_405 = _dumps({"code": 40510000, "message": "method not allowed"})
                self._send(405, body_405, JSON_TYPE, rate_headers)
            else:
                self._send(404, b"404 page not found", "text/plain; charset=utf-8", rate_headers)
            return

        action = account.faults.decide(method, template)
        if action is not None and not action.after and not self._fault_before(action, rate_headers):
            return

        status, payload = self._apply(account.book, route, params, query, body)

        if action is not None and action.after:
            self._fault_after(action, rate_headers, status, payload)
            return
        self._respond(status, payload, rate_headers)

    def _apply(
        self,
        book: Book,
        route: api.Route,
        params: dict[str, str],
        query: dict[str, str],
        body: bytes,
    ) -> tuple[int, object]:
        """The request on the book of the account its keys open."""
        try:
            return route.handler(book, params, query, body)
        except ApiError as error:
            return error.status, error.body()
        except Exception:  # a simulator bug answers 500 (and is logged) instead of hanging up
            logger.exception("paper broker failed on %s %s", route.method, self.path)
            return 500, {"code": 50010000, "message": "internal server error occurred"}

    # ------------------------------------------------------------------ faults

    def _fault_before(self, action: FaultAction, rate_headers: list[tuple[str, str]]) -> bool:
        """Apply a fault that precedes the request; True when the request should still run."""
        kind = action.kind
        if kind is FaultKind.STALL:
            if self.server.broker.stopped_within(action.stall_s):
                self._drop()
                return False
            return True
        if kind in (FaultKind.RESET_BEFORE, FaultKind.ERROR_5XX, FaultKind.NON_JSON):
            self._fault_answer(action, rate_headers)
        elif kind is FaultKind.PROXY_JSON:  # a gateway's JSON error: a code, but not Alpaca's
            status = action.status or 404
            body = {"code": status, "message": HTTPStatus(status).phrase}
            self._send(status, _dumps(body), JSON_TYPE)
        elif kind is FaultKind.RATE_429:
            self.server.broker.requests.count_rate_limited()
            reset = math.ceil(time.time() + action.retry_after_s)
            self._send_429(rate_headers, action.retry_after_s, reset)
        return False

    def _fault_after(
        self,
        action: FaultAction,
        rate_headers: list[tuple[str, str]],
        status: int,
        payload: object,
    ) -> None:
        kind = action.kind
        if kind is FaultKind.STALL_AFTER:
            if self.server.broker.stopped_within(action.stall_s):
                self._drop()
            else:
                self._respond(status, payload, rate_headers)
        elif kind in (FaultKind.RESET_AFTER, FaultKind.ERROR_5XX_AFTER, FaultKind.NON_JSON_AFTER):
            self._fault_answer(action, rate_headers)

    def _fault_answer(self, action: FaultAction, rate_headers: list[tuple[str, str]]) -> None:
        """What a reset, a 5xx or an HTML page fault answers, before or after the request ran."""
        kind = action.kind
        if kind in (FaultKind.RESET_BEFORE, FaultKind.RESET_AFTER):
            self._reset()
        elif kind in (FaultKind.ERROR_5XX, FaultKind.ERROR_5XX_AFTER):
            self._send_5xx(action.status, rate_headers)
        else:
            self._send(action.status or 502, _html_page(action.status or 502), "text/html")

    # ------------------------------------------------------------------ writing

    def _respond(self, status: int, payload: object, headers: list[tuple[str, str]]) -> None:
        if status == 204:
            self._send(204, b"", None, headers)
        elif isinstance(payload, api.RawJson):
            self._send(status, bytes(payload), JSON_TYPE, headers)
        else:
            self._send(status, _dumps(payload), JSON_TYPE, headers)

    def _send_5xx(self, status: int, headers: list[tuple[str, str]]) -> None:
        message = "internal server error occurred"
        body = _dumps({"code": status * 100000 + 10000, "message": message})
        self._send(status, body, JSON_TYPE, headers)

    def _send_429(
        self, headers: list[tuple[str, str]], retry_after_s: int, reset_epoch: int
    ) -> None:
        """429 ``rate limit exceeded``: with ``Retry-After`` under ``retry_after_header``, else
        (Alpaca) the wait only in ``X-RateLimit-Remaining: 0`` and ``X-RateLimit-Reset``."""
        body = _dumps({"code": CODE_RATE_LIMITED, "message": "rate limit exceeded"})
        if self.server.broker.fidelity.retry_after_header:
            headers = [*headers, ("Retry-After", str(retry_after_s))]
        else:
            kept = [(n, v) for n, v in headers if n == "X-RateLimit-Limit"]
            headers = [
                *kept,
                ("X-RateLimit-Remaining", "0"),
                ("X-RateLimit-Reset", str(reset_epoch)),
            ]
        self._send(429, body, JSON_TYPE, headers)

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str | None,
        headers: list[tuple[str, str]] | None = None,
    ) -> None:
        """Write status line, headers and body in one send (no Nagle/delayed-ACK stalls)."""
        lines = [
            f"HTTP/1.1 {status} {HTTPStatus(status).phrase}",
            f"Server: {self.server_version}",
            f"Date: {self.date_time_string()}",
        ]
        if content_type is not None:
            lines.append(f"Content-Type: {content_type}")
        if status != 204:
            lines.append(f"Content-Length: {len(body)}")
        for name, value in headers or ():
            lines.append(f"{name}: {value}")
        if self.close_connection:
            lines.append("Connection: close")
        head = ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")
        self.server.broker.requests.count_status(status)  # before the client can see the answer
        self.wfile.write(head + body)

    def _reset(self) -> None:
        """Abort the connection with a TCP RST (SO_LINGER 0), as a crashed proxy would."""
        self.close_connection = True
        self.server.broker.requests.count_status(0)
        connection = self.connection
        try:
            connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            self.rfile.close()
            connection.close()
        except OSError:
            logger.debug("connection gone before reset")

    def _drop(self) -> None:
        """Close the connection without an answer (the broker is stopping)."""
        self.close_connection = True
        try:
            self.connection.shutdown(socket.SHUT_RDWR)
        except OSError:
            logger.debug("connection gone before drop")
