"""Answers the paper broker does not give: a 2xx whose body is not JSON (a misbehaving proxy).

A tiny local http.server stands in for the broker at the network boundary for this one case.
"""

import threading
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from brokerops.alpaca import BrokerMalformedResponse, OrderRequest


class _HtmlOk(BaseHTTPRequestHandler):
    hits: list[str] = []

    def _answer(self):
        type(self).hits.append(f"{self.command} {self.path.split('?')[0]}")
        length = int(self.headers.get("Content-Length") or 0)
        self.rfile.read(length)
        body = b"<html><body>maintenance</body></html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = _answer

    def log_message(self, *args):
        pass


@pytest.fixture
def html_server():
    _HtmlOk.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HtmlOk)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_html_200_on_read_is_malformed_and_not_retried(make_gateway, html_server):
    gateway = make_gateway(base_url=html_server)
    with pytest.raises(BrokerMalformedResponse) as info:
        gateway.list_positions()
    assert not info.value.outcome_unknown
    assert _HtmlOk.hits == ["GET /v2/positions"]


def test_html_200_on_post_is_malformed_with_outcome_unknown(make_gateway, html_server):
    gateway = make_gateway(base_url=html_server)
    with pytest.raises(BrokerMalformedResponse) as info:
        gateway.submit_order(OrderRequest(symbol="AAPL", side="buy", qty=Decimal(1)))
    assert info.value.outcome_unknown
    assert _HtmlOk.hits == ["POST /v2/orders"]
