"""The process's broker gateway and signal store, built once from settings.

Services take ``gateway=`` / ``store=`` arguments (tests pass their own); when omitted they use
these shared instances, so a worker keeps one HTTP session pool and one Firestore client.
"""

from functools import cache

from brokerops.alpaca import AlpacaGateway, gateway_from_settings
from brokerops.intent.store import SignalStore, get_signal_store


@cache
def broker_gateway() -> AlpacaGateway:
    return gateway_from_settings()


def signal_store() -> SignalStore:
    return get_signal_store()
