"""The broker gateway: the only code in brokerops that talks to Alpaca.

One :class:`AlpacaGateway` wraps alpaca-py's ``TradingClient`` and fixes its traps (docs/design.md
section 6):

- every HTTP attempt goes through :class:`_GatewaySession`, which sets the per-request timeout
  (alpaca-py sets none), takes a token from the shared rate limiter, counts the attempt and, on a
  429, pauses every worker until the broker's reset time (never longer than ``max_pause_s``); it
  reads each body in 1 MB reads (:func:`_read_body`);
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
  parsed again from its page's body only when asked for (:mod:`.listing`).
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, Literal, TypeVar

import requests
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.trading.client import TradingClient
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from brokerops import metrics

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
    BrokerUnavailable,
    map_exception,
    map_http_error,
    rate_limit_wait,
)
from .limiter import NullLimiter, RateLimiter, build_limiter, key_scope
from .listing import OrderSummaries, PageBody
from .parsing import (
    ParseError,
    SharedStrings,
    parse_account,
    parse_asset,
    parse_latest_trades,
    parse_order,
    parse_order_summary_fields,
    parse_orders,
    parse_position,
    parse_positions,
    require_list,
)
from .retry import RetryPolicy
from .types import Account, Asset, Order, OrderRequest, Position, symbol_key

logger = logging.getLogger(__name__)
T = TypeVar("T")

MAX_PAGE_SIZE = 500
#: Symbols per market-data request (they travel in the query string).
DATA_CHUNK = 100
STOCK_TRADES_PATH = "/v2/stocks/trades/latest"
CRYPTO_TRADES_PATH = "/v1beta3/crypto/us/latest/trades"
DEFAULT_ASSETS_TTL_S = 300.0
# A 429 without Retry-After / X-RateLimit-Reset still pauses everyone this long.
DEFAULT_429_PAUSE_S = 1.0
_ONE_MICROSECOND = timedelta(microseconds=1)
#: Largest single read of a response body (see :func:`_read_body`).
BODY_READ_SIZE = 1 << 20
# What the gateway catches around alpaca-py (with raw_data=True it raises nothing else on a
# response); anything else is a bug and propagates unchanged. A plain ValueError or RecursionError
# is the JSON decoder choking on a hostile body (a 5,000-digit number, nesting 100,000 deep).
_MAPPED = (APIError, requests.RequestException, ParseError, ValueError, RecursionError)


@dataclass(eq=False)  # identity, not value: nested scopes must not be confused
class CallCount:
    """HTTP attempts seen while a :meth:`AlpacaGateway.count_calls` block was open."""

    total: int = 0
    by_method: Counter = field(default_factory=Counter)
    thread_ids: set[int] | None = None  # None: every thread

    def include_current_thread(self) -> None:
        """Count this thread's calls too (a worker thread doing part of the scope's work)."""
        if self.thread_ids is not None:
            self.thread_ids.add(threading.get_ident())


class _CallCounter:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.total = 0
        self._open: list[CallCount] = []

    def record(self, method: str) -> None:
        me = threading.get_ident()
        with self._lock:
            self.total += 1
            for count in self._open:
                if count.thread_ids is None or me in count.thread_ids:
                    count.total += 1
                    count.by_method[method] += 1

    @contextmanager
    def scope(self, current_thread_only: bool) -> Iterator[CallCount]:
        count = CallCount(thread_ids={threading.get_ident()} if current_thread_only else None)
        with self._lock:
            self._open.append(count)
        try:
            yield count
        finally:
            with self._lock:
                self._open.remove(count)


class _GatewaySession(requests.Session):
    """The session alpaca-py (and the market-data reads) send through: timeout, rate limit,
    counting, 429 pause (capped at ``max_pause_s``)."""

    def __init__(
        self,
        *,
        timeout_s: float,
        limiter: RateLimiter,
        counter: _CallCounter,
        wall_clock: Callable[[], float],
        max_pause_s: float = DEFAULT_MAX_PAUSE_S,
    ) -> None:
        super().__init__()
        self._timeout_s = timeout_s
        self._limiter = limiter
        self._counter = counter
        self._wall_clock = wall_clock
        self._max_pause_s = max_pause_s

    def request(self, method, url, *args, **kwargs):  # type: ignore[override]
        if kwargs.get("timeout") is None:
            kwargs["timeout"] = self._timeout_s
        # Alpaca does not redirect; following one would send the key headers wherever it points.
        kwargs["allow_redirects"] = False
        stream = kwargs.pop("stream", None)
        self._limiter.acquire()
        self._counter.record(str(method).upper())
        try:
            response = super().request(method, url, *args, stream=True, **kwargs)
        except requests.RequestException:
            metrics.alpaca_request_record(method=method, url=url, status=None)
            raise
        metrics.alpaca_request_record(method=method, url=url, status=response.status_code)
        if not stream:
            _read_body(response)
        if response.status_code == 429:
            wait = rate_limit_wait(
                response.headers, now=self._wall_clock, max_pause_s=self._max_pause_s
            )
            pause = wait.seconds if wait.seconds is not None else DEFAULT_429_PAUSE_S
            if wait.clamped:
                logger.warning(
                    "broker rate limit hit (429); %s (ALPACA_MAX_PAUSE_S); "
                    "pausing all workers for %.2fs",
                    wait.describe(),
                    pause,
                )
            else:
                logger.warning("broker rate limit hit (429); pausing all workers for %.2fs", pause)
            self._limiter.pause(pause)
        return response


def _read_body(response: requests.Response) -> None:
    """Read the body as ``Response.content`` would for a request that is not streamed, but in
    reads of up to :data:`BODY_READ_SIZE` instead of requests' 10 KB.

    Each read gives the GIL away while it waits on the socket; getting it back can take a whole
    switch interval (5 ms) when another thread is busy parsing, so a 40 MB positions list read
    10 KB at a time spends seconds waiting for the GIL. Errors are requests' own
    (``iter_content`` maps urllib3's), raised where a non-streamed request raises them.
    """
    if response._content is False and response.status_code != 0 and response.raw is not None:
        response._content = b"".join(response.iter_content(BODY_READ_SIZE)) or b""
    response.content  # noqa: B018 - marks the body consumed, exactly as requests does


def _order_id(order_id: str | uuid.UUID) -> str:
    """Alpaca order ids are UUIDs; anything else is a caller bug (ValueError), not a 404."""
    try:
        return str(uuid.UUID(str(order_id)))
    except ValueError:
        raise ValueError("order_id must be a UUID") from None


def _is_uuid(value: str) -> bool:
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


def _aware(value: datetime | None) -> datetime | None:
    if value is None:
        return None
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def _sort_stamp(
    order_id: str, submitted_at: datetime | None, created_at: datetime | None
) -> datetime:
    """The documented sort and filter field of ``GET /v2/orders``: ``submitted_at``."""
    stamp = submitted_at or created_at
    if stamp is None:
        raise ParseError(f"order {order_id}: no submitted_at/created_at to page by")
    return stamp


def _cursor_of(submitted_at: datetime | None, created_at: datetime | None) -> datetime:
    """The next page's ``after``: 1 µs before the earliest timestamp the broker could be filtering
    this order by (``submitted_at``, or ``created_at`` if that is earlier), so that the order and
    every order sharing its timestamp are read again (and deduplicated), never skipped."""
    stamps = [ts for ts in (submitted_at, created_at) if ts is not None]
    return min(stamps) - _ONE_MICROSECOND


def _orders_params(request: GetOrdersRequest) -> dict[str, Any]:
    """The query parameters alpaca-py's ``TradingClient.get_orders`` sends for ``request``."""
    params = request.to_request_fields()
    if "symbols" in params and isinstance(params["symbols"], list):
        params["symbols"] = ",".join(params["symbols"])
    return params


@dataclass(eq=False)
class _OrdersPage:
    """One page of ``GET /v2/orders``, parsed: its orders (or summaries) in the broker's order,
    their ids and ``(submitted_at, created_at)``; ``body`` when the page is kept as received."""

    ids: list[str]
    items: Sequence[Any]
    stamps: list[tuple[datetime | None, datetime | None]]
    body: PageBody | None = None

    @classmethod
    def checked(
        cls,
        ids: list[str],
        items: Sequence[Any],
        stamps: list[tuple[datetime | None, datetime | None]],
    ) -> _OrdersPage:
        """The page, once its orders are seen to come oldest first: a server that ignored
        ``direction=asc`` would make the cursor skip orders, so that is refused."""
        previous: datetime | None = None
        for order_id, (submitted_at, created_at) in zip(ids, stamps, strict=True):
            stamp = _sort_stamp(order_id, submitted_at, created_at)
            if previous is not None and stamp < previous:
                raise ParseError("orders page is not in ascending time order")
            previous = stamp
        return cls(ids, items, stamps)


class AlpacaGateway:
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
        self._counter = _CallCounter()
        self._assets_ttl_s = assets_ttl_s
        self._assets_lock = threading.Lock()
        self._assets: tuple[tuple[Asset, ...], dict[str, Asset], float] | None = None

        client = TradingClient(
            api_key, secret_key, paper=paper, raw_data=True, url_override=self.base_url
        )
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
        client._session = _GatewaySession(
            timeout_s=timeout_s,
            limiter=self.limiter,
            counter=self._counter,
            wall_clock=wall_clock,
            max_pause_s=self.max_pause_s,
        )
        self._client = client
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

    def count_calls(self, *, current_thread_only: bool = False):
        """``with gateway.count_calls() as calls: ...; calls.total`` counts HTTP attempts made
        while the block is open (from any thread, or only this one)."""
        return self._counter.scope(current_thread_only)

    # --- plumbing --------------------------------------------------------------------------

    def _once(self, method: str, path: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except BrokerError:
            raise
        except _MAPPED as exc:
            # `from None`: the chained alpaca-py/requests frames hold the auth headers.
            raise map_exception(
                exc,
                method=method,
                path=path,
                now=self._wall_clock,
                secrets=self._secrets,
                max_pause_s=self.max_pause_s,
            ) from None

    def _read(self, path: str, fn: Callable[[], T]) -> T:
        return self.retry_policy.call(lambda: self._once("GET", path, fn), what=f"GET {path}")

    # --- positions -------------------------------------------------------------------------

    def list_positions(self) -> list[Position]:
        """All open positions: one ``GET /v2/positions``. Two positions for one symbol (by
        symbol key) raise :class:`BrokerMalformedResponse`, never a sum."""
        return self._read(
            "/v2/positions", lambda: parse_positions(self._client.get_all_positions())
        )

    def get_position(self, symbol_or_asset_id: str | uuid.UUID) -> Position:
        """One position by symbol (any form: ``BTC/USD`` is sent as ``BTCUSD``) or asset id.
        Raises :class:`BrokerNotFound` when there is none."""
        text = str(symbol_or_asset_id)
        ident = text if _is_uuid(text) else symbol_key(text)
        if not ident:
            raise ValueError("symbol_or_asset_id is required")
        return self._read(
            f"/v2/positions/{ident}",
            lambda: parse_position(self._client.get_open_position(ident)),
        )

    # --- orders ----------------------------------------------------------------------------

    def get_order(self, order_id: str | uuid.UUID) -> Order:
        oid = _order_id(order_id)
        return self._read(
            f"/v2/orders/{oid}", lambda: parse_order(self._client.get_order_by_id(oid))
        )

    def get_order_by_client_id(self, client_order_id: str) -> Order:
        if not client_order_id:
            raise ValueError("client_order_id is required")
        return self._read(
            "/v2/orders:by_client_order_id",
            lambda: parse_order(self._client.get_order_by_client_id(client_order_id)),
        )

    def submit_order(self, request: OrderRequest) -> Order:
        """``POST /v2/orders``, sent exactly once: never retried, here or in alpaca-py.

        On :class:`BrokerError` with ``outcome_unknown`` the order may exist: look it up by
        ``client_order_id``. Sent as our own JSON (Decimals as strings) rather than through
        alpaca-py's request models, which hold prices and quantities as floats.
        """
        body = request.to_body()
        return self._once(
            "POST", "/v2/orders", lambda: parse_order(self._client.post("/orders", body))
        )

    def cancel_order(self, order_id: str | uuid.UUID) -> None:
        """``DELETE /v2/orders/{id}``, not retried. Alpaca's JSON 404: no such order
        (:class:`BrokerNotFound`); a proxy's 404 is :class:`BrokerUnavailable` with the outcome
        unknown; 422: not cancelable."""
        oid = _order_id(order_id)
        self._once("DELETE", f"/v2/orders/{oid}", lambda: self._client.cancel_order_by_id(oid))

    def list_orders(
        self,
        *,
        status: Literal["all", "open", "closed"] = "all",
        after: datetime | None = None,
        until: datetime | None = None,
        symbols: list[str] | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> list[Order]:
        """Every matching order, oldest first, each exactly once; pages itself.

        Pages go oldest first (``direction=asc``). The next page starts 1 µs before the
        earliest timestamp (``submitted_at``/``created_at``) of the previous page's last order, so
        orders sharing that timestamp across the page boundary are fetched again rather than
        skipped (Alpaca's ``after`` is exclusive); duplicates are dropped by id. Any failed or
        malformed page fails the whole read (never a partial list). These raise
        :class:`BrokerMalformedResponse` rather than return a partial list or loop forever: a
        full page that brings nothing new (more than ``page_size`` orders on one timestamp); a
        full page whose last order is not later than the previous page's (the cursor would not
        advance: the broker ignores ``after`` or its pages go back in time); a list still going
        after ``max_order_pages`` pages (``ALPACA_MAX_ORDER_PAGES``).
        """
        orders: list[Order] = []
        for page, fresh in self._order_pages(
            self._orders_page,
            status=status,
            after=after,
            until=until,
            symbols=symbols,
            page_size=page_size,
        ):
            orders.extend(page.items[position] for position in fresh)
        return orders

    def list_order_summaries(
        self,
        *,
        status: Literal["all", "open", "closed"] = "all",
        after: datetime | None = None,
        until: datetime | None = None,
        symbols: list[str] | None = None,
        page_size: int = MAX_PAGE_SIZE,
    ) -> OrderSummaries:
        """The orders :meth:`list_orders` would return (same pages, same checks, same errors:
        every order is parsed and bounded the same way), held lean for a bulk comparison: an
        :class:`OrderSummary` each, the whole :class:`Order` on demand
        (:meth:`OrderSummaries.order`, :meth:`OrderSummaries.by_client_order_id`)."""
        shared = SharedStrings()
        summaries = OrderSummaries()
        for page, fresh in self._order_pages(
            lambda request: self._order_summaries_page(request, shared),
            status=status,
            after=after,
            until=until,
            symbols=symbols,
            page_size=page_size,
        ):
            assert page.body is not None
            summaries.add_page(page.body, page.items, fresh)
        return summaries

    def _order_pages(
        self,
        fetch: Callable[[GetOrdersRequest], _OrdersPage],
        *,
        status: str,
        after: datetime | None,
        until: datetime | None,
        symbols: list[str] | None,
        page_size: int,
    ) -> Iterator[tuple[_OrdersPage, list[int]]]:
        """The paging of :meth:`list_orders` (see there): yields each page with the positions of
        its orders not seen on an earlier page (or earlier on the same one)."""
        if status not in ("all", "open", "closed"):
            raise ValueError("status must be 'all', 'open' or 'closed'")
        if not 1 <= page_size <= MAX_PAGE_SIZE:
            raise ValueError(f"page_size must be between 1 and {MAX_PAGE_SIZE}")
        until = _aware(until)
        cursor = _aware(after)
        seen: set[str] = set()
        page_number = 0
        previous_last: datetime | None = None
        while True:
            page_number += 1
            if page_number > self.max_order_pages:
                raise BrokerMalformedResponse(
                    f"GET /v2/orders: the list has not ended after {self.max_order_pages} pages "
                    f"of {page_size} (ALPACA_MAX_ORDER_PAGES); refusing an endless read"
                )
            request = GetOrdersRequest(
                status=QueryOrderStatus(status),
                limit=page_size,
                after=cursor,
                until=until,
                direction=Sort.ASC,
                symbols=list(symbols) if symbols else None,
            )
            page = self._read("/v2/orders", lambda request=request: fetch(request))
            fresh: list[int] = []
            for position, order_id in enumerate(page.ids):
                if order_id not in seen:
                    seen.add(order_id)
                    fresh.append(position)
            yield page, fresh
            if len(page.ids) < page_size:
                break
            if not fresh:
                raise BrokerMalformedResponse(
                    f"GET /v2/orders: page {page_number} brought no new orders; more than "
                    f"{page_size} orders share one timestamp, the list cannot be completed"
                )
            submitted_at, created_at = page.stamps[-1]
            last = _sort_stamp(page.ids[-1], submitted_at, created_at)
            if previous_last is not None and last <= previous_last:
                raise BrokerMalformedResponse(
                    f"GET /v2/orders: page {page_number} did not advance the cursor (its last "
                    f"order, {last.isoformat()}, is not after the previous page's, "
                    f"{previous_last.isoformat()}); the list cannot be completed"
                )
            previous_last = last
            cursor = _cursor_of(submitted_at, created_at)

    def _orders_page(self, request: GetOrdersRequest) -> _OrdersPage:
        page = parse_orders(self._client.get_orders(request))
        return _OrdersPage.checked(
            [order.id for order in page],
            page,
            [(order.submitted_at, order.created_at) for order in page],
        )

    def _order_summaries_page(
        self, request: GetOrdersRequest, shared: SharedStrings
    ) -> _OrdersPage:
        """One page as :meth:`_orders_page` reads it (the same request and decoding, see
        :meth:`_trading_get`), parsed into summaries; the body is kept as received."""
        response = self._trading_get("/orders", _orders_params(request))
        rows = response.json() if response.text != "" else None  # as alpaca-py reads a body
        summaries, stamps = parse_order_summary_fields(rows, shared=shared)
        page = _OrdersPage.checked([s[0] for s in summaries], summaries, stamps)
        page.body = PageBody(response.content, response.encoding)
        return page

    def _trading_get(self, path: str, params: dict[str, Any]) -> requests.Response:
        """``GET`` on the trading API as alpaca-py's ``RESTClient._request`` sends it (same URL,
        headers, no redirects; a 4xx/5xx raised as its ``APIError``), returning the response
        itself rather than its decoded body."""
        client = self._client
        response = client._session.request(
            "GET",
            f"{client._base_url}/{client._api_version}{path}",
            params=params,
            headers=client._get_default_headers(),
            allow_redirects=False,
        )
        try:
            response.raise_for_status()
        except requests.HTTPError as http_error:
            raise APIError(response.text, http_error) from None
        return response

    # --- market data -----------------------------------------------------------------------

    def latest_trade_prices(self, symbols: Iterable[str]) -> dict[str, Decimal]:
        """The latest trade price of each symbol, keyed by symbol key (``BTC/USD`` -> ``BTCUSD``),
        read in bulk from the market-data API (for the risk check of market orders by quantity).

        Equities: ``GET {data_url}/v2/stocks/trades/latest?symbols=A,B``; crypto (a symbol with
        a ``/``, or one the asset list says is crypto, e.g. ``BTCUSD``): ``GET {data_url}/v1beta3/
        crypto/us/latest/trades?symbols=BTC/USD``; at most :data:`DATA_CHUNK` symbols per request.
        A symbol without a ``/`` is looked up in the cached asset list (read once if not cached,
        as :meth:`find_asset` would). A symbol the broker has no trade for is absent from the
        result. Prices are exact decimals from the JSON text, bounded like every broker figure and
        positive, or the whole read is :class:`BrokerMalformedResponse`. An idempotent read:
        retried like the others.
        """
        wanted = [(text, symbol_key(text)) for text in (str(s).strip().upper() for s in symbols)]
        wanted = [(text, key) for text, key in wanted if key]
        known = self._asset_cache(refresh=False)[1] if any("/" not in t for t, _ in wanted) else {}
        stocks: dict[str, str] = {}  # symbol as sent -> symbol key
        crypto: dict[str, str] = {}
        for text, key in wanted:
            asset = known.get(key)
            if "/" in text:
                crypto.setdefault(text, key)
            elif asset is not None and asset.asset_class == "crypto" and "/" in asset.symbol:
                crypto.setdefault(asset.symbol.strip().upper(), key)
            else:
                stocks.setdefault(key, key)
        prices: dict[str, Decimal] = {}
        for path, wanted in ((STOCK_TRADES_PATH, stocks), (CRYPTO_TRADES_PATH, crypto)):
            sent = list(wanted)
            for start in range(0, len(sent), DATA_CHUNK):
                chunk = {s: wanted[s] for s in sent[start : start + DATA_CHUNK]}
                prices.update(self._read(path, lambda p=path, c=chunk: self._trades(p, c)))
        return prices

    def _trades(self, path: str, wanted: dict[str, str]) -> dict[str, Decimal]:
        response = self._client._session.get(
            self.data_url + path,
            params={"symbols": ",".join(wanted)},
            headers=self._data_headers,
            allow_redirects=False,  # the key headers must never follow a redirect elsewhere
        )
        status = response.status_code
        if status >= 400:
            raise map_http_error(
                method="GET",
                path=path,
                status=status,
                body_text=response.text,
                headers=response.headers,
                now=self._wall_clock,
                secrets=self._secrets,
                max_pause_s=self.max_pause_s,
            )
        if 300 <= status < 400:
            raise BrokerUnavailable(
                f"GET {path} -> HTTP {status}: no market data (redirects are not followed)",
                status=status,
            )
        try:
            # Prices from the JSON text itself: 187.12 stays 187.12, 1e308 stays out of range.
            body = json.loads(response.text, parse_float=Decimal)
        except (ValueError, RecursionError):
            raise BrokerMalformedResponse(f"GET {path}: response body is not JSON") from None
        return parse_latest_trades(body, wanted)

    # --- assets, account -------------------------------------------------------------------

    def list_assets(self, *, refresh: bool = False) -> tuple[Asset, ...]:
        """All assets: one ``GET /v2/assets``, cached for ``assets_ttl_s``."""
        return self._asset_cache(refresh=refresh)[0]

    def find_asset(self, symbol: str) -> Asset | None:
        """The asset for ``symbol`` (any form) from the cached bulk list; ``None`` if unknown."""
        return self._asset_cache(refresh=False)[1].get(symbol_key(symbol))

    def _asset_cache(self, *, refresh: bool) -> tuple[tuple[Asset, ...], dict[str, Asset]]:
        with self._assets_lock:
            cached = self._assets
            if cached is not None and not refresh:
                assets, by_key, fetched_at = cached
                if self._clock() - fetched_at < self._assets_ttl_s:
                    return assets, by_key

            def fetch() -> tuple[Asset, ...]:
                rows = require_list(self._client.get_all_assets(), "assets")
                return tuple(parse_asset(row) for row in rows)

            assets = self._read("/v2/assets", fetch)
            by_key = {asset.symbol_key: asset for asset in assets}
            self._assets = (assets, by_key, self._clock())
            return assets, by_key

    def get_account(self) -> Account:
        return self._read("/v2/account", lambda: parse_account(self._client.get_account()))


def gateway_from_settings(**overrides: Any) -> AlpacaGateway:
    """The gateway configured by Django settings (``ALPACA_*``, ``REDIS_URL``).

    No keys set: the built-in paper broker (keys ``test-key``/``test-secret`` at
    ``ALPACA_BASE_URL`` or ``http://127.0.0.1:8765``), which also serves the market data. One key
    without the other is a configuration error, never a silent fall-back to the paper broker.
    Market data: ``ALPACA_DATA_URL``, else ``https://data.alpaca.markets`` with real keys (even
    when ``ALPACA_BASE_URL`` points the trading calls elsewhere), else the paper broker. The rate
    limiter is shared through Redis when ``REDIS_URL`` is set, else by every gateway of this
    process; a 429 pauses it at most ``ALPACA_MAX_PAUSE_S``.
    """
    from django.conf import settings
    from django.core.exceptions import ImproperlyConfigured

    api_key = settings.ALPACA_API_KEY
    secret_key = settings.ALPACA_SECRET_KEY
    if bool(api_key) != bool(secret_key):
        raise ImproperlyConfigured("set both ALPACA_API_KEY and ALPACA_SECRET_KEY, or neither")
    data_url = settings.ALPACA_DATA_URL
    if api_key:
        base_url, paper = settings.ALPACA_BASE_URL, settings.ALPACA_PAPER
        data_url = data_url or DEFAULT_DATA_URL
    else:
        api_key, secret_key = PAPER_BROKER_KEYS
        base_url, paper = settings.ALPACA_BASE_URL or PAPER_BROKER_URL, True
        data_url = data_url or base_url
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
            rate_per_min=settings.ALPACA_RATE_LIMIT_PER_MIN,
            max_pause_s=options["max_pause_s"],
        )
    return AlpacaGateway(**options)
