"""Fixtures for the broker gateway tests: a fake clock, the paper broker, gateways over it."""

from __future__ import annotations

import threading

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


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def broker():
    """The paper broker on loopback with the default assets (AAPL, TSLA, BTC/USD, ...)."""
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
