"""The broker gateway: the only code in brokerops that talks to Alpaca.

One :class:`AlpacaGateway` wraps alpaca-py's ``TradingClient`` and fixes its traps (docs/design.md
section 6):

- every HTTP attempt goes through :class:`.session.GatewaySession`, which sets the per-request
  timeout (alpaca-py sets none), takes a token from the shared rate limiter, counts the attempt
  and, on a 429, pauses every worker until the broker's reset time (never longer than
  ``max_pause_s``); it reads each body in 1 MB reads (:func:`.session.read_body`);
- alpaca-py's own blind retries (429/504, POST included, fixed 3 s) are switched off by setting the
  instance attributes after construction (its constructor ignores falsy values);
- responses are read as plain dicts (``raw_data=True``) and parsed into our own frozen dataclasses
  with ``Decimal`` quantities, so an enum value alpaca-py does not know never breaks a read;
- every failure is mapped once (:func:`errors.map_exception`) into the broker error taxonomy;
- idempotent reads retry under :class:`RetryPolicy`; order submission and cancel never retry;
- market data (latest trades, for the risk check) is read in bulk from ``data_url`` through the
  same session, so it shares the timeout, the limiter, the counting, the retries and the mapping;
- :meth:`AlpacaGateway.list_order_summaries` is :meth:`AlpacaGateway.list_orders` held lean for a
  bulk comparison (reconciliation over 200,000 orders): a summary per order, each whole order
  parsed again from its page's body only when asked for (:mod:`..listing`).

The class is assembled from one part per concern: :mod:`.session` (the HTTP plumbing, counting
and the error mapping every call goes through), :mod:`.reads` (positions, assets, account),
:mod:`.orders` (orders and their paging), :mod:`.market_data` (latest trade prices) and
:mod:`.activities` (account activities, read incrementally from a cursor).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any

from alpaca.trading.client import TradingClient

from brokerops.accounts import AccountConfig

from ..accounts import account_endpoint, account_or_default
from ..constants import (
    DEFAULT_DATA_URL,
    DEFAULT_MAX_ORDER_PAGES,
)
from ..errors import DEFAULT_MAX_PAUSE_S
from ..limiter import NullLimiter, RateLimiter, build_limiter, key_scope
from ..retry import RetryPolicy
from .activities import ActivityCalls, ActivityRead

__all__ = ["ActivityRead", "AlpacaGateway", "CallCount", "gateway_from_settings"]
from .market_data import MarketDataReads
from .orders import OrderCalls
from .reads import DEFAULT_ASSETS_TTL_S
from .session import CallCount, CallCounter, GatewaySession


class AlpacaGateway(OrderCalls, MarketDataReads, ActivityCalls):
    """Typed, limited, counted access to the Alpaca Trading API. Thread-safe.

    ``limiter=None`` means no client-side limit; :func:`gateway_from_settings` always installs the
    shared one. ``retry_policy`` governs idempotent reads only. ``max_pause_s`` caps the pause a
    429 can impose (``Retry-After``/``X-RateLimit-Reset``); ``max_order_pages`` bounds a paged
    orders read. ``data_url`` is the market-data API: by default ``base_url`` when that is given
    (the paper broker serves both on one port), else ``https://data.alpaca.markets``.
    """

    def __init__(
        self,
        *,
        api_key: str,
        secret_key: str,
        base_url: str | None = None,
        paper: bool = True,
        timeout_s: float = 10.0,
        limiter: RateLimiter | None = None,
        retry_policy: RetryPolicy | None = None,
        assets_ttl_s: float = DEFAULT_ASSETS_TTL_S,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
        data_url: str | None = None,
        max_pause_s: float = DEFAULT_MAX_PAUSE_S,
        max_order_pages: int = DEFAULT_MAX_ORDER_PAGES,
    ) -> None:
        if not api_key or not secret_key:
            raise ValueError("api_key and secret_key are required")
        if timeout_s <= 0:
            raise ValueError("timeout_s must be positive")
        if not max_pause_s > 0:
            raise ValueError("max_pause_s must be positive")
        if max_order_pages < 1:
            raise ValueError("max_order_pages must be at least 1")
        self.base_url = base_url.rstrip("/") if base_url else None
        self.data_url = (data_url or self.base_url or DEFAULT_DATA_URL).rstrip("/")
        self.max_pause_s = float(max_pause_s)
        self.max_order_pages = max_order_pages
        self.paper = paper
        self.timeout_s = timeout_s
        self.key_scope = key_scope(api_key)
        self.retry_policy = retry_policy if retry_policy is not None else RetryPolicy()
        self.limiter: RateLimiter = limiter if limiter is not None else NullLimiter()
        self._secrets = (api_key, secret_key)
        self._clock = clock
        self._wall_clock = wall_clock
        self._counter = CallCounter()
        self._assets_ttl_s = assets_ttl_s
        self._assets_lock = threading.Lock()
        self._assets = None
        self._client = _trading_client(
            api_key,
            secret_key,
            paper=paper,
            base_url=self.base_url,
            session=GatewaySession(
                timeout_s=timeout_s,
                limiter=self.limiter,
                counter=self._counter,
                wall_clock=wall_clock,
                max_pause_s=self.max_pause_s,
            ),
        )
        self._data_headers = {
            "APCA-API-KEY-ID": api_key,
            "APCA-API-SECRET-KEY": secret_key,
            "Accept": "application/json",
        }

    def __repr__(self) -> str:
        return (
            f"AlpacaGateway(base_url={self.base_url!r}, paper={self.paper}, key={self.key_scope})"
        )

    def close(self) -> None:
        self._client._session.close()

    def __enter__(self) -> AlpacaGateway:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # --- counting --------------------------------------------------------------------------

    @property
    def api_calls(self) -> int:
        """HTTP attempts made by this gateway since it was created (retries included)."""
        return self._counter.total

    def count_calls(
        self, *, current_thread_only: bool = False
    ) -> AbstractContextManager[CallCount]:
        """``with gateway.count_calls() as calls: ...; calls.total`` counts HTTP attempts made
        while the block is open (from any thread, or only this one)."""
        return self._counter.scope(current_thread_only)

    def count_calls_as(self, thread_id: int) -> AbstractContextManager[None]:
        """``with gateway.count_calls_as(caller): ...`` in a helper thread: its calls count
        wherever thread ``caller``'s do (every ``count_calls(current_thread_only=True)`` scope
        of the caller, nested ones included), as if the caller had made them."""
        return self._counter.on_behalf_of(thread_id)


def _trading_client(
    api_key: str, secret_key: str, *, paper: bool, base_url: str | None, session: GatewaySession
) -> TradingClient:
    """alpaca-py's ``TradingClient`` reading plain dicts, sending through ``session``, with its
    blind retries switched off."""
    client = TradingClient(api_key, secret_key, paper=paper, raw_data=True, url_override=base_url)
    for attribute in (
        "_retry",
        "_retry_codes",
        "_session",
        "_use_raw_data",
        "_base_url",
        "_api_version",
        "_get_default_headers",
    ):
        if not hasattr(client, attribute):  # an alpaca-py upgrade moved its internals
            raise RuntimeError(f"alpaca-py has no TradingClient.{attribute}; review gateway")
    # Switch off alpaca-py's blind retries: falsy constructor arguments keep its defaults.
    client._retry = 0
    client._retry_codes = []
    client._session.close()
    client._session = session
    return client


def gateway_from_settings(account: AccountConfig | None = None, **overrides: Any) -> AlpacaGateway:
    """The gateway of ``account`` (the default account when omitted) as Django settings configure
    it: its keys, URLs and rate budget (docs/design.md section 16), ``ALPACA_TIMEOUT_S`` and the
    others shared by every account.

    An account without keys talks to the built-in paper broker (keys ``test-key``/``test-secret``
    at its ``base_url`` or ``http://127.0.0.1:8765``), which also serves the market data. Market
    data: the account's ``data_url`` (``ALPACA_DATA_URL``), else ``https://data.alpaca.markets``
    with real keys (even when ``base_url`` points the trading calls elsewhere), else the paper
    broker. The rate limiter is the account's own bucket (one per API key), shared through Redis
    when ``REDIS_URL`` is set, else by every gateway of this process; a 429 pauses it at most
    ``ALPACA_MAX_PAUSE_S``.
    """
    from django.conf import settings

    account = account or account_or_default(None)
    api_key, secret_key, base_url, paper = account_endpoint(account)
    data_url = account.data_url or (DEFAULT_DATA_URL if account.api_key else base_url)
    options: dict[str, Any] = {
        "api_key": api_key,
        "secret_key": secret_key,
        "base_url": base_url,
        "paper": paper,
        "timeout_s": settings.ALPACA_TIMEOUT_S,
        "data_url": data_url,
        "max_pause_s": settings.ALPACA_MAX_PAUSE_S,
        "max_order_pages": settings.ALPACA_MAX_ORDER_PAGES,
    }
    options.update(overrides)
    if "limiter" not in options:
        options["limiter"] = build_limiter(
            redis_url=settings.REDIS_URL,
            api_key=options["api_key"],
            rate_per_min=account.rate_limit_per_min,
            max_pause_s=options["max_pause_s"],
        )
    return AlpacaGateway(**options)
