"""The process's broker gateway and signal store, built once from settings.

Services take ``gateway=`` / ``store=`` arguments (tests pass their own); when omitted they use
these shared instances, so a worker keeps one HTTP session pool and one Firestore client.
"""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING

from brokerops.intent.store import SignalStore, get_signal_store

if TYPE_CHECKING:
    from brokerops.alpaca import AlpacaGateway


@cache
def broker_gateway() -> AlpacaGateway:
    # alpaca-py loads here, on first use, not when the apps load (tests/ops/test_startup.py).
    from brokerops.alpaca import gateway_from_settings

    return gateway_from_settings()


def signal_store() -> SignalStore:
    return get_signal_store()
