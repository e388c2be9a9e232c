"""A running paper broker, a gateway over it through the real alpaca-py client, a signal store."""

from collections.abc import Iterator

import pytest

from brokerops.alpaca import AlpacaGateway, NullLimiter, RetryPolicy
from brokerops.intent.local import LocalSignalStore
from brokerops.sim import PaperBroker

KEY_ID, SECRET = "test-key", "test-secret"


@pytest.fixture
def broker() -> Iterator[PaperBroker]:
    with PaperBroker(default_assets=True) as running:
        yield running


def gateway_for(broker: PaperBroker, **options) -> AlpacaGateway:
    options.setdefault("limiter", NullLimiter())
    options.setdefault("timeout_s", 5.0)
    return AlpacaGateway(api_key=KEY_ID, secret_key=SECRET, base_url=broker.base_url, **options)


@pytest.fixture
def gateway(broker: PaperBroker) -> Iterator[AlpacaGateway]:
    gw = gateway_for(broker)
    yield gw
    gw.close()


@pytest.fixture(params=["local", pytest.param("firestore", marks=pytest.mark.firestore)])
def store(request):
    """Each signal store in turn: the embedded one, and Firestore on the emulator."""
    if request.param == "local":
        return LocalSignalStore()
    return request.getfixturevalue("firestore_store")


__all__ = ["KEY_ID", "SECRET", "RetryPolicy", "gateway_for"]
