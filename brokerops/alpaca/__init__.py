"""Broker boundary: the only package that talks to Alpaca.

Public surface::

    gateway = broker_gateway()                 # the process's, built once from settings
    gateway = gateway_from_settings()          # or AlpacaGateway(api_key=..., secret_key=..., ...)
    gateway.list_positions() -> list[Position]
    gateway.get_position(symbol_or_asset_id) -> Position
    gateway.list_orders(*, status="all", after=None, until=None, symbols=None, page_size=500)
    gateway.list_order_summaries(...same...) -> OrderSummaries   # lean, whole orders on demand
    gateway.get_order(order_id) / gateway.get_order_by_client_id(client_order_id) -> Order
    gateway.submit_order(OrderRequest(...)) -> Order        # sent once, never retried
    gateway.cancel_order(order_id) -> None
    gateway.list_assets() / gateway.find_asset(symbol) / gateway.get_account()
    gateway.latest_trade_prices(symbols) -> dict[symbol_key, Decimal]   # market data, in bulk
    gateway.api_calls; with gateway.count_calls() as calls: ...; calls.total

Errors: BrokerError > BrokerNotFound, BrokerRateLimited, BrokerRejected, BrokerUnavailable,
BrokerMalformedResponse (see :mod:`brokerops.alpaca.errors` for what a caller must do).
``BrokerRejected.is_auth_error`` is 401 only; a 403 is ``is_business_refusal`` with Alpaca's
figures in ``details``.

Every broker figure is checked by :func:`bounded_decimal` (finite, under 1e12); quantities are
also no finer than 1e-9, prices and money (:func:`broker_price`) come at any precision and stay
exact (docs/design.md section 6). Out of range fails the read as ``BrokerMalformedResponse``.
"""

from functools import cache
from typing import TYPE_CHECKING

from .constants import (
    DEFAULT_DATA_URL,
    DEFAULT_MAX_ORDER_PAGES,
    PAPER_BROKER_KEYS,
    PAPER_BROKER_URL,
)
from .errors import (
    DEFAULT_MAX_PAUSE_S,
    BrokerError,
    BrokerMalformedResponse,
    BrokerNotFound,
    BrokerRateLimited,
    BrokerRejected,
    BrokerUnavailable,
)
from .listing import OrderSummaries
from .parsing import MAX_MAGNITUDE, MAX_PLACES, ParseError, bounded_decimal, broker_price
from .retry import NO_RETRY, RetryPolicy
from .types import (
    Account,
    Activity,
    Asset,
    Order,
    OrderRequest,
    OrderSummary,
    Position,
    symbol_key,
)

# The gateway (alpaca-py, which imports pandas: ~2 s) and the limiter (redis) load when one of
# their names is first used, not when the apps load: `manage.py --help`, the admin and a worker
# that has not talked to the broker yet never pay for them (tests/ops/test_startup.py).
_LAZY = {
    "ActivityRead": ".gateway",
    "AlpacaGateway": ".gateway",
    "CallCount": ".gateway",
    "gateway_from_settings": ".gateway",
    "InProcessLimiter": ".limiter",
    "NullLimiter": ".limiter",
    "RateLimiter": ".limiter",
    "RedisLimiter": ".limiter",
    "build_limiter": ".limiter",
}

if TYPE_CHECKING:
    from .gateway import ActivityRead, AlpacaGateway, CallCount, gateway_from_settings
    from .limiter import InProcessLimiter, NullLimiter, RateLimiter, RedisLimiter, build_limiter


def broker_gateway(account: str | None = None) -> "AlpacaGateway":
    """The process's gateway of ``account`` (the default account when None), built once from
    settings: services take ``gateway=`` (tests pass their own) and use this one when it is
    omitted, so a worker keeps one HTTP session pool per account. alpaca-py loads here, on first
    use, not when the apps load (tests/ops/test_startup.py)."""
    from .accounts import account_or_default

    return _account_gateway(account_or_default(account).name)


@cache
def _account_gateway(name: str) -> "AlpacaGateway":
    from .accounts import account_or_default
    from .gateway import gateway_from_settings

    return gateway_from_settings(account_or_default(name))


broker_gateway.cache_clear = _account_gateway.cache_clear  # type: ignore[attr-defined]


def __getattr__(name: str):
    """Load a gateway or limiter name on first use (PEP 562) and keep it in the package."""
    module_name = _LAZY.get(name)
    if module_name is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(module_name, __name__), name)
    globals()[name] = value
    return value


__all__ = [
    "DEFAULT_DATA_URL",
    "DEFAULT_MAX_ORDER_PAGES",
    "DEFAULT_MAX_PAUSE_S",
    "MAX_MAGNITUDE",
    "MAX_PLACES",
    "NO_RETRY",
    "PAPER_BROKER_KEYS",
    "PAPER_BROKER_URL",
    "Account",
    "Activity",
    "ActivityRead",
    "AlpacaGateway",
    "Asset",
    "BrokerError",
    "BrokerMalformedResponse",
    "BrokerNotFound",
    "BrokerRateLimited",
    "BrokerRejected",
    "BrokerUnavailable",
    "CallCount",
    "InProcessLimiter",
    "NullLimiter",
    "Order",
    "OrderRequest",
    "OrderSummaries",
    "OrderSummary",
    "ParseError",
    "Position",
    "RateLimiter",
    "RedisLimiter",
    "RetryPolicy",
    "bounded_decimal",
    "broker_gateway",
    "broker_price",
    "build_limiter",
    "gateway_from_settings",
    "symbol_key",
]
