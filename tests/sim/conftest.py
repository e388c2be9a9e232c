"""Fixtures for the paper broker tests: a running broker, the real alpaca-py client, raw HTTP.

``paper_broker``/``trading_client``/``raw`` use the default profile, which is Alpaca's
(``fidelity.DEFAULT`` is ``STRICT``: delayed fills, crypto fee and minimums, reserved buying power,
wash-trade check, 200 requests a minute, 429s without ``Retry-After``), so a test there sees an
order answered ``pending_new`` and waits for its fill (``broker.settle()`` or polling) as a client
would. ``strict_broker``/``strict_client``/``strict_raw`` name the profile explicitly
(``PaperBroker(strict=True)``), for the tests that pin Alpaca's rules whatever the default is.
``lenient_broker``/``lenient_raw`` (``PaperBroker(strict=False)``: instant fills, no fee, no
reservation, no wash-trade check, no rate limit) are for the tests about the lenient options.

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
    """A running paper broker with the default profile and assets, stopped after the test."""
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
    """A running paper broker explicitly as strict as Alpaca, with the default assets."""
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


@pytest.fixture
def lenient_broker() -> Iterator[PaperBroker]:
    """A running paper broker with every lenient rule (``strict=False``), default assets."""
    broker = PaperBroker(default_assets=True, strict=False)
    with broker:
        yield broker


@pytest.fixture
def lenient_raw(lenient_broker: PaperBroker) -> Iterator[Raw]:
    """Plain HTTP to the lenient broker."""
    client = Raw(lenient_broker.base_url)
    yield client
    client.close()
