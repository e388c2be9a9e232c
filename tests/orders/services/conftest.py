"""The tests of `orders.services`, one module each: the paper broker over loopback, a gateway over
it through the real alpaca-py client, and each signal store (the fixtures the integration tests
use)."""

from tests.integration.conftest import broker, gateway, store

__all__ = ["broker", "gateway", "store"]
