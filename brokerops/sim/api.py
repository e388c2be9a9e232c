"""Alpaca Trading API v2 routes (and two market-data routes): path templates, query parsing,
and calls into the book.

Transport-free: :func:`match` maps a method and path to a :class:`Route` and its path parameters,
and each handler takes the book, the path parameters, the query (last value per name) and the raw
body, and returns ``(status, json_payload)`` or raises
:class:`~brokerops.sim.errors.ApiError`. ``server.py`` does the HTTP around it.

Route templates are also the keys of the request counters: ``("GET", "/v2/orders/{id}")``.
"""

from __future__ import annotations

import json
import re
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import unquote

from . import marketdata
from .book import Book
from .errors import MSG_INVALID_ORDER_ID, bad_request, invalid
from .model import fmt_time, parse_time
from .validation import parse_bool, to_decimal


class RawJson(bytes):
    """A payload that is already encoded JSON; the server sends it as is."""


Payload = dict[str, object] | list[dict[str, object]] | RawJson | None
Handler = Callable[[Book, dict[str, str], dict[str, str], bytes], tuple[int, Payload]]

MAX_ORDERS_LIMIT = 500
DEFAULT_ORDERS_LIMIT = 50


@dataclass(frozen=True, slots=True)
class Route:
    method: str
    template: str
    pattern: re.Pattern[str]
    handler: Handler


def _account(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    return 200, book.account_json()


def _clock(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    now = datetime.now(UTC)
    return 200, {
        "timestamp": fmt_time(now),
        "is_open": True,
        "next_open": fmt_time(now + timedelta(days=1)),
        "next_close": fmt_time(now + timedelta(hours=6)),
    }


def _assets(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    status = query.get("status") or None
    asset_class = query.get("asset_class") or None
    return 200, book.assets_json(status=status, asset_class=asset_class)


def _asset(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    return 200, book.asset_json(params["ref"])


def _positions(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    return 200, book.positions_json()


def _position(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    return 200, book.position_json(params["ref"])


def _close_position(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    qty = to_decimal(query.get("qty"), "qty")
    percentage = to_decimal(query.get("percentage"), "percentage")
    return 200, book.close_position(params["ref"], qty=qty, percentage=percentage)


def _close_all_positions(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    cancel = parse_bool(query.get("cancel_orders"), "cancel_orders")
    return 207, book.close_all_positions(cancel_orders=cancel)


def _submit_order(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    try:
        data = json.loads(body or b"null", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("request body format is invalid") from None
    return 200, book.submit_order(data)


def _time_param(query: dict[str, str], name: str) -> int | None:
    """An RFC 3339 query parameter as nanoseconds (nine fractional digits are kept)."""
    text = query.get(name)
    if not text:
        return None
    try:
        return parse_time(text)
    except ValueError:
        raise invalid(f"invalid {name}: {text}") from None


def _list_orders(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    status = (query.get("status") or "open").lower()
    if status not in ("open", "closed", "all"):
        raise invalid(f"invalid status: {status}")
    limit_text = query.get("limit") or str(DEFAULT_ORDERS_LIMIT)
    try:
        limit = int(limit_text)
    except ValueError:
        raise invalid(f"invalid limit: {limit_text}") from None
    if limit < 1:
        raise invalid("limit must be > 0")
    direction = (query.get("direction") or "desc").lower()
    if direction not in ("asc", "desc"):
        raise invalid(f"invalid direction: {direction}")
    side = (query.get("side") or "").lower() or None
    if side is not None and side not in ("buy", "sell"):
        raise invalid(f"invalid side: {side}")
    parse_bool(query.get("nested"), "nested")  # simple orders only: nothing to nest
    symbols_text = query.get("symbols") or ""
    symbols = [s.strip() for s in symbols_text.split(",") if s.strip()] or None
    orders = book.list_orders_bytes(
        status=status,
        limit=min(limit, MAX_ORDERS_LIMIT),
        after=_time_param(query, "after"),
        until=_time_param(query, "until"),
        direction=direction,
        symbols=symbols,
        side=side,
    )
    return 200, RawJson(orders)


def _cancel_all_orders(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    return 207, book.cancel_all_orders()


def _order_id(params: dict[str, str]) -> str:
    """The ``{id}`` path parameter; 422 ``40010001`` when it is not a UUID (as at Alpaca)."""
    ref = params["ref"].strip()
    try:
        uuid.UUID(ref)
    except ValueError:
        raise invalid(MSG_INVALID_ORDER_ID) from None
    return ref


def _order(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    parse_bool(query.get("nested"), "nested")
    return 200, book.order_json(_order_id(params))


def _order_by_client_id(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    client_order_id = query.get("client_order_id")
    if not client_order_id:
        raise invalid("client_order_id is required")
    return 200, book.order_by_client_id_json(client_order_id)


def _cancel_order(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    book.cancel_order(_order_id(params))
    return 204, None


def _activities(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    with book.lock:
        return 200, book.ledger.page(query, params.get("type"))


def _corporate_action(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    """The control endpoint (not Alpaca's): ``{"type": "split", "symbol": ..., ...}``."""
    try:
        data = json.loads(body or b"null", parse_float=Decimal)
    except (ValueError, UnicodeDecodeError):
        raise bad_request("request body format is invalid") from None
    if not isinstance(data, dict) or not isinstance(data.get("type"), str):
        raise invalid("a corporate action needs a JSON object with its type")
    if book.corporate_actions is None:
        raise invalid("corporate actions are not available on this book")
    terms = {key: value for key, value in data.items() if key != "type"}
    try:
        return 200, book.corporate_actions(data["type"], **terms)
    except (ValueError, LookupError) as error:
        raise invalid(str(error)) from None


def _end_of_day(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    """The control endpoint (not Alpaca's): the held crypto fees are booked now."""
    with book.lock:
        return 200, book.ledger.post_held()


def _stock_trades(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    symbols = marketdata.parse_symbols(query.get("symbols"))
    feed = marketdata.check_feed(query.get("feed"))
    return 200, book.latest_trades_json(symbols, crypto=False, feed=feed)


def _crypto_trades(book: Book, params: dict[str, str], query: dict[str, str], body: bytes):
    symbols = marketdata.parse_symbols(query.get("symbols"))
    return 200, book.latest_trades_json(symbols, crypto=True)


_SEGMENT = r"(?P<ref>[^/]+)"

ROUTES: tuple[Route, ...] = tuple(
    Route(method, template, re.compile(pattern), handler)
    for method, template, pattern, handler in (
        ("GET", "/v2/account", r"/v2/account", _account),
        ("GET", "/v2/clock", r"/v2/clock", _clock),
        ("GET", "/v2/assets", r"/v2/assets", _assets),
        # Crypto assets answer as BTC/USD (unencoded), BTC%2FUSD and BTCUSD.
        (
            "GET",
            "/v2/assets/{symbol_or_id}",
            r"/v2/assets/(?P<ref>[^/]+(?:/[^/]+)?)",
            _asset,
        ),
        ("GET", "/v2/positions", r"/v2/positions", _positions),
        ("DELETE", "/v2/positions", r"/v2/positions", _close_all_positions),
        ("GET", "/v2/positions/{symbol_or_asset_id}", r"/v2/positions/" + _SEGMENT, _position),
        (
            "DELETE",
            "/v2/positions/{symbol_or_asset_id}",
            r"/v2/positions/" + _SEGMENT,
            _close_position,
        ),
        ("POST", "/v2/orders", r"/v2/orders", _submit_order),
        ("GET", "/v2/orders", r"/v2/orders", _list_orders),
        ("DELETE", "/v2/orders", r"/v2/orders", _cancel_all_orders),
        (
            "GET",
            "/v2/orders:by_client_order_id",
            r"/v2/orders:by_client_order_id",
            _order_by_client_id,
        ),
        ("GET", "/v2/orders/{id}", r"/v2/orders/" + _SEGMENT, _order),
        ("DELETE", "/v2/orders/{id}", r"/v2/orders/" + _SEGMENT, _cancel_order),
        ("GET", "/v2/account/activities", r"/v2/account/activities", _activities),
        (
            "GET",
            "/v2/account/activities/{activity_type}",
            r"/v2/account/activities/(?P<type>[^/]+)",
            _activities,
        ),
        ("POST", "/_sim/corporate_actions", r"/_sim/corporate_actions", _corporate_action),
        ("POST", "/_sim/end_of_day", r"/_sim/end_of_day", _end_of_day),
        ("GET", "/v2/stocks/trades/latest", r"/v2/stocks/trades/latest", _stock_trades),
        (
            "GET",
            "/v1beta3/crypto/{loc}/latest/trades",
            r"/v1beta3/crypto/(?P<loc>[^/]+)/latest/trades",
            _crypto_trades,
        ),
    )
)


def match(method: str, path: str) -> tuple[Route | None, dict[str, str], bool]:
    """``(route, path_params, path_known)``; ``path_known``: only the method is wrong."""
    if len(path) > 1 and path.endswith("/"):
        path = path[:-1]
    path_known = False
    for route in ROUTES:
        found = route.pattern.fullmatch(path)
        if found is None:
            continue
        if route.method != method:
            path_known = True
            continue
        params = {name: unquote(value) for name, value in found.groupdict().items()}
        return route, params, True
    return None, {}, path_known
