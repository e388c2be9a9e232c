"""Fixtures for the paper broker tests: a running broker, the real alpaca-py client, raw HTTP.

``paper_broker``/``trading_client``/``raw`` use the lenient profile the rest of the repository's
tests rely on; ``strict_broker``/``strict_client``/``strict_raw`` turn every fidelity rule on
(``PaperBroker(strict=True)``: delayed fills, crypto fee and minimums, reserved buying power,
wash-trade check, 200 requests a minute, 429s without ``Retry-After``).

Nothing here needs Django or a database: the paper broker is plain Python and a loopback server.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from alpaca.trading.client import TradingClient

from brokerops.sim import PaperBroker

from .helpers import KEY_ID, SECRET, Raw


@pytest.fixture
def paper_broker() -> Iterator[PaperBroker]:
    """A running paper broker with the default assets, stopped after the test."""
    broker = PaperBroker(default_assets=True)
    with broker:
        yield broker


@pytest.fixture
def trading_client(paper_broker: PaperBroker) -> TradingClient:
    """alpaca-py's real client pointed at the paper broker, with its 3 s x 3 retries off."""
    client = TradingClient(KEY_ID, SECRET, paper=True, url_override=paper_broker.base_url)
    client._retry = 0
    return client


@pytest.fixture
def raw(paper_broker: PaperBroker) -> Iterator[Raw]:
    """Plain HTTP to the paper broker, for what alpaca-py hides (status codes, headers, bodies)."""
    client = Raw(paper_broker.base_url)
    yield client
    client.close()


@pytest.fixture
def strict_broker() -> Iterator[PaperBroker]:
    """A running paper broker as strict as Alpaca, with the default assets."""
    broker = PaperBroker(default_assets=True, strict=True)
    with broker:
        yield broker


@pytest.fixture
def strict_client(strict_broker: PaperBroker) -> TradingClient:
    """alpaca-py's real client on the strict broker, retries off."""
    client = TradingClient(KEY_ID, SECRET, paper=True, url_override=strict_broker.base_url)
    client._retry = 0
    return client


@pytest.fixture
def strict_raw(strict_broker: PaperBroker) -> Iterator[Raw]:
    """Plain HTTP to the strict broker."""
    client = Raw(strict_broker.base_url)
    yield client
    client.close()
