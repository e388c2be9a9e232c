"""The proxy settings of the environment reach the broker's calls (docs/design.md section 6):
``HTTP(S)_PROXY`` is used and ``NO_PROXY`` honoured, as requests does, though the gateway's
session reads them once per host rather than on every call."""

import socket
import threading

import pytest

from brokerops.alpaca import BrokerUnavailable


class RecordingProxy:
    """A forward proxy that answers every request 502 and keeps each request line."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self._server = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._server.getsockname()[1]}"
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self._server.accept()
            except OSError:
                return
            with conn:
                head = b""
                while b"\r\n\r\n" not in head:
                    chunk = conn.recv(4096)
                    if not chunk:
                        break
                    head += chunk
                self.lines.append(head.split(b"\r\n", 1)[0].decode())
                body = b"<html>bad gateway</html>"
                conn.sendall(
                    b"HTTP/1.1 502 Bad Gateway\r\nContent-Type: text/html\r\n"
                    b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
                )

    def close(self) -> None:
        self._server.close()


@pytest.fixture
def proxy():
    server = RecordingProxy()
    yield server
    server.close()


def _no_retries(make_gateway):
    from brokerops.alpaca import RetryPolicy

    return make_gateway(retry_policy=RetryPolicy(max_attempts=1))


def test_every_call_goes_through_the_environments_proxy(monkeypatch, proxy, make_gateway, broker):
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    gateway = _no_retries(make_gateway)
    for _ in range(2):
        with pytest.raises(BrokerUnavailable):
            gateway.list_positions()
    assert proxy.lines == [f"GET {broker.base_url}/v2/positions HTTP/1.1"] * 2


def test_no_proxy_sends_the_calls_straight_to_the_broker(monkeypatch, proxy, make_gateway, broker):
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    broker.seed_position("AAPL", 3)
    gateway = _no_retries(make_gateway)
    assert [p.symbol for p in gateway.list_positions()] * 2 == [
        p.symbol for _ in range(2) for p in gateway.list_positions()
    ]
    assert proxy.lines == []
