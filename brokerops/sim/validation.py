"""Stateless checks on an order request, with Alpaca's messages and codes.

:func:`parse_order_request` reads the JSON body of ``POST /v2/orders`` into an
:class:`OrderRequest`; :func:`check_order_rules` applies the rules that depend only on the request
and the asset (order types, time in force, sub-penny prices, fractional and notional orders,
extended hours); :func:`check_crypto_minimums` the crypto size rules of
``Fidelity.crypto_rules``. Checks that need the book (duplicate ``client_order_id``, held
quantity, shorting, buying power, wash trades) live in ``book.py``. Every failure raises
:class:`~brokerops.sim.errors.ApiError`: a missing or malformed parameter is 422 ``40010001``, a
trading rule 422 ``42210000`` (Alpaca's split).
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from .errors import bad_request, forbidden, invalid, unprocessable
from .model import Asset, fmt_decimal

SIDES = frozenset({"buy", "sell"})
ORDER_TYPES = frozenset({"market", "limit", "stop", "stop_limit", "trailing_stop"})
TIMES_IN_FORCE = frozenset({"day", "gtc", "opg", "cls", "ioc", "fok"})
CRYPTO_TIMES_IN_FORCE = frozenset({"gtc", "ioc"})
CRYPTO_ORDER_TYPES = frozenset({"market", "limit", "stop_limit"})
MAX_CLIENT_ORDER_ID = 128
MAX_QTY_DECIMALS = 9


@dataclass(slots=True)
class OrderRequest:
    """A parsed ``POST /v2/orders`` body; prices keep the text the client sent for messages."""

    symbol: str
    side: str
    type: str
    time_in_force: str
    qty: Decimal | None
    notional: Decimal | None
    limit_price: Decimal | None
    stop_price: Decimal | None
    trail_price: Decimal | None
    trail_percent: Decimal | None
    extended_hours: bool
    client_order_id: str | None
    order_class: str
    raw_prices: dict[str, str]

    @property
    def is_fractional(self) -> bool:
        return self.notional is not None or (
            self.qty is not None and self.qty != self.qty.to_integral_value()
        )


def to_decimal(value: object, name: str) -> Decimal | None:
    """A JSON number or numeric string as ``Decimal``; ``None`` and ``""`` are absent.

    Raises 422 ``invalid <name>`` for anything else (including NaN and infinities).
    """
    if value is None or value == "":
        return None
    if isinstance(value, bool):
        raise invalid(f"invalid {name}")
    try:
        result = Decimal(str(value).strip())
    except InvalidOperation:
        raise invalid(f"invalid {name}") from None
    if not result.is_finite():
        raise invalid(f"invalid {name}")
    return result


def parse_bool(value: object, name: str) -> bool:
    """A JSON or query-string boolean in any case (``true``, ``TRUE``); absent is False."""
    if value is None or value == "":
        return False
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text == "true":
        return True
    if text == "false":
        return False
    raise invalid(f"invalid {name}")


def _text(body: dict[str, object], name: str) -> str | None:
    value = body.get(name)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        raise invalid(f"invalid {name}")
    return value


def _choice(value: str | None, name: str, choices: frozenset[str], wrong: str) -> str:
    """A required field that takes one of ``choices``, in any case (returned in lower case)."""
    if value is None:
        raise invalid(f"{name} is required")
    value = value.lower()
    if value not in choices:
        raise invalid(wrong)
    return value


def parse_order_request(body: object) -> OrderRequest:
    """Read the order body; raises 400 for a non-object and 422 for missing or invalid fields."""
    if not isinstance(body, dict):
        raise bad_request("request body format is invalid")
    symbol = _text(body, "symbol")
    if symbol is None:
        raise invalid("symbol is required")
    side = _choice(_text(body, "side"), "side", SIDES, "invalid side")
    order_type = _choice(
        _text(body, "type") or _text(body, "order_type"), "type", ORDER_TYPES, "invalid order type"
    )
    tif = _choice(
        _text(body, "time_in_force"), "time_in_force", TIMES_IN_FORCE, "invalid time_in_force"
    )
    client_order_id = body.get("client_order_id")
    if client_order_id is not None and not isinstance(client_order_id, str):
        raise invalid("invalid client_order_id")
    if client_order_id is not None and len(client_order_id) > MAX_CLIENT_ORDER_ID:
        raise invalid(f"client_order_id must be no more than {MAX_CLIENT_ORDER_ID} characters")
    order_class = _text(body, "order_class") or "simple"
    raw_prices = {
        name: str(body[name]).strip()
        for name in ("limit_price", "stop_price")
        if body.get(name) not in (None, "")
    }
    return OrderRequest(
        symbol=symbol.strip(),
        side=side,
        type=order_type,
        time_in_force=tif,
        qty=to_decimal(body.get("qty"), "qty"),
        notional=to_decimal(body.get("notional"), "notional"),
        limit_price=to_decimal(body.get("limit_price"), "limit_price"),
        stop_price=to_decimal(body.get("stop_price"), "stop_price"),
        trail_price=to_decimal(body.get("trail_price"), "trail_price"),
        trail_percent=to_decimal(body.get("trail_percent"), "trail_percent"),
        extended_hours=parse_bool(body.get("extended_hours"), "extended_hours"),
        client_order_id=client_order_id or None,
        order_class=order_class,
        raw_prices=raw_prices,
    )


def decimals_of(value: Decimal) -> int:
    """Number of significant decimal places (``1.2300`` has 2)."""
    exponent = value.normalize().as_tuple().exponent
    return max(0, -exponent) if isinstance(exponent, int) else 0


def _check_price(request: OrderRequest, name: str, value: Decimal, asset: Asset) -> None:
    shown = request.raw_prices.get(name, str(value))
    if value <= 0:
        raise invalid(f"invalid {name} {shown}. must be > 0")
    if asset.is_crypto:
        if decimals_of(value) > MAX_QTY_DECIMALS:
            raise invalid(f"invalid {name} {shown}")
        return
    allowed = 2 if value >= 1 else 4
    if decimals_of(value) > allowed:
        raise unprocessable(
            f"invalid {name} {shown}. sub-penny increment does not fulfill minimum pricing criteria"
        )


def check_order_rules(request: OrderRequest, asset: Asset) -> None:
    """Rules that depend on the request and the asset only; raises 422 on the first violation."""
    if request.order_class not in ("simple", ""):
        raise unprocessable(f'order_class "{request.order_class}" is not supported')
    qty, notional = request.qty, request.notional
    if qty is None and notional is None:
        raise invalid("qty or notional is required")
    if qty is not None and notional is not None:
        raise invalid("only one of qty or notional is allowed")
    if qty is not None:
        if qty <= 0:
            raise invalid("qty must be > 0")
        if decimals_of(qty) > MAX_QTY_DECIMALS:
            raise invalid("qty must have no more than 9 decimal places")
    if notional is not None:
        if notional <= 0:
            raise invalid("notional must be > 0")
        if decimals_of(notional) > 2:
            raise invalid("notional must have no more than 2 decimal places")

    order_type = request.type
    needs_limit = order_type in ("limit", "stop_limit")
    needs_stop = order_type in ("stop", "stop_limit")
    if needs_limit and request.limit_price is None:
        raise invalid("limit_price is required")
    if not needs_limit and request.limit_price is not None:
        raise invalid(f"limit_price is not allowed for {order_type} orders")
    if needs_stop and request.stop_price is None:
        raise invalid("stop_price is required")
    if not needs_stop and request.stop_price is not None:
        raise invalid(f"stop_price is not allowed for {order_type} orders")
    if order_type == "trailing_stop" and (request.trail_price is None) == (
        request.trail_percent is None
    ):
        raise invalid("exactly one of trail_price or trail_percent is required")
    for name in ("limit_price", "stop_price"):
        value = getattr(request, name)
        if value is not None:
            _check_price(request, name, value, asset)

    if asset.is_crypto:
        if request.time_in_force not in CRYPTO_TIMES_IN_FORCE:
            raise invalid("invalid crypto time_in_force")
        if order_type not in CRYPTO_ORDER_TYPES:
            raise invalid("invalid order type for crypto order")
        return

    if request.is_fractional:
        if not asset.fractionable:
            raise unprocessable(f'asset "{asset.symbol}" is not fractionable')
        if request.time_in_force != "day":
            raise unprocessable("fractional orders must be DAY orders")
    if notional is not None and order_type != "market":
        raise unprocessable("notional orders must be market orders")
    if request.extended_hours:
        if order_type != "limit":
            raise unprocessable('only type="limit" is allowed for extended hours orders')
        if request.time_in_force != "day":
            raise unprocessable("extended hours order must be DAY limit orders")


def check_crypto_minimums(
    request: OrderRequest, asset: Asset, *, price: Decimal, min_cost: Decimal, whole_holding: bool
) -> None:
    """``Fidelity.crypto_rules`` on a crypto order, priced at ``price`` (limit or current).

    A ``qty`` order must be at least the asset's ``min_order_size`` (unless it sells the whole
    holding: dust may always be sold) and a multiple of its ``min_trade_increment``: 422
    ``40010001``. Every order must cost at least ``min_cost`` dollars: 403 ``cost basis must be >=
    minimal amount of order 1`` (Alpaca's wording and code).
    """
    qty = request.qty
    if qty is not None:
        minimum = asset.min_order_size
        if minimum and qty < minimum and not whole_holding:
            raise invalid(f"qty must be >= {fmt_decimal(minimum)}")
        step = asset.min_trade_increment
        if step and qty % step:
            raise invalid(f"qty must be a multiple of {fmt_decimal(step)}")
    cost = request.notional if request.notional is not None else (qty or Decimal(0)) * price
    if min_cost and cost < min_cost:
        raise forbidden(f"cost basis must be >= minimal amount of order {fmt_decimal(min_cost)}")
