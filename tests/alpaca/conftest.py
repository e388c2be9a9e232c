"""Fixtures for the broker gateway tests: a fake clock, the paper broker, gateways over it."""

from __future__ import annotations

import math
import threading
import time

import pytest


class FakeClock:
    """Monotonic time that only moves when someone "sleeps": waits are observed, never slept."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []
        self._lock = threading.Lock()

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.now += seconds


class FrozenWallClock:
    """Unix time read once (``time.time()``) and then frozen: a gateway's ``wall_clock`` for 429s
    from the paper broker. The broker states the wait as Alpaca does, ``X-RateLimit-Reset`` in
    whole epoch seconds from its own real clock; a gateway whose wall clock stopped just before the
    request derives exactly ``reset - at`` from it, for the pause and for the retry alike (a
    running clock would make the two differ by microseconds), and never less than the broker
    asked for."""

    def __init__(self) -> None:
        self.at = time.time()

    def __call__(self) -> float:
        return self.at

    def assert_waits_until_reset(self, wait: float | None, ahead_s: int) -> None:
        """``wait`` is the gateway's reading of a 429 the paper broker injected with
        ``retry_after_s=ahead_s`` (``X-RateLimit-Reset`` = ceil(broker's now + ahead_s), no
        ``Retry-After``): it must end on that whole-second reset, not earlier and at most the
        header's one-second rounding later."""
        assert wait is not None
        reset = self.at + wait
        # A whole epoch second: the wait came from X-RateLimit-Reset (a Retry-After would have
        # given exactly ahead_s, ending at a fraction of a second).
        assert reset == pytest.approx(round(reset), abs=1e-6)
        # The broker stamped the reset between the freeze and now.
        assert math.ceil(self.at + ahead_s) <= round(reset) <= math.ceil(time.time() + ahead_s)
        assert ahead_s - 1e-6 <= wait <= ahead_s + 1 + (time.time() - self.at)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def frozen_wall() -> FrozenWallClock:
    return FrozenWallClock()


@pytest.fixture
def broker():
    """The paper broker on loopback with the default assets (AAPL, TSLA, BTC/USD, ...), in its
    default profile: strict, as Alpaca (orders answered ``pending_new`` and filled about 0.1 s
    later, 200 requests/min per key, 429s with ``X-RateLimit-*`` and no ``Retry-After``, ...).
    A test that needs a lenient rule sets it explicitly and says why."""
    from brokerops.sim import PaperBroker

    with PaperBroker(default_assets=True) as paper:
        yield paper


@pytest.fixture
def make_gateway(broker, clock):
    """Gateways over the paper broker through the real alpaca-py client. Retry waits go to the
    fake clock (observed in ``clock.sleeps``, never slept); the limiter is off unless given."""
    from brokerops.alpaca import AlpacaGateway, RetryPolicy

    made = []

    def make(**overrides):
        options = {
            "api_key": "test-key",
            "secret_key": "test-secret",
            "base_url": broker.base_url,
            "timeout_s": 2.0,
            "clock": clock,
            "retry_policy": RetryPolicy(sleep=clock.sleep, clock=clock, random=lambda: 0.5),
        }
        options.update(overrides)
        gateway = AlpacaGateway(**options)
        made.append(gateway)
        return gateway

    yield make
    for gateway in made:
        gateway.close()


@pytest.fixture
def gateway(make_gateway):
    return make_gateway()


class ScriptedServer:
    """A tiny local HTTP server for answers the paper broker does not give (hostile proxies,
    Alpaca's real 429 headers, market data). ``answer(method, path, *replies)`` queues replies
    for a route; the last one repeats. A reply is ``(status, body, headers)`` (``body``: bytes,
    str, or any JSON-able value) or a callable ``(query) -> reply``. ``hits`` records
    ``(method, path, query, headers)`` of every request."""

    def __init__(self) -> None:
        from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

        self.routes: dict[tuple[str, str], list] = {}
        self.hits: list[tuple[str, str, dict[str, str], dict[str, str]]] = []
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def _answer(self) -> None:
                from urllib.parse import parse_qsl, urlsplit

                length = int(self.headers.get("Content-Length") or 0)
                if length:
                    self.rfile.read(length)
                split = urlsplit(self.path)
                query = dict(parse_qsl(split.query, keep_blank_values=True))
                server.hits.append((self.command, split.path, query, dict(self.headers)))
                status, body, headers = server._reply(self.command, split.path, query)
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_DELETE = _answer

            def log_message(self, *args) -> None:
                pass

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}"
        self._thread = threading.Thread(target=self._httpd.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    def answer(self, method: str, path: str, *replies) -> None:
        self.routes[(method.upper(), path)] = list(replies)

    def calls(self, method: str, path: str) -> list[dict[str, str]]:
        """The query strings of the requests made to one route."""
        return [q for m, p, q, _ in self.hits if (m, p) == (method.upper(), path)]

    def _reply(self, method: str, path: str, query: dict[str, str]):
        import json

        replies = self.routes.get((method, path))
        if not replies:
            return 404, b'{"code": 40410000, "message": "no route in the scripted server"}', {}
        reply = replies.pop(0) if len(replies) > 1 else replies[0]
        if callable(reply):
            reply = reply(query)
        status, body, *rest = reply
        headers = dict(rest[0]) if rest else {}
        if isinstance(body, str):
            body = body.encode()
        elif not isinstance(body, bytes):
            body = json.dumps(body).encode()
            headers.setdefault("Content-Type", "application/json")
        return status, body, headers

    def close(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def scripted():
    server = ScriptedServer()
    yield server
    server.close()
