"""The gateway's order calls: one order by id or client order id, submit and cancel (sent once,
never retried), and the paged list of orders, whole (:meth:`OrderCalls.list_orders`) or held lean
for a bulk comparison (:meth:`OrderCalls.list_order_summaries`, :mod:`..listing`)."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

import requests
from alpaca.common.enums import Sort
from alpaca.common.exceptions import APIError
from alpaca.trading.enums import QueryOrderStatus
from alpaca.trading.requests import GetOrdersRequest

from ..errors import BrokerMalformedResponse
from ..listing import OrderSummaries, PageBody
from ..parsing.orders import parse_order, parse_orders
from ..parsing.summaries import SharedStrings, parse_order_summary_fields
from ..parsing.values import ParseError
from ..types import Order, OrderRequest
from .session import GatewayCalls

MAX_PAGE_SIZE = 500
_ONE_MICROSECOND = timedelta(microseconds=1)


def _order_id(order_id: str | uuid.UUID) -> str:
    """Alpaca order ids are UUIDs; anything else is a caller bug (ValueError), not a 404."""
    try:
        return str(uuid.UUID(str(order_id)))
    except ValueError:
        raise ValueError("order_id must be a UUID") from None


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


def _next_cursor(
    page: _OrdersPage,
    *,
    fresh: list[int],
    page_number: int,
    page_size: int,
    previous_last: datetime | None,
) -> tuple[datetime, datetime]:
    """After a full page: its last order's sort stamp and the next page's ``after``, or
    :class:`BrokerMalformedResponse` when the list cannot be completed (see
    :meth:`OrderCalls.list_orders`)."""
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
    return last, _cursor_of(submitted_at, created_at)


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


class OrderCalls(GatewayCalls):
    """Orders: read (retried), submitted and canceled (sent once), listed page by page."""

    max_order_pages: int

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
            previous_last, cursor = _next_cursor(
                page,
                fresh=fresh,
                page_number=page_number,
                page_size=page_size,
                previous_last=previous_last,
            )

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
